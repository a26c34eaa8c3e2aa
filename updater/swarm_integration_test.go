package updater_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/swarm"
	"github.com/watcher-dev/watcher/updater"
)

// The Swarm tests run against one private dockerd that is the single manager of a swarm of its
// own (testenv.SwarmEngine), shared by the subtests of TestSwarmServices.

// swarmRig is an updater on the swarm engine that watches one subtest's scope.
type swarmRig struct {
	*testenv.Env
	t      *testing.T
	x      *testenv.ExtraEngine
	store  *store.Store
	upd    *updater.Updater
	labels map[string]string // watcher.enable=true in the subtest's scope
	db     string
}

func newSwarmRig(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env, mod func(*updater.Options)) *swarmRig {
	t.Helper()
	scope := strings.ReplaceAll(t.Name(), "/", "-")
	db := filepath.Join(t.TempDir(), "watcher.db")
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts := updater.Options{Selection: updater.Selection{LabelEnable: true, Scope: scope}, Logger: quietLogger(t), Services: true, Parallel: 4}
	if mod != nil {
		mod(&opts)
	}
	r := &swarmRig{Env: e, t: t, x: x, store: st, db: db, labels: map[string]string{"watcher.enable": "true", "watcher.scope": scope}}
	r.upd = r.updater(opts)
	return r
}

// updater is an updater over the rig's engine and store with options o.
func (r *swarmRig) updater(o updater.Options) *updater.Updater {
	life := lifecycle.New(r.x.Docker, r.store, lifecycle.Options{Verify: time.Second, Logger: o.Logger})
	svc := swarm.New(r.x.Docker, r.store, swarm.Options{Poll: 200 * time.Millisecond, Timeout: 2 * time.Minute, Logger: o.Logger})
	return updater.NewHosts([]updater.Host{{Engine: r.x.Docker, Life: life, Services: svc}}, registry.New(registry.Options{}), r.store, o)
}

func (r *swarmRig) run(req updater.Request) *updater.Report {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return r.upd.Execute(ctx, "", req)
}

// pushDigest pushes repo:tag and returns repo:tag@digest.
func (r *swarmRig) pushDigest(repo, tag, version string) string {
	ref, d := r.Registry.PushImage(r.t, repo, tag, testenv.ImageSpec{Version: version})
	return ref + "@" + d.String()
}

func (r *swarmRig) with(kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range r.labels {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func serviceLine(t *testing.T, rep *updater.Report, name string) updater.ContainerReport {
	t.Helper()
	for _, c := range rep.Containers {
		if c.Name == name && c.Kind == updater.KindService {
			return c
		}
	}
	t.Fatalf("report has no service line for %s: %+v (%s)", name, rep.Containers, rep.Error)
	return updater.ContainerReport{}
}

func TestSwarmServices(t *testing.T) {
	x, e := testenv.SwarmEngine(t)
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env)
	}{
		{"TaskContainersAreNeverTargets", testTaskContainers},
		{"OneHeadPerImage", testOneHeadPerImage},
		{"LabelsApply", testServiceLabels},
		{"RollbackAndStatus", testServiceRollback},
		{"OwnServiceLast", testOwnServiceLast},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, x, e) })
	}
}

