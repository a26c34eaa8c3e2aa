package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// The Swarm tests run `watcher once`, `watcher rollback` and the daemon against one private
// dockerd that is the single manager of a swarm of its own (testenv.SwarmEngine), shared by the
// subtests of TestSwarm; each subtest's services are in a scope of their own.

// swarmCase is one subtest's environment, labels and images on the shared swarm.
type swarmCase struct {
	t      *testing.T
	x      *testenv.ExtraEngine
	e      *testenv.Env
	env    []string
	labels map[string]string
}

func newSwarmCase(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env, extra ...string) *swarmCase {
	scope := strings.ReplaceAll(t.Name(), "/", "-")
	env := append([]string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_WATCH_SCOPE=" + scope, "WATCHER_UPDATE_VERIFY=1s",
		"WATCHER_LOG_LEVEL=warn", "WATCHER_SCHEDULE=", "WATCHER_UPDATE_SERVICE_TIMEOUT=2m"}, extra...)
	return &swarmCase{t: t, x: x, e: e, env: env, labels: map[string]string{"watcher.enable": "true", "watcher.scope": scope}}
}

// push pushes repo:tag and returns repo:tag@digest.
func (c *swarmCase) push(repo, tag string, spec testenv.ImageSpec) string {
	ref, d := c.e.Registry.PushImage(c.t, repo, tag, spec)
	return ref + "@" + d.String()
}

func (c *swarmCase) service(name string, s testenv.ServiceSpec) string {
	s.Labels = c.labels
	return c.e.Service(c.e.Name(name), s)
}

// once runs `watcher once` and wants exit code want.
func (c *swarmCase) once(want int) string {
	c.t.Helper()
	code, out, stderr := runCmd(c.t, c.env, "once")
	c.t.Logf("watcher once:\n%s%s", out, stderr)
	if code != want {
		c.t.Fatalf("watcher once = exit %d, want %d\n%s%s", code, want, out, stderr)
	}
	return out
}

func (c *swarmCase) wantTasks(id, image string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.e.WaitTasks(ctx, id, image); err != nil {
		c.t.Errorf("tasks: %v", err)
	}
}

// tableLine is the line of the report table naming service name.
func tableLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "service "+name+" ") {
			return l
		}
	}
	return ""
}

// broken is an image whose program exits 1 a second after it starts: Swarm's monitor sees its
// tasks fail.
var broken = testenv.ImageSpec{Version: "broken", Env: []string{"APP_EXIT_CODE=1", "APP_EXIT_AFTER=1s"}}

func TestSwarm(t *testing.T) {
	x, e := testenv.SwarmEngine(t)
	t.Setenv("DOCKER_HOST", x.Host)
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env)
	}{
		{"ReplicatedAndGlobal", testSwarmReplicatedAndGlobal},
		{"SwarmRollsBack", testSwarmRollsBack},
		{"SwarmPauses", testSwarmPauses},
		{"PrivateImage", testSwarmPrivateImage},
		{"ConcurrentUpdate", testSwarmConcurrentUpdate},
		{"Daemon", testSwarmDaemon},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, x, e) })
	}
}

