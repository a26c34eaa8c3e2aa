package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// The crash tests run Replace in a child process (this test binary, re-executed to run only
// TestCrashChild) that SIGKILLs itself right after its Nth journal write, or that the parent
// kills at a random instant, then Recover in the parent with a fresh Manager on the same file.
// Whatever the instant, exactly one container must run under the original name, on the old or
// the new image, with nothing temporary left.

const crashChildEnv = "LIFECYCLE_CRASH_CHILD"

type crashJob struct {
	DB, ContainerID, Image, PullRef string
	Verify                          time.Duration
	CrashAt                         int    // SIGKILL after this journal write; 0 = never
	CrashAfter                      string // SIGKILL right after the journal write of this step
	Handover                        bool   // run Handover (as the container's own watcher) instead of Replace
	// Signal is sent instead of SIGKILL: "TERM" is the daemon's graceful stop (Replace's context
	// ends, as main's signal.NotifyContext does). Delay postpones it after the crash point.
	Signal string
	Delay  time.Duration
	// Recreate and Replaced are Spec's: a dependent following a parent replaced before.
	Recreate bool
	Replaced map[string]string
	// StartFirst is Spec's (start-first crash tests).
	StartFirst bool
}

// childJob reads a child process's job from the environment variable name into job (the test
// is skipped when it is not set: the child tests run only when a parent starts them) and returns
// the context SIGTERM ends, as main's does.
func childJob(t *testing.T, name string, job any) (context.Context, context.CancelFunc) {
	t.Helper()
	raw := os.Getenv(name)
	if raw == "" {
		t.Skip("only run as a child process of the crash tests or the fault campaign")
	}
	if err := json.Unmarshal([]byte(raw), job); err != nil {
		t.Fatal(err)
	}
	return signal.NotifyContext(context.Background(), syscall.SIGTERM)
}

func TestCrashChild(t *testing.T) {
	var job crashJob
	ctx, stop := childJob(t, crashChildEnv, &job)
	defer stop()
	var fired sync.Once
	crash := func(seq int, step string) {
		if seq != job.CrashAt && step != job.CrashAfter {
			return
		}
		sig := syscall.SIGKILL
		if job.Signal == "TERM" {
			sig = syscall.SIGTERM
		}
		fired.Do(func() {
			kill := func() { _ = syscall.Kill(os.Getpid(), sig) }
			if job.Delay > 0 {
				time.AfterFunc(job.Delay, kill)
				return
			}
			kill()
			if sig == syscall.SIGKILL {
				select {}
			}
		})
	}
	s, err := store.Open(job.DB)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{ContainerID: job.ContainerID, Image: job.Image, PullRef: job.PullRef, Verify: job.Verify, Rollback: true,
		Recreate: job.Recreate, Replaced: job.Replaced, StartFirst: job.StartFirst}
	var res Result
	if job.Handover {
		m := New(cli, s, Options{StopTimeout: 5 * time.Second, SelfID: job.ContainerID, Logger: testLogger(t)})
		m.afterJournal = crash
		res = m.Handover(ctx, spec, func(context.Context, string) error { return s.Close() })
	} else {
		m := New(cli, s, Options{StopTimeout: 5 * time.Second, Logger: testLogger(t)})
		m.afterJournal = crash
		res = m.Replace(ctx, spec)
	}
	b, _ := json.Marshal(res)
	fmt.Println("RESULT", string(b))
}

// crashRun is one scenario's state: a service and two images to move between.
type crashRun struct {
	f       *fixture
	name    string
	ref     string
	digests [2]string // by-digest references of the two versions
	images  [2]string // their image IDs
	// startFirst: updates are start-first, and the service is on network net with an alias.
	startFirst bool
	net        string
}

// child runs Replace in a child process and returns whether it was killed (by itself after
// journal write crashAt, or by us after killAfter if > 0).
func (c *crashRun) child(id string, crashAt int, killAfter time.Duration) (killed bool, out string) {
	t := c.f.t
	t.Helper()
	cur := c.f.Inspect(id).Image
	pull := c.digests[0]
	if cur == c.images[0] {
		pull = c.digests[1]
	}
	return crashChild(t, crashJob{DB: c.f.db, ContainerID: id, Image: c.ref, PullRef: pull, Verify: 500 * time.Millisecond, CrashAt: crashAt,
		StartFirst: c.startFirst}, killAfter)
}

// crashChild runs job in a child process (TestCrashChild) and returns whether it was killed (by
// itself after its crash point, or by us after killAfter if > 0).
func crashChild(t *testing.T, job crashJob, killAfter time.Duration) (killed bool, out string) {
	t.Helper()
	raw, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	var buf safeBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, buf.String()
		}
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, buf.String())
	}
	return false, buf.String()
}

