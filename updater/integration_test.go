package updater_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/updater"
)

// rig is a real engine, a real registry and a real updater over them.
type rig struct {
	*testenv.Env
	t     *testing.T
	store *store.Store
	upd   *updater.Updater
}

func newRig(t *testing.T, mod func(*updater.Options)) *rig {
	t.Helper()
	e := testenv.New(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "watcher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts := updater.Options{
		Selection: updater.Selection{LabelEnable: true},
		Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
		Cleanup:   true,
		Parallel:  4,
		Logger:    quietLogger(t),
	}
	if mod != nil {
		mod(&opts)
	}
	// Only this test's containers: other tests share the engine.
	eng := ownedOnly{e.Docker, e.Owner}
	life := lifecycle.New(e.Docker, st, lifecycle.Options{StopTimeout: 5 * time.Second, Verify: time.Second, HealthTimeout: 20 * time.Second, Logger: opts.Logger})
	upd := updater.New(eng, registry.New(registry.Options{}), life, st, opts)
	return &rig{Env: e, t: t, store: st, upd: upd}
}

// ownedOnly narrows container listing to one test's containers, so parallel test packages on the
// same engine never see each other's. Everything else goes to the real client.
type ownedOnly struct {
	*client.Client
	owner string
}

func (o ownedOnly) ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	if opts.Filters == nil {
		opts.Filters = make(client.Filters)
	}
	opts.Filters = opts.Filters.Clone().Add("label", testenv.OwnerLabel+"="+o.owner)
	return o.Client.ContainerList(ctx, opts)
}

// start runs a container from ref with labels and returns its ID.
func (r *rig) start(name, ref string, labels map[string]string, mod ...func(*container.Config, *container.HostConfig)) string {
	r.t.Helper()
	cfg := &container.Config{Image: ref, Labels: labels}
	hc := &container.HostConfig{}
	for _, m := range mod {
		m(cfg, hc)
	}
	return r.Run(r.Name(name), cfg, hc, nil)
}

