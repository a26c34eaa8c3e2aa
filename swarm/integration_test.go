package swarm

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mobyswarm "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// The integration tests run against one private dockerd that is the single manager of a swarm of
// its own (testenv.SwarmEngine), shared by the subtests of TestSwarm: starting an engine and a
// swarm costs seconds, a service update a few more (every service here has a 1s monitor).

func testLogger() *slog.Logger {
	if os.Getenv("SWARM_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fixture is one subtest's manager, journal and images on the shared swarm.
type fixture struct {
	t   *testing.T
	x   *testenv.ExtraEngine
	e   *testenv.Env
	j   *store.Store
	d   *counting
	m   *Manager
	db  string
	ctx context.Context
}

func newFixture(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env, o Options) *fixture {
	db := filepath.Join(t.TempDir(), "watcher.db")
	s, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	if o.Poll == 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	d := &counting{Docker: x.Docker}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return &fixture{t: t, x: x, e: e, j: s, d: d, m: New(d, s, o), db: db, ctx: ctx}
}

// counting is the real client, counting the ServiceUpdates sent; before, when set, runs first.
type counting struct {
	Docker
	updates atomic.Int32
	before  func(id string)
}

func (c *counting) ServiceUpdate(ctx context.Context, id string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	c.updates.Add(1)
	if c.before != nil {
		c.before(id)
	}
	return c.Docker.ServiceUpdate(ctx, id, o)
}

// push pushes an image and returns repo:tag@digest, the reference the watcher sets.
func (f *fixture) push(repo, tag string, spec testenv.ImageSpec) string {
	ref, d := f.e.Registry.PushImage(f.t, repo, tag, spec)
	return ref + "@" + d.String()
}

// waitState waits until the service's UpdateStatus is state.
func (f *fixture) waitState(id string, state mobyswarm.UpdateState) {
	f.t.Helper()
	for f.ctx.Err() == nil {
		res, err := f.x.Docker.ServiceInspect(f.ctx, id, client.ServiceInspectOptions{})
		if err == nil && res.Service.UpdateStatus != nil && res.Service.UpdateStatus.State == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.t.Fatalf("service %s never reached update state %s", id, state)
}

// docker runs the Docker CLI against the swarm engine.
func (f *fixture) docker(args ...string) string {
	f.t.Helper()
	return testenv.DockerCLI(f.t, f.x.Host, args...)
}

func (f *fixture) wantTasks(id, image string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	if err := f.e.WaitTasks(ctx, id, image); err != nil {
		f.t.Fatalf("tasks: %v", err)
	}
}

func TestSwarm(t *testing.T) {
	x, e := testenv.SwarmEngine(t)
	run := func(name string, f func(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env)) {
		t.Run(name, func(t *testing.T) { f(t, x, e) })
	}
	// What a user sees of an update (replicated and global services, Swarm's rollback and pause,
	// private images, a concurrent `docker service update`) is tested through the binary
	// (cmd/watcher/swarm_test.go) and the updater; these are the mechanism's corners.
	run("OutOfSequence", testOutOfSequence)
	run("ImageChangedMeanwhile", testImageChangedMeanwhile)
	run("Timeout", testTimeout)
	run("RollbackPrevious", testRollbackPrevious)
	run("InterruptedAndResumed", testInterruptedAndResumed)
	run("Crash", testCrash)
}

// testOutOfSequence: someone writes the service between the watcher's inspect and its update; the
// manager answers "update out of sequence"; the watcher reads it again and sends once more, and
// both changes stand.
func testOutOfSequence(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	f := newFixture(t, x, e, Options{})
	v1 := f.push("seq", "1", testenv.ImageSpec{Version: "v1"})
	id := e.Service(e.Name("seq"), testenv.ServiceSpec{Image: v1})
	v2 := f.push("seq", "1", testenv.ImageSpec{Version: "v2"})
	var once sync.Once
	f.d.before = func(string) {
		once.Do(func() { f.docker("service", "update", "--detach", "--label-add", "other=1", id) })
	}
	r := f.m.Update(f.ctx, Spec{ServiceID: id, Image: v2})
	if r.Outcome != OutcomeUpdated || r.Err != nil {
		t.Fatalf("update = %+v (%v), want updated", r, r.Err)
	}
	if n := f.d.updates.Load(); n != 2 {
		t.Errorf("%d ServiceUpdates sent, want 2 (the stale one, and one after reading the service again)", n)
	}
	res, _ := x.Docker.ServiceInspect(f.ctx, id, client.ServiceInspectOptions{})
	if res.Service.Spec.Labels["other"] != "1" || image(res.Service.Spec) != v2 {
		t.Errorf("spec: labels %v, image %s; want the other label kept and %s", res.Service.Spec.Labels, image(res.Service.Spec), v2)
	}
}

// testImageChangedMeanwhile: someone sets another image while the watcher waits: ServiceChanged,
// and their image stands.
func testImageChangedMeanwhile(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	f := newFixture(t, x, e, Options{})
	v1 := f.push("chg", "1", testenv.ImageSpec{Version: "v1"})
	id := e.Service(e.Name("chg"), testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &mobyswarm.UpdateConfig{
		Parallelism: 1, Delay: 2 * time.Second, Monitor: time.Second}})
	v2 := f.push("chg", "1", testenv.ImageSpec{Version: "v2"})
	v3 := f.push("chg", "3", testenv.ImageSpec{Version: "v3"})
	done := make(chan Result, 1)
	go func() { done <- f.m.Update(f.ctx, Spec{ServiceID: id, Image: v2}) }()
	f.waitState(id, mobyswarm.UpdateStateUpdating)
	f.docker("service", "update", "--detach", "--image", v3, id)
	r := <-done
	if r.Outcome != OutcomeFailed || r.Err == nil || r.Err.Reason != failure.ServiceChanged || !strings.Contains(r.Err.Message, v3) {
		t.Fatalf("update = %+v (%v), want failed, ServiceChanged naming %s", r, r.Err, v3)
	}
	if got := e.ServiceImage(id); got != v3 {
		t.Errorf("service image = %s, want %s", got, v3)
	}
}

// testTimeout: an update Swarm rolls out slower than the timeout (a minute's delay between
// tasks) ends failed, ServiceUpdateTimeout, saying how far it got; Swarm goes on.
func testTimeout(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	f := newFixture(t, x, e, Options{Timeout: 4 * time.Second})
	v1 := f.push("slow", "1", testenv.ImageSpec{Version: "v1"})
	id := e.Service(e.Name("slow"), testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &mobyswarm.UpdateConfig{
		Parallelism: 1, Delay: time.Minute, Monitor: time.Second}})
	v2 := f.push("slow", "1", testenv.ImageSpec{Version: "v2"})
	r := f.m.Update(f.ctx, Spec{ServiceID: id, Image: v2})
	if r.Outcome != OutcomeFailed || r.Err == nil || r.Err.Reason != failure.ServiceUpdateTimeout ||
		!strings.Contains(r.Err.Message, "of 2 replicas run") || !strings.Contains(r.Err.Message, "Swarm's update is updating") {
		t.Fatalf("update = %+v (%v), want failed, ServiceUpdateTimeout saying how many replicas run the new digest", r, r.Err)
	}
	if j, _ := f.j.ServiceJournals(); len(j) != 0 {
		t.Errorf("journal after the timeout: %d records, want none (the outcome is reported)", len(j))
	}
}

// testRollbackPrevious: after the watcher's update, a rollback asks Swarm for the previous spec
// (rollback=previous) and ends updated on the old image; asked again, the previous spec is no
// longer the watcher's and nothing is sent.
func testRollbackPrevious(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	f := newFixture(t, x, e, Options{})
	v1 := f.push("back", "1", testenv.ImageSpec{Version: "v1"})
	id := e.Service(e.Name("back"), testenv.ServiceSpec{Image: v1, Replicas: 2})
	v2 := f.push("back", "1", testenv.ImageSpec{Version: "v2"})
	if r := f.m.Update(f.ctx, Spec{ServiceID: id, Image: v2}); r.Outcome != OutcomeUpdated {
		t.Fatalf("update = %+v (%v)", r, r.Err)
	}
	r := f.m.Update(f.ctx, Spec{ServiceID: id, Image: v1, Expect: v2, Rollback: true})
	if r.Outcome != OutcomeUpdated || r.Err != nil || e.ServiceImage(id) != v1 {
		t.Fatalf("rollback = %+v (%v), image %s; want updated back to %s", r, r.Err, e.ServiceImage(id), v1)
	}
	f.wantTasks(id, v1)
	sent := f.d.updates.Load()
	r = f.m.Update(f.ctx, Spec{ServiceID: id, Image: v1, Expect: v2, Rollback: true})
	if r.Outcome != OutcomeFailed || r.Err == nil || r.Err.Reason != failure.ServiceChanged || f.d.updates.Load() != sent {
		t.Errorf("second rollback = %+v (%v), %d updates sent; want ServiceChanged and nothing sent", r, r.Err, f.d.updates.Load()-sent)
	}
}

// testInterruptedAndResumed: the watcher stops while Swarm rolls the update out (its context
// ends); the record stays, and the next Update of the service waits for that one instead of
// sending another.
func testInterruptedAndResumed(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	f := newFixture(t, x, e, Options{})
	v1 := f.push("intr", "1", testenv.ImageSpec{Version: "v1"})
	id := e.Service(e.Name("intr"), testenv.ServiceSpec{Image: v1, Replicas: 2, Update: &mobyswarm.UpdateConfig{
		Parallelism: 1, Delay: time.Second, Monitor: time.Second}})
	v2 := f.push("intr", "1", testenv.ImageSpec{Version: "v2"})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan Result, 1)
	go func() { done <- f.m.Update(ctx, Spec{ServiceID: id, Image: v2}) }()
	f.waitState(id, mobyswarm.UpdateStateUpdating)
	cancel()
	if r := <-done; r.Err == nil || r.Err.Reason != failure.Interrupted {
		t.Fatalf("interrupted update = %+v (%v), want Interrupted", r, r.Err)
	}
	if j, _ := f.j.ServiceJournals(); len(j) != 1 {
		t.Fatalf("journal after the interruption: %d records, want the update's", len(j))
	}
	r := New(f.d, f.j, Options{Poll: 200 * time.Millisecond, Logger: testLogger()}).Update(f.ctx, Spec{ServiceID: id, Image: v2})
	if r.Outcome != OutcomeUpdated || !r.Recovered || f.d.updates.Load() != 1 {
		t.Fatalf("update after the restart = %+v (%v), %d ServiceUpdates in all; want the first one waited for", r, r.Err, f.d.updates.Load())
	}
}