// recoverAndCheck runs Recover in a fresh Manager and checks the invariant. It returns the
// serving container's ID.
func (c *crashRun) recoverAndCheck(label string, settle time.Duration) string {
	t := c.f.t
	t.Helper()
	s, err := store.Open(c.f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := New(c.f.Docker, s, Options{StopTimeout: 5 * time.Second, Logger: testLogger(t)})
	m.settle = settle
	for _, res := range m.Recover(context.Background()) {
		if res.Outcome == OutcomeFailed && res.Err != nil && res.Err.Reason == failure.RollbackFailed {
			t.Errorf("%s: Recover: %v", label, res.Err)
		}
	}
	checkAllFinished(t, s, label)
	ins := c.f.checkServing(c.name)
	if ins.Image != c.images[0] && ins.Image != c.images[1] {
		t.Fatalf("%s: serving image %s, want one of %v", label, ins.Image, c.images)
	}
	if n := len(c.f.Owned()); n != 1 {
		t.Fatalf("%s: %d containers, want 1", label, n)
	}
	if c.net != "" {
		c.f.checkAlias(ins.ID, c.net, label)
	}
	return ins.ID
}

func newCrashRun(t *testing.T, v2 testenv.ImageSpec, hc *container.HostConfig) (*crashRun, string) {
	return newCrashRunOrder(t, v2, hc, false)
}

// newCrashRunOrder is newCrashRun with start-first updates of a service on a network of its own
// (runOnNetwork) when startFirst.
func newCrashRunOrder(t *testing.T, v2 testenv.ImageSpec, hc *container.HostConfig, startFirst bool) (*crashRun, string) {
	f := newFixture(t)
	_ = f.store.Close() // the child and Recover open it in turn
	c := &crashRun{f: f, startFirst: startFirst}
	var d0, d1 string
	c.ref, d0 = f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	v2.Version = "v2"
	_, d1 = f.push("app", "v2", v2)
	f.Pull(d1)
	c.digests = [2]string{d0, d1}
	var id string
	if startFirst {
		id, c.name, c.net = f.runOnNetwork("svc", c.ref, hc)
	} else {
		id, c.name = f.run("svc", c.ref, nil, hc)
	}
	c.images = [2]string{f.imageID(d0), f.imageID(d1)}
	return c, id
}

// crashScenarios are the updates the crash tests kill at every step: one that succeeds and one
// that is rolled back, of a plain and of an AutoRemove container. Made afresh for each test: the
// host configs are filled in (network mode) when the containers are created.
func crashScenarios() []struct {
	name string
	v2   testenv.ImageSpec
	hc   *container.HostConfig
} {
	return []struct {
		name string
		v2   testenv.ImageSpec
		hc   *container.HostConfig
	}{
		{"update", testenv.ImageSpec{}, nil},
		{"rollback", testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=1", "APP_EXIT_AFTER=100ms"}}, nil},
		{"autoremove update", testenv.ImageSpec{}, &container.HostConfig{AutoRemove: true}},
		{"autoremove rollback", testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=1", "APP_EXIT_AFTER=100ms"}}, &container.HostConfig{AutoRemove: true}},
	}
}

// TestCrashAtEveryJournalStep kills the watcher after each journal write of an update that
// succeeds and of one that is rolled back, for plain and AutoRemove containers.
func TestCrashAtEveryJournalStep(t *testing.T) {
	t.Parallel()
	for _, sc := range crashScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			c, id := newCrashRun(t, sc.v2, sc.hc)
			c.crashAtEveryStep(id)
		})
	}
}

// crashAtEveryStep runs the update from id in a child killed after journal write 1, 2, ...,
// recovering and checking after each, until an update ends without a crash.
func (c *crashRun) crashAtEveryStep(id string) {
	t := c.f.t
	for n := 1; ; n++ {
		killed, out := c.child(id, n, 0)
		if !killed {
			t.Logf("no journal write %d: the update ended without a crash", n)
			if testing.Verbose() {
				t.Log(out)
			}
			c.recoverAndCheck("after a complete run", 0)
			return
		}
		// The child dies right after a journal write, before the step's request: no request is
		// in flight, so Recover need not let one settle.
		id = c.recoverAndCheck("crash after journal write "+strconv.Itoa(n), 0)
		if t.Failed() {
			t.Log(out)
			return
		}
	}
}

// TestCrashAtRandomInstants kills the watcher at random moments of an update.
func TestCrashAtRandomInstants(t *testing.T) {
	t.Parallel()
	n := 6
	if testing.Short() {
		n = 2
	}
	if v, err := strconv.Atoi(os.Getenv("LIFECYCLE_KILLS")); err == nil {
		n = v
	}
	c, id := newCrashRun(t, testenv.ImageSpec{}, &container.HostConfig{AutoRemove: true})
	for i := range n {
		after := time.Duration(50+rand.IntN(1500)) * time.Millisecond
		killed, out := c.child(id, 0, after)
		id = c.recoverAndCheck(fmt.Sprintf("kill %d after %v (killed=%v)", i, after, killed), defaultSettle)
		if t.Failed() {
			t.Log(out)
			return
		}
	}
}

// checkAllFinished fails the test for every journaled transaction that is not finished.
func checkAllFinished(t *testing.T, s *store.Store, label string) {
	t.Helper()
	entries, _ := s.Journals()
	for _, e := range entries {
		var r record
		_ = json.Unmarshal(e.Data, &r)
		if !r.finished() {
			t.Errorf("%s: transaction %s still unfinished at step %s", label, r.TxID, r.Step)
		}
	}
}