// testSwarmReplicatedAndGlobal: `watcher once` updates a replicated service (2 replicas) and a
// global one to repo:tag@new and exits 0; `watcher rollback` then asks Swarm for the previous spec.
func testSwarmReplicatedAndGlobal(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	c := newSwarmCase(t, x, e)
	v1 := c.push("app", "1", testenv.ImageSpec{Version: "v1"})
	rep := c.service("rep", testenv.ServiceSpec{Image: v1, Replicas: 2})
	glob := c.service("glob", testenv.ServiceSpec{Image: v1, Global: true})
	v2 := c.push("app", "1", testenv.ImageSpec{Version: "v2"})
	out := c.once(0)
	for name, id := range map[string]string{"rep": rep, "glob": glob} {
		if l := tableLine(out, e.Name(name)); !strings.Contains(l, " updated ") {
			t.Errorf("%s: table line %q, want updated", name, l)
		}
		if got := e.ServiceImage(id); got != v2 {
			t.Errorf("%s: service image %s, want %s", name, got, v2)
		}
		c.wantTasks(id, v2)
	}
	if !strings.Contains(tableLine(out, e.Name("rep")), "2/2 tasks") {
		t.Errorf("rep: table line %q, want 2/2 tasks", tableLine(out, e.Name("rep")))
	}

	code, out, stderr := runCmd(t, c.env, "rollback", e.Name("rep"))
	if code != 0 || !strings.Contains(out, "Swarm put the previous spec back") || e.ServiceImage(rep) != v1 {
		t.Fatalf("watcher rollback = exit %d, image %s\n%s%s\nwant exit 0 and %s", code, e.ServiceImage(rep), out, stderr, v1)
	}
	c.wantTasks(rep, v1)
	if code, _, stderr := runCmd(t, c.env, "rollback", e.Name("rep")); code != 1 || !strings.Contains(stderr, "already rolled back") {
		t.Errorf("second watcher rollback = exit %d\n%s\nwant exit 1, already rolled back", code, stderr)
	}
}

// testSwarmRollsBack: a broken new version under failure_action rollback: Swarm rolls it back,
// the line is rolled_back with ServiceRolledBack and Swarm's message, the service runs the old
// digest, and `watcher once` exits 1.
func testSwarmRollsBack(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	c := newSwarmCase(t, x, e)
	v1 := c.push("rb", "1", testenv.ImageSpec{Version: "v1"})
	id := c.service("rb", testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &swarm.UpdateConfig{
		Parallelism: 1, Monitor: 3 * time.Second, FailureAction: swarm.UpdateFailureActionRollback}})
	c.push("rb", "1", broken)
	out := c.once(1)
	if l := tableLine(out, e.Name("rb")); !strings.Contains(l, " rolled_back ") || !strings.Contains(l, "service/ServiceRolledBack: Swarm rolled the update back: update rolled back due to failure") {
		t.Errorf("table line %q, want rolled_back, service/ServiceRolledBack with Swarm's message", l)
	}
	if got := e.ServiceImage(id); got != v1 {
		t.Errorf("service image %s, want the old %s", got, v1)
	}
	c.wantTasks(id, v1)
}

// testSwarmPauses: the same under failure_action pause: failed, ServicePaused, exit 1.
func testSwarmPauses(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	c := newSwarmCase(t, x, e)
	v1 := c.push("pause", "1", testenv.ImageSpec{Version: "v1"})
	c.service("pause", testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &swarm.UpdateConfig{
		Parallelism: 1, Monitor: 3 * time.Second, FailureAction: swarm.UpdateFailureActionPause}})
	c.push("pause", "1", broken)
	out := c.once(1)
	if l := tableLine(out, e.Name("pause")); !strings.Contains(l, " failed ") || !strings.Contains(l, "service/ServicePaused: Swarm paused the update") {
		t.Errorf("table line %q, want failed, service/ServicePaused", l)
	}
}

// testSwarmPrivateImage: an image of a registry that wants credentials, which only the watcher's
// config has (the spec has none): the check uses them, and so does the update (X-Registry-Auth):
// the node pulls the new digest with them.
func testSwarmPrivateImage(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	reg := testenv.NewRegistry(t)
	c := newSwarmCase(t, x, e, "WATCHER_REGISTRY_AUTH_PRIV_HOST="+reg.Host, "WATCHER_REGISTRY_AUTH_PRIV_USERNAME=user",
		"WATCHER_REGISTRY_AUTH_PRIV_PASSWORD=secret")
	ref, d1 := reg.PushImage(t, "private", "1", testenv.ImageSpec{Version: "v1"})
	v1 := ref + "@" + d1.String()
	e.Pull(v1) // on the node before the registry wants credentials: the first tasks need none
	reg.RequireToken("user", "secret")
	id := c.service("private", testenv.ServiceSpec{Image: v1})
	_, d2 := reg.PushImage(t, "private", "1", testenv.ImageSpec{Version: "v2"})
	c.once(0)
	c.wantTasks(id, ref+"@"+d2.String())
	authed := slices.ContainsFunc(reg.Requests(), func(r testenv.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.Path, "/manifests/"+d2.String()) && r.Auth == "Bearer"
	})
	if !authed {
		t.Error("the node never fetched the new manifest with a token")
	}
}