// testTaskContainers: with watch.label_enable false every container is watched — but not the
// containers of a service's tasks, whose image moved: Swarm owns them. The service itself is not
// labelled, so it is not watched either; nothing is touched.
func testTaskContainers(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	r := newSwarmRig(t, x, e, func(o *updater.Options) { o.Selection = updater.Selection{} })
	ref, _ := r.Registry.PushImage(t, "task", "1", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	id := r.Service(r.Name("task"), testenv.ServiceSpec{Image: ref, Replicas: 2})
	before := r.Owned()
	r.Registry.PushImage(t, "task", "1", testenv.ImageSpec{Version: "v2"})
	rep := r.run(updater.Request{Trigger: "test"})
	for _, l := range rep.Containers {
		if strings.HasPrefix(l.Name, r.Name("task")) {
			t.Errorf("a line for %s %s (%s): task containers and unlabelled services are never targets", l.Kind, l.Name, l.Outcome)
		}
	}
	after := r.Owned()
	if len(after) != len(before) || r.ServiceImage(id) != ref {
		t.Errorf("containers %d -> %d, service image %s; want nothing touched", len(before), len(after), r.ServiceImage(id))
	}
	for _, c := range before {
		if !slices.ContainsFunc(after, func(a container.Summary) bool { return a.ID == c.ID }) {
			t.Errorf("task container %s was replaced", c.Names)
		}
	}
}

// testOneHeadPerImage: a container and two services on one image are one HEAD; both services
// are updated to repo:tag@new, a replicated one and a global one, at once.
func testOneHeadPerImage(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	r := newSwarmRig(t, x, e, nil)
	v1 := r.pushDigest("shared", "1", "v1")
	r.Pull(strings.Split(v1, "@")[0])
	r.Run(r.Name("ctr"), &container.Config{Image: strings.Split(v1, "@")[0], Labels: r.labels}, nil, nil)
	rep1 := r.Service(r.Name("rep"), testenv.ServiceSpec{Image: v1, Replicas: 2, Labels: r.labels})
	glob := r.Service(r.Name("glob"), testenv.ServiceSpec{Image: v1, Global: true, Labels: r.labels})
	v2 := r.pushDigest("shared", "1", "v2")
	r.Registry.ResetRequests()
	rep := r.run(updater.Request{Trigger: "test"})
	if n := r.Registry.Count("HEAD", "/manifests/"); n != 1 {
		t.Errorf("%d manifest HEADs, want 1 for the container and both services", n)
	}
	for name, want := range map[string]updater.Replicas{"rep": {Mode: "replicated", Desired: 2, Running: 2}, "glob": {Mode: "global", Desired: 1, Running: 1}} {
		l := serviceLine(t, rep, r.Name(name))
		if l.Outcome != updater.OutcomeUpdated || l.NewDigest != strings.Split(v2, "@")[1] || l.Replicas == nil || *l.Replicas != want {
			t.Errorf("%s: %+v (%+v, replicas %+v), want updated to %s with %+v", name, l, l.Failure, l.Replicas, v2, want)
		}
	}
	for _, id := range []string{rep1, glob} {
		if got := r.ServiceImage(id); got != v2 {
			t.Errorf("service image %s, want %s", got, v2)
		}
	}
	if l := line(t, rep, r.Name("ctr")); l.Outcome != updater.OutcomeUpdated {
		t.Errorf("container: %+v, want updated", l)
	}
	if rep.WatchedServices != 2 || rep.Watched == nil || *rep.Watched != 1 {
		t.Errorf("watched %v containers and %d services, want 1 and 2", rep.Watched, rep.WatchedServices)
	}
}

// testServiceLabels: a service's labels are its settings: monitor mode holds it, a maintenance
// window outside now skips it, a minor policy moves it to a newer tag (pinned), min-age passes
// over a new image, and an unpinned spec is pinned by its update.
func testServiceLabels(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	r := newSwarmRig(t, x, e, nil)
	v1 := r.pushDigest("labels", "1.0", "v1")
	unpinned := strings.Split(v1, "@")[0]
	ids := map[string]string{
		"mon":      r.Service(r.Name("mon"), testenv.ServiceSpec{Image: v1, Labels: r.with("watcher.mode", "monitor")}),
		"win":      r.Service(r.Name("win"), testenv.ServiceSpec{Image: v1, Labels: r.with("watcher.window", time.Now().Add(2*time.Hour).Format("15:04")+"-"+time.Now().Add(3*time.Hour).Format("15:04"))}),
		"minor":    r.Service(r.Name("minor"), testenv.ServiceSpec{Image: v1, Labels: r.with("watcher.policy", "minor")}),
		"young":    r.Service(r.Name("young"), testenv.ServiceSpec{Image: v1, Labels: r.with("watcher.min-age", "24h")}),
		"unpinned": r.Service(r.Name("unpinned"), testenv.ServiceSpec{Image: unpinned, Labels: r.labels}),
	}
	v2 := r.pushDigest("labels", "1.0", "v2")
	v11 := r.pushDigest("labels", "1.1", "v1.1")
	rep := r.run(updater.Request{Trigger: "test"})
	check := func(name string, outcome updater.Outcome, reason failure.Reason, image string) {
		t.Helper()
		l := serviceLine(t, rep, r.Name(name))
		var got failure.Reason
		if l.Failure != nil {
			got = l.Failure.Reason
		}
		if l.Outcome != outcome || got != reason || r.ServiceImage(ids[name]) != image {
			t.Errorf("%s: %s %q (%s), image %s; want %s %q and %s", name, l.Outcome, got, l.Message, r.ServiceImage(ids[name]), outcome, reason, image)
		}
	}
	check("mon", updater.OutcomeUpdateAvailable, "", v1)
	check("win", updater.OutcomeSkipped, failure.OutsideWindow, v1)
	check("minor", updater.OutcomeUpdated, "", v11)
	check("young", updater.OutcomeSkipped, "", v1)
	check("unpinned", updater.OutcomeUpdated, "", v2)
	if l := serviceLine(t, rep, r.Name("minor")); l.NewImage != strings.Split(v11, "@")[0] {
		t.Errorf("minor: new image %q, want %s", l.NewImage, strings.Split(v11, "@")[0])
	}
}

// testServiceRollback: `watcher rollback SERVICE` after the watcher's update asks Swarm for the
// previous spec; the next run holds the digest it undid. /v1/containers shows the service with
// its kind and replicas.
func testServiceRollback(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	r := newSwarmRig(t, x, e, nil)
	v1 := r.pushDigest("back", "1", "v1")
	id := r.Service(r.Name("back"), testenv.ServiceSpec{Image: v1, Replicas: 2, Labels: r.labels})
	v2 := r.pushDigest("back", "1", "v2")
	if l := serviceLine(t, r.run(updater.Request{Trigger: "test"}), r.Name("back")); l.Outcome != updater.OutcomeUpdated {
		t.Fatalf("update: %+v (%+v)", l, l.Failure)
	}
	ctx := context.Background()
	runID, done, err := r.upd.Rollback(ctx, "", r.Name("back"))
	if err != nil {
		t.Fatal(err)
	}
	<-done
	rep, _ := r.upd.Run(runID)
	if l := serviceLine(t, rep, r.Name("back")); l.Outcome != updater.OutcomeUpdated || r.ServiceImage(id) != v1 {
		t.Fatalf("rollback: %+v (%+v), image %s; want updated back to %s", l, l.Failure, r.ServiceImage(id), v1)
	}
	if l := serviceLine(t, r.run(updater.Request{Trigger: "test"}), r.Name("back")); l.Outcome != updater.OutcomeSkipped || !strings.Contains(l.Message, "a manual rollback undid") {
		t.Errorf("run after the rollback: %+v, want %s held", l, v2)
	}
	if _, _, err := r.upd.Rollback(ctx, "", r.Name("back")); err == nil {
		t.Error("a second rollback was accepted")
	}
	cs, err := r.upd.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cs, func(c updater.ContainerStatus) bool { return c.Name == r.Name("back") })
	if i < 0 || cs[i].Kind != updater.KindService || cs[i].Replicas == nil || cs[i].Replicas.Desired != 2 || cs[i].ID != id {
		t.Errorf("Containers = %+v, want the service with kind service and 2 replicas", cs)
	}
}