// pushed pushes repo:latest (version v1), pulls it and returns its reference.
func (r *rig) pushed(repo string) string {
	r.t.Helper()
	ref, _ := r.Registry.PushImage(r.t, repo, "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	return ref
}

// network makes a user network on subnet; onNet puts a container on it.
func (r *rig) network(subnet string) (name string, onNet func(*container.Config, *container.HostConfig)) {
	r.t.Helper()
	name = r.Network("net", subnet)
	return name, func(_ *container.Config, hc *container.HostConfig) { hc.NetworkMode = container.NetworkMode(name) }
}

func (r *rig) run(req updater.Request) *updater.Report {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return r.upd.Execute(ctx, "", req)
}

func line(t *testing.T, rep *updater.Report, name string) updater.ContainerReport {
	t.Helper()
	for _, c := range rep.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("report has no line for %s: %+v", name, rep.Containers)
	return updater.ContainerReport{}
}

func names(rep *updater.Report) []string {
	var out []string
	for _, c := range rep.Containers {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

var enabled = map[string]string{"watcher.enable": "true"}

func TestSelectionByLabels(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	r.start("a", ref, enabled)
	r.start("b", ref, nil)
	r.start("c", ref, map[string]string{"watcher.enable": "false"})
	r.start("d", ref, map[string]string{"com.centurylinklabs.watchtower.enable": "true"})
	r.start("e", ref, map[string]string{"watcher.enable": "true", "watcher.scope": "blue"})
	r.start("f", ref, map[string]string{"watcher.enable": "false", "com.centurylinklabs.watchtower.enable": "true"})

	rep := r.run(updater.Request{DryRun: true})
	if got, want := names(rep), []string{r.Name("a"), r.Name("d")}; !slices.Equal(got, want) {
		t.Errorf("label_enable=true watched %v, want %v", got, want)
	}
	for _, c := range rep.Containers {
		if c.Outcome != updater.OutcomeUpToDate {
			t.Errorf("%s: outcome %s (%+v), want up_to_date", c.Name, c.Outcome, c.Failure)
		}
	}

	all := newRigOn(t, r, func(o *updater.Options) { o.Selection = updater.Selection{LabelEnable: false} })
	if got, want := names(all.run(updater.Request{DryRun: true})), []string{r.Name("a"), r.Name("b"), r.Name("d")}; !slices.Equal(got, want) {
		t.Errorf("label_enable=false watched %v, want %v", got, want)
	}
	blue := newRigOn(t, r, func(o *updater.Options) { o.Selection = updater.Selection{LabelEnable: true, Scope: "blue"} })
	if got, want := names(blue.run(updater.Request{DryRun: true})), []string{r.Name("e")}; !slices.Equal(got, want) {
		t.Errorf("scope=blue watched %v, want %v", got, want)
	}
}

// newRigOn is a second updater with other options over the same engine, registry and containers.
func newRigOn(t *testing.T, base *rig, mod func(*updater.Options)) *rig {
	opts := updater.Options{Logger: quietLogger(t)}
	mod(&opts)
	life := lifecycle.New(base.Docker, base.store, lifecycle.Options{Verify: time.Second})
	return &rig{Env: base.Env, t: t, store: base.store, upd: updater.New(ownedOnly{base.Docker, base.Owner}, registry.New(registry.Options{}), life, nil, opts)}
}

func TestUpdateMonitorAndBadLabels(t *testing.T) {
	r := newRig(t, nil)
	ref, d1 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	upID := r.start("up", ref, enabled)
	monID := r.start("mon", ref, map[string]string{"watcher.enable": "true", "watcher.mode": "monitor"})
	wtMonID := r.start("wtmon", ref, map[string]string{"watcher.enable": "true", "com.centurylinklabs.watchtower.monitor-only": "true"})
	badID := r.start("bad", ref, map[string]string{"watcher.enable": "true", "watcher.verify": "soon"})
	_, d2 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{Trigger: "test"})

	up := line(t, rep, r.Name("up"))
	if up.Outcome != updater.OutcomeUpdated || up.OldDigest != d1.String() || up.NewDigest != d2.String() || up.NewID == "" || up.ID != upID {
		t.Errorf("up: %+v, want updated %s -> %s with a new id", up, d1, d2)
	}
	now := r.Inspect(r.Name("up"))
	if now.ID != up.NewID || !now.State.Running || !slices.Contains(now.Config.Env, "APP_VERSION=v2") {
		t.Errorf("up after run: id %s running %v env %v; want the new container on v2", now.ID, now.State.Running, now.Config.Env)
	}
	for name, id := range map[string]string{"mon": monID, "wtmon": wtMonID} {
		l := line(t, rep, r.Name(name))
		if l.Outcome != updater.OutcomeUpdateAvailable || l.NewDigest != d2.String() {
			t.Errorf("%s: %+v, want update_available to %s", name, l, d2)
		}
		if got := r.Inspect(r.Name(name)); got.ID != id {
			t.Errorf("%s was replaced in monitor mode (id %s, was %s)", name, got.ID, id)
		}
	}
	bad := line(t, rep, r.Name("bad"))
	if bad.Outcome != updater.OutcomeFailed || bad.Failure == nil || !strings.Contains(bad.Failure.Message, `watcher.verify="soon"`) {
		t.Errorf("bad: %+v, want failed naming the label", bad)
	}
	if got := r.Inspect(r.Name("bad")); got.ID != badID {
		t.Errorf("container with a bad label was touched")
	}
	if !rep.Failed() {
		t.Errorf("report.Failed() = false with a failed container")
	}

	// The report is in history, and a second run finds everything up to date (idempotent).
	stored, err := r.upd.Run(rep.ID)
	if err != nil || len(stored.Containers) != len(rep.Containers) {
		t.Fatalf("history: %v, %+v", err, stored)
	}
	rep2 := r.run(updater.Request{})
	if l := line(t, rep2, r.Name("up")); l.Outcome != updater.OutcomeUpToDate {
		t.Errorf("second run: up is %s, want up_to_date", l.Outcome)
	}
}

func TestDependencyOrder(t *testing.T) {
	r := newRig(t, nil)
	dbRef, appRef := r.pushed("db"), r.pushed("app")
	net, onNet := r.network("10.231.9.0/24")
	r.start("db", dbRef, enabled, onNet)
	r.start("app", appRef, map[string]string{"watcher.enable": "true", "watcher.depends-on": r.Name("db")})
	// Not watched, but linked to db and following it (watcher.follow=true): restarted after db is
	// replaced. As `docker run --network net --link db:database` sends it: a link on a user
	// network lives in the endpoint.
	webID := r.Run(r.Name("web"), &container.Config{Image: appRef, Labels: map[string]string{"watcher.follow": "true"}}, &container.HostConfig{NetworkMode: container.NetworkMode(net)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {Links: []string{r.Name("db") + ":database"}}}})
	webBefore := started(t, r, webID)
	r.Registry.PushImage(t, "db", "latest", testenv.ImageSpec{Version: "v2"})
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{})
	db, app := line(t, rep, r.Name("db")), line(t, rep, r.Name("app"))
	if db.Outcome != updater.OutcomeUpdated || app.Outcome != updater.OutcomeUpdated {
		t.Fatalf("db %s (%+v), app %s (%+v); want both updated", db.Outcome, db.Failure, app.Outcome, app.Failure)
	}
	dbStart := started(t, r, r.Name("db"))
	appStart := started(t, r, r.Name("app"))
	if !appStart.After(dbStart) {
		t.Errorf("app started %v, db %v: app must come after what it depends on", appStart, dbStart)
	}
	web := line(t, rep, r.Name("web"))
	webAfter := started(t, r, webID)
	if web.Outcome != updater.OutcomeRestarted || !webAfter.After(dbStart) || !webAfter.After(webBefore) {
		t.Errorf("web (linked to db): %s %+v, restarted at %v (was %v, db %v); want restarted after db", web.Outcome, web.Failure, webAfter, webBefore, dbStart)
	}
}