// testSwarmConcurrentUpdate: `docker service update --env-add` while the watcher waits for
// Swarm's rollout: Swarm starts over with both changes, the run reports updated, and the other
// change stands.
func testSwarmConcurrentUpdate(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	c := newSwarmCase(t, x, e)
	v1 := c.push("conc", "1", testenv.ImageSpec{Version: "v1"})
	id := c.service("conc", testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &swarm.UpdateConfig{
		Parallelism: 1, Delay: time.Second, Monitor: time.Second, FailureAction: swarm.UpdateFailureActionPause}})
	v2 := c.push("conc", "1", testenv.ImageSpec{Version: "v2"})
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, stderr := runCmd(t, c.env, "once")
		done <- result{code, out, stderr}
	}()
	waitUpdating(t, x.Docker, id)
	testenv.DockerCLI(t, x.Host, "service", "update", "--detach", "--env-add", "OTHER=1", id)
	r := <-done
	if l := tableLine(r.out, e.Name("conc")); r.code != 0 || !strings.Contains(l, " updated ") {
		t.Fatalf("watcher once = exit %d, line %q\n%s%s\nwant exit 0, updated", r.code, l, r.out, r.err)
	}
	res, err := x.Docker.ServiceInspect(context.Background(), id, client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := res.Service.Spec.TaskTemplate.ContainerSpec; cs.Image != v2 || !slices.Contains(cs.Env, "OTHER=1") {
		t.Errorf("spec after both updates: image %s, env %v; want %s and OTHER=1", cs.Image, cs.Env, v2)
	}
	c.wantTasks(id, v2)
}

// waitUpdating waits until Swarm rolls an update of the service out.
func waitUpdating(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := cli.ServiceInspect(context.Background(), id, client.ServiceInspectOptions{})
		if err == nil && res.Service.UpdateStatus != nil && res.Service.UpdateStatus.State == swarm.UpdateStateUpdating {
			return
		}
	}
	t.Fatal("the service's update never started")
}

// testSwarmDaemon: the daemon's /v1/containers lists a watched service with kind service and its
// replicas; /metrics counts it in watcher_services_watched.
func testSwarmDaemon(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	const token = "s3cret-token-0123456789"
	addr := freePort(t)
	c := newSwarmCase(t, x, e, "WATCHER_HTTP_LISTEN="+addr, "WATCHER_HTTP_TOKEN="+token)
	v1 := c.push("api", "1", testenv.ImageSpec{Version: "v1"})
	id := c.service("api", testenv.ServiceSpec{Image: v1, Replicas: 2})
	stop := startDaemon(t, c.env)
	defer stop()
	var list struct{ Containers []updater.ContainerStatus }
	call(t, http.MethodGet, "http://"+addr+"/v1/containers", token, &list)
	i := slices.IndexFunc(list.Containers, func(s updater.ContainerStatus) bool { return s.ID == id })
	if i < 0 || list.Containers[i].Kind != updater.KindService || list.Containers[i].Replicas == nil ||
		*list.Containers[i].Replicas != (updater.Replicas{Mode: "replicated", Desired: 2, Running: 2}) {
		t.Errorf("/v1/containers = %+v, want the service with kind service and 2 of 2 replicas", list.Containers)
	}
	var rep updater.Report
	call(t, http.MethodPost, "http://"+addr+"/v1/update?wait=true", token, &rep)
	if rep.WatchedServices != 1 {
		t.Errorf("run report: watched_services %d, want 1", rep.WatchedServices)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if m, _ := io.ReadAll(resp.Body); !strings.Contains(string(m), "watcher_services_watched 1") {
		t.Errorf("/metrics lacks watcher_services_watched 1")
	}
}