// testOwnServiceLast: the watcher runs as a task of a service it watches. A run updates the other
// service first, then its own: the update is sent and journaled, the report stored with the line
// handed_over, and the store released; Swarm replaces the task; a new updater's Recover waits for
// the update and reports it.
func testOwnServiceLast(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	r := newSwarmRig(t, x, e, nil)
	v1 := r.pushDigest("self", "1", "v1")
	selfID := r.Service(r.Name("self"), testenv.ServiceSpec{Image: v1, Labels: r.labels})
	other := r.Service(r.Name("other"), testenv.ServiceSpec{Image: v1, Labels: r.labels})
	task := r.taskContainer(selfID)
	var mu sync.Mutex
	var released []string
	otherDone := false
	opts := updater.Options{Selection: updater.Selection{LabelEnable: true, Scope: r.labels["watcher.scope"]}, Logger: quietLogger(t), Services: true,
		SelfID: task, Release: func(_ context.Context, successor string) error {
			mu.Lock()
			defer mu.Unlock()
			released = append(released, successor)
			otherDone = r.ServiceImage(other) != v1
			return nil
		}}
	r.upd = r.updater(opts)
	v2 := r.pushDigest("self", "1", "v2")
	rep := r.run(updater.Request{Trigger: "test"})
	if l := serviceLine(t, rep, r.Name("self")); l.Outcome != updater.OutcomeHandedOver {
		t.Fatalf("own service: %+v (%+v), want handed_over", l, l.Failure)
	}
	if l := serviceLine(t, rep, r.Name("other")); l.Outcome != updater.OutcomeUpdated {
		t.Errorf("other service: %+v, want updated", l)
	}
	mu.Lock()
	if !slices.Equal(released, []string{updater.ServiceSuccessor(selfID)}) || !otherDone {
		t.Errorf("released %v (other service updated before: %t); want one release naming the service, after the other", released, otherDone)
	}
	mu.Unlock()
	if b, err := r.store.Run(rep.ID); err != nil || !strings.Contains(string(b), `"handed_over"`) {
		t.Errorf("stored report: %v, %s; want it stored before the release", err, b)
	}
	succ := r.updater(updater.Options{Logger: quietLogger(t), Services: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	succ.Recover(ctx)
	runs, _ := succ.Runs(1)
	if len(runs) != 1 || runs[0].Trigger != updater.TriggerRecovery {
		t.Fatalf("runs after Recover: %+v, want a recovery run", runs)
	}
	if l := serviceLine(t, &runs[0], r.Name("self")); l.Outcome != updater.OutcomeUpdated || r.ServiceImage(selfID) != v2 {
		t.Errorf("recovered: %+v (%+v), image %s; want updated to %s", l, l.Failure, r.ServiceImage(selfID), v2)
	}
}

// taskContainer is the ID of the container of the service's (one) running task.
func (r *swarmRig) taskContainer(serviceID string) string {
	r.t.Helper()
	res, err := r.Docker.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "com.docker.swarm.service.id="+serviceID)})
	if err != nil || len(res.Items) != 1 {
		r.t.Fatalf("task containers of %s: %v, %v", serviceID, res.Items, err)
	}
	return res.Items[0].ID
}