func started(t *testing.T, r *rig, name string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.Inspect(name).State.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestParallelUpdatesOneFails(t *testing.T) {
	r := newRig(t, nil)
	var refs []string
	for _, repo := range []string{"one", "two", "three", "bad"} {
		ref, _ := r.Registry.PushImage(t, repo, "latest", testenv.ImageSpec{Version: "v1"})
		r.Pull(ref)
		r.start(repo, ref, enabled)
		refs = append(refs, ref)
	}
	for _, repo := range []string{"one", "two", "three"} {
		r.Registry.PushImage(t, repo, "latest", testenv.ImageSpec{Version: "v2"})
	}
	// The bad image's new version exits at once: its update must roll back, the others go on.
	r.Registry.PushImage(t, "bad", "latest", testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=3"}})

	start := time.Now()
	rep := r.run(updater.Request{})
	elapsed := time.Since(start)
	for _, n := range []string{"one", "two", "three"} {
		if l := line(t, rep, r.Name(n)); l.Outcome != updater.OutcomeUpdated {
			t.Errorf("%s: %s %+v, want updated", n, l.Outcome, l.Failure)
		}
	}
	bad := line(t, rep, r.Name("bad"))
	if bad.Outcome != updater.OutcomeRolledBack || bad.Failure == nil || bad.Failure.Reason != failure.ContainerExited {
		t.Errorf("bad: %s %+v, want rolled_back with ContainerExited", bad.Outcome, bad.Failure)
	}
	if ins := r.Inspect(r.Name("bad")); !ins.State.Running || !slices.Contains(ins.Config.Env, "APP_VERSION=v1") {
		t.Errorf("bad after rollback: running=%v env=%v, want the v1 container running", ins.State.Running, ins.Config.Env)
	}
	if !rep.Failed() {
		t.Error("a rolled-back update must make the run count as failed (exit 1)")
	}
	// Four updates with 1s verify windows, in parallel: well under four serial verify windows plus
	// overheads. Not a timing assertion on speed, only on overlap: serial would need >= 4s of verify.
	t.Logf("4 updates (1 rollback) in %v", elapsed)
}

func TestCleanupKeepsImagesInUse(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "shared", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	old := r.Inspect(r.start("watched", ref, enabled)).Image
	r.start("bystander", ref, nil) // not watched, still on v1
	soloRef, _ := r.Registry.PushImage(t, "solo", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(soloRef)
	soloOld := r.Inspect(r.start("solo", soloRef, enabled)).Image
	r.Registry.PushImage(t, "shared", "latest", testenv.ImageSpec{Version: "v2"})
	r.Registry.PushImage(t, "solo", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{})
	for _, n := range []string{"watched", "solo"} {
		if l := line(t, rep, r.Name(n)); l.Outcome != updater.OutcomeUpdated {
			t.Fatalf("%s: %s %+v", n, l.Outcome, l.Failure)
		}
	}
	ctx := context.Background()
	if _, err := r.Docker.ImageInspect(ctx, old); err != nil {
		t.Errorf("image %s still used by the bystander was removed: %v", old, err)
	}
	if _, err := r.Docker.ImageInspect(ctx, soloOld); err == nil {
		t.Errorf("superseded image %s with no users was kept", soloOld)
	}
}

func TestTriggerCoalesces(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	r.start("app", ref, enabled)

	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	var dones []<-chan struct{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, done, err := r.upd.Trigger(context.Background(), updater.Request{Trigger: "test"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[id] = true
			dones = append(dones, done)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, d := range dones {
		<-d
	}
	if len(ids) > 2 || len(ids) == 0 {
		t.Errorf("50 concurrent triggers made %d runs, want 1 or 2", len(ids))
	}
	if _, _, err := r.upd.Trigger(context.Background(), updater.Request{Containers: []string{"nope", r.Name("app")}}); err == nil || !strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), r.Name("app")) {
		t.Errorf("trigger for an unwatched container: %v, want a NotWatchedError naming only it", err)
	}
	if _, _, err := r.upd.Trigger(context.Background(), updater.Request{Images: []string{"127.0.0.1:1/nothing"}}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/nothing") {
		t.Errorf("trigger for an image no watched container runs: %v, want a NotWatchedError naming it", err)
	}
	id, done, err := r.upd.Trigger(context.Background(), updater.Request{Images: []string{r.Registry.Host + "/app"}})
	if err != nil {
		t.Fatalf("trigger for a watched image: %v", err)
	}
	<-done
	if rep, err := r.upd.Run(id); err != nil || len(rep.Containers) != 1 {
		t.Errorf("run %s for the image: %v, %+v; want one container", id, err, rep)
	}
	r.upd.Wait()
}

// quietLogger sends the updater's log lines to the test log (shown only on failure or -v).
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestContainerNetworkModeDependentRecreated(t *testing.T) {
	r := newRig(t, nil)
	vpnRef, _ := r.Registry.PushImage(t, "vpn", "latest", testenv.ImageSpec{Version: "v1"})
	cliRef, _ := r.Registry.PushImage(t, "client", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(vpnRef)
	r.Pull(cliRef)
	net := r.Network("net", "10.231.10.0/24")
	vpnID := r.start("vpn", vpnRef, enabled, func(_ *container.Config, hc *container.HostConfig) { hc.NetworkMode = container.NetworkMode(net) })
	cliID := r.start("client", cliRef, map[string]string{"watcher.follow": "true"}, func(_ *container.Config, hc *container.HostConfig) {
		hc.NetworkMode = container.NetworkMode("container:" + r.Name("vpn"))
	})
	r.Registry.PushImage(t, "vpn", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{})
	vpn := line(t, rep, r.Name("vpn"))
	if vpn.Outcome != updater.OutcomeUpdated {
		t.Fatalf("vpn: %s %+v", vpn.Outcome, vpn.Failure)
	}
	cl := line(t, rep, r.Name("client"))
	now := r.Inspect(r.Name("client"))
	newVPN := r.Inspect(r.Name("vpn"))
	if cl.Outcome != updater.OutcomeRestarted || now.ID == cliID || !now.State.Running || string(now.HostConfig.NetworkMode) != "container:"+newVPN.ID {
		t.Errorf("client: %s %+v; now id %s (was %s) running %v mode %s; want recreated into the new vpn %s (old %s)",
			cl.Outcome, cl.Failure, short(now.ID), short(cliID), now.State.Running, now.HostConfig.NetworkMode, short(newVPN.ID), short(vpnID))
	}
}

// Opt-out is absolute: containers this watcher does not watch — watcher.enable=false, unlabelled
// under label_enable, another scope — are never stopped as dependents. A depends-on dependent is
// left running; a network_mode container: dependent holds its parent's update, since recreating
// the parent would cut it off and it may not be recreated.
func TestOptOutIsAbsolute(t *testing.T) {
	r := newRig(t, nil)
	dbRef, vpnRef := r.pushed("db"), r.pushed("vpn")
	_, onNet := r.network("10.231.11.0/24")
	r.start("db", dbRef, enabled, onNet)
	dependent := func(extra map[string]string) map[string]string {
		l := map[string]string{"watcher.depends-on": r.Name("db")}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	bystanders := map[string]string{
		"off":   r.start("off", dbRef, dependent(map[string]string{"watcher.enable": "false"}), onNet),
		"scope": r.start("scope", dbRef, dependent(map[string]string{"watcher.enable": "true", "watcher.scope": "other"}), onNet),
	}
	vpnID := r.start("vpn", vpnRef, enabled, onNet)
	bystanders["client"] = r.start("client", vpnRef, nil, func(_ *container.Config, hc *container.HostConfig) {
		hc.NetworkMode = container.NetworkMode("container:" + r.Name("vpn"))
	})
	before := map[string]time.Time{}
	for n := range bystanders {
		before[n] = started(t, r, r.Name(n))
	}
	r.Registry.PushImage(t, "db", "latest", testenv.ImageSpec{Version: "v2"})
	r.Registry.PushImage(t, "vpn", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{})
	if db := line(t, rep, r.Name("db")); db.Outcome != updater.OutcomeUpdated {
		t.Fatalf("db: %s %+v, want updated", db.Outcome, db.Failure)
	}
	vpn := line(t, rep, r.Name("vpn"))
	if vpn.Outcome != updater.OutcomeSkipped || vpn.Failure == nil || vpn.Failure.Stage != failure.StagePlan || vpn.Failure.Reason != failure.DependentNotManaged ||
		!strings.Contains(vpn.Failure.Message, r.Name("client")) || !strings.Contains(vpn.Failure.Message, "watcher.follow=true") {
		t.Errorf("vpn: %s %+v; want skipped, plan/DependentNotManaged naming %s and watcher.follow=true", vpn.Outcome, vpn.Failure, r.Name("client"))
	}
	if got := r.Inspect(r.Name("vpn")); got.ID != vpnID || !got.State.Running {
		t.Errorf("vpn was touched: id %s (was %s), running %v", short(got.ID), short(vpnID), got.State.Running)
	}
	for n, id := range bystanders {
		got := r.Inspect(r.Name(n))
		if got.ID != id || !got.State.Running || !started(t, r, r.Name(n)).Equal(before[n]) {
			t.Errorf("opted-out %s was touched: id %s (was %s), running %v, started %v (was %v)", n, short(got.ID), short(id), got.State.Running, got.State.StartedAt, before[n])
		}
		if slices.Contains(names(rep), r.Name(n)) {
			t.Errorf("report has a line for opted-out %s: %+v", n, line(t, rep, r.Name(n)))
		}
	}
	if rep.Plan == nil || !strings.Contains(rep.Plan.String(), "leave "+r.Name("off")+": not managed by this watcher") {
		t.Errorf("plan = %v, want it to say why %s is left alone", rep.Plan, r.Name("off"))
	}
	if rep.Failed() {
		t.Error("a held update is not a failure")
	}
}

// What a run found survives a restart: a new updater over the same state file answers
// /v1/containers with the states the last run recorded, as long as the containers are the same.
func TestLastKnownSurvivesRestart(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	r.start("fresh", ref, enabled)
	r.start("mon", ref, map[string]string{"watcher.enable": "true", "watcher.mode": "monitor"})
	_, newDigest := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	r.run(updater.Request{}) // fresh is updated; mon stays on v1, its update available

	restarted := updater.New(ownedOnly{r.Docker, r.Owner}, registry.New(registry.Options{}), nil, r.store, updater.Options{Selection: updater.Selection{LabelEnable: true}, Logger: quietLogger(t)})
	got, err := restarted.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]updater.ContainerStatus{}
	for _, c := range got {
		states[c.Name] = c
	}
	if st := states[r.Name("fresh")]; st.State != updater.StateUpToDate || st.LocalDigest != newDigest.String() || st.ID != r.Inspect(r.Name("fresh")).ID {
		t.Errorf("fresh after a restart: %+v, want up_to_date on %s with its new ID", st, newDigest)
	}
	if st := states[r.Name("mon")]; st.State != updater.StateUpdateAvailable || st.RemoteDigest != newDigest.String() {
		t.Errorf("mon after a restart: %+v, want update_available to %s", st, newDigest)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func TestMinAgeUnderDigestPolicy(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1", Created: time.Now().Add(-48 * time.Hour)})
	r.Pull(ref)
	id := r.start("app", ref, map[string]string{"watcher.enable": "true", "watcher.min-age": "1h"})
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2", Created: time.Now().Add(-10 * time.Minute)})

	rep := r.run(updater.Request{})
	l := line(t, rep, r.Name("app"))
	if l.Outcome != updater.OutcomeSkipped || !strings.Contains(l.Message, "too new (age 10m") || r.Inspect(r.Name("app")).ID != id {
		t.Fatalf("young image: %s %q; want skipped as too new and the container untouched", l.Outcome, l.Message)
	}
	if rep.Failed() {
		t.Error("a too-new image is not a failure")
	}
	// Re-pushed as an image old enough: taken.
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3", Created: time.Now().Add(-2 * time.Hour)})
	if l := line(t, r.run(updater.Request{}), r.Name("app")); l.Outcome != updater.OutcomeUpdated {
		t.Fatalf("old-enough image: %s %+v %q, want updated", l.Outcome, l.Failure, l.Message)
	}
}
