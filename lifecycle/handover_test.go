package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// The self-update tests play both watchers in this process: a "P-role" Manager (SelfID = the
// predecessor's container, here a plain test app container) starts the handover, and a
// "S-role" Manager (SelfID = the successor) or another P-role one reads the journal afterwards,
// each on the same state file, opened in turn as the real processes would (the store is
// exclusive, so the release callback closes P's, like the daemon does).

// handoverRun is one scenario: P, a v1 container, and a v2 release to self-update to.
type handoverRun struct {
	f                  *fixture
	p, name            string // the predecessor and its name
	ref, pull          string // the image reference and the by-digest reference of v2
	oldImage, newImage string // image IDs of v1 and v2
}

func newHandoverRun(t *testing.T, v2 testenv.ImageSpec, hc *container.HostConfig) *handoverRun {
	t.Helper()
	f := newFixture(t)
	_ = f.store.Close() // each role opens the state file in turn
	h := &handoverRun{f: f}
	h.ref, _ = f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	h.p, h.name = f.run("watcher", h.ref, nil, hc)
	h.oldImage = f.Inspect(h.p).Image
	v2.Version = "v2"
	h.pull = f.release(h.ref, v2)
	f.Pull(h.pull)
	h.newImage = f.imageID(h.pull)
	return h
}

// role opens the state file for a watcher whose own container is self ("" = neither P nor S)
// and returns a Manager on it with a short verify window and no settle wait. The store is
// closed at the end of the test unless the caller closes it first (closing twice is harmless).
func (h *handoverRun) role(self string, check func(context.Context) error, healthTimeout time.Duration) (*Manager, *store.Store) {
	h.f.t.Helper()
	s, err := store.Open(h.f.db)
	if err != nil {
		h.f.t.Fatal(err)
	}
	h.f.t.Cleanup(func() { _ = s.Close() })
	if healthTimeout == 0 {
		healthTimeout = 10 * time.Second
	}
	m := New(h.f.Docker, s, Options{StopTimeout: 5 * time.Second, Verify: 500 * time.Millisecond, HealthTimeout: healthTimeout,
		Logger: testLogger(h.f.t), SelfID: self, SelfCheck: check})
	m.settle = 0
	return m, s
}

// released is what the release callback saw.
type released struct {
	calls     int
	successor string                    // the ID it was given
	ins       container.InspectResponse // the successor at that moment
	inspErr   error
	step      string        // the journal's step at that moment
	wait      time.Duration // SuccessorWait of its context
}

// spec is the Spec of the self-update to v2.
func (h *handoverRun) spec() Spec {
	return Spec{ContainerID: h.p, Image: h.ref, PullRef: h.pull, Rollback: true}
}

// handover runs P's Handover. Its release records what it sees, then closes P's store and
// returns nil, like the daemon; with fail set it returns an error and keeps the store open.
func (h *handoverRun) handover(fail error) (Result, *released) {
	h.f.t.Helper()
	m, s := h.role(h.p, nil, 0)
	rel := &released{}
	res := m.Handover(ctx(h.f.t), h.spec(), func(ctx context.Context, successor string) error {
		rel.calls++
		rel.successor = successor
		rel.wait, _ = SuccessorWait(ctx)
		var r client.ContainerInspectResult
		r, rel.inspErr = h.f.Docker.ContainerInspect(ctx, successor, client.ContainerInspectOptions{})
		rel.ins = r.Container
		if entries, err := s.JournalsFor(h.p); err == nil && len(entries) > 0 {
			var rec record
			_ = json.Unmarshal(entries[len(entries)-1].Data, &rec)
			rel.step = rec.Step
		}
		if fail != nil {
			return fail
		}
		return s.Close()
	})
	_ = s.Close() // when release was not called, or failed
	return res, rel
}

// handedOver runs a handover that must succeed and returns the successor's ID.
func (h *handoverRun) handedOver() (Result, string) {
	h.f.t.Helper()
	res, rel := h.handover(nil)
	if res.Outcome != OutcomeHandedOver || res.Err != nil {
		h.f.t.Fatalf("Handover = %s, %v; want handed_over", res.Outcome, res.Err)
	}
	if rel.calls != 1 || res.NewID == "" || rel.successor != res.NewID {
		h.f.t.Fatalf("release called %d times with %q; Result.NewID %q", rel.calls, shortID(rel.successor), shortID(res.NewID))
	}
	return res, res.NewID
}

// readRecord reads transaction txid's journal record (the store must be open: s).
func readRecord(t *testing.T, s *store.Store, txid string) record {
	t.Helper()
	e, err := s.Journal(txid)
	if err != nil {
		t.Fatalf("journal %s: %v", txid, err)
	}
	var r record
	if err := json.Unmarshal(e.Data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitState waits until container id satisfies ok.
func (f *fixture) waitState(id, what string, ok func(container.InspectResponse) bool) container.InspectResponse {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ins := f.Inspect(id)
		if ok(ins) {
			return ins
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s is %s after 30s, want %s", shortID(id), ins.State.Status, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exited(ins container.InspectResponse) bool {
	return ins.State != nil && !ins.State.Running && ins.State.Status == container.StateExited
}

// checkHandedOverState asserts the engine state right after a handover: S runs under the name
// on v2, P still runs, set aside.
func (h *handoverRun) checkHandedOverState(res Result, s string) {
	h.f.t.Helper()
	succ := h.f.checkRunningAs(s, h.name)
	if succ.Image != h.newImage || envValue(succ.Config.Env, "APP_VERSION") != "v2" {
		h.f.t.Errorf("successor runs %s (APP_VERSION %q), want v2 %s", shortID(succ.Image), envValue(succ.Config.Env, "APP_VERSION"), shortID(h.newImage))
	}
	pred := h.f.checkRunningAs(h.p, asideName(h.name, res.TxID))
	if pred.Image != h.oldImage {
		h.f.t.Errorf("predecessor runs %s, want %s", shortID(pred.Image), shortID(h.oldImage))
	}
	if n := len(h.f.Owned()); n != 2 {
		h.f.t.Errorf("%d containers, want 2 (P and S)", n)
	}
}

// checkRunningAs asserts container id runs under name.
func (f *fixture) checkRunningAs(id, name string) container.InspectResponse {
	f.t.Helper()
	ins := f.Inspect(id)
	if ins.Name != "/"+name {
		f.t.Errorf("%s is named %s, want %s", shortID(id), ins.Name, name)
	}
	if !ins.State.Running {
		f.t.Errorf("%s (%s) is %s, want running", shortID(id), ins.Name, ins.State.Status)
	}
	return ins
}

// checkRolledBack asserts P alone serves under its name, on v1, and S is gone.
func (h *handoverRun) checkRolledBack(s string) {
	h.f.t.Helper()
	ins := h.f.checkServing(h.name)
	if ins.ID != h.p || ins.Image != h.oldImage {
		h.f.t.Errorf("serving %s on %s, want P %s on %s", shortID(ins.ID), shortID(ins.Image), shortID(h.p), shortID(h.oldImage))
	}
	if s != "" {
		if _, err := h.f.Docker.ContainerInspect(context.Background(), s, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			h.f.t.Errorf("successor %s still there (inspect: %v)", shortID(s), err)
		}
	}
	if n := len(h.f.Owned()); n != 1 {
		h.f.t.Errorf("%d containers, want 1", n)
	}
}

// last is the last of Recover's results.
func last(t *testing.T, rs []Result) Result {
	t.Helper()
	if len(rs) == 0 {
		t.Fatal("Recover returned no result")
	}
	return rs[len(rs)-1]
}

// TestHandoverUpdates: the happy path. P creates S, sets itself aside, names S, journals
// "handover", releases the store and starts S; S's Recover verifies itself and removes P.
func TestHandoverUpdates(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	res, rel := h.handover(nil)
	if res.Outcome != OutcomeHandedOver || res.Err != nil {
		t.Fatalf("Handover = %s, %v; want handed_over", res.Outcome, res.Err)
	}
	if rel.calls != 1 {
		t.Fatalf("release called %d times, want once", rel.calls)
	}
	s := res.NewID
	if s == "" || s == h.p || rel.successor != s {
		t.Fatalf("release got %q, Result.NewID %q, P %s", shortID(rel.successor), shortID(s), shortID(h.p))
	}
	if res.OldID != h.p || res.Name != h.name || res.NewImageID != h.newImage {
		t.Errorf("Result = %+v", res)
	}
	// at release time: S exists, has the name, has not started, and the journal says handover
	switch {
	case rel.inspErr != nil:
		t.Errorf("at release, the successor: %v", rel.inspErr)
	case rel.ins.Name != "/"+h.name:
		t.Errorf("at release, the successor is named %s, want %s", rel.ins.Name, h.name)
	case rel.ins.State.Status != container.StateCreated || rel.ins.State.Running:
		t.Errorf("at release, the successor is %s, want created and not started", rel.ins.State.Status)
	}
	if rel.step != stepHandover {
		t.Errorf("at release, the journal is at step %q, want %q", rel.step, stepHandover)
	}
	h.checkHandedOverState(res, s)

	// S's turn: the store is free (release closed it), and the record is still at handover.
	checks := atomic.Int32{}
	m, st := h.role(s, func(context.Context) error { checks.Add(1); return nil }, 0)
	if r := readRecord(t, st, res.TxID); r.Step != stepHandover || !r.Handover || r.NewID != s {
		t.Fatalf("record at %s (handover %v, new %s), want at handover with the successor", r.Step, r.Handover, shortID(r.NewID))
	}
	rs := m.Recover(ctx(t))
	if len(rs) != 1 || rs[0].Outcome != OutcomeUpdated || rs[0].Err != nil || rs[0].NewID != s || rs[0].OldID != h.p {
		t.Fatalf("S's Recover = %+v; want one updated result", rs)
	}
	if checks.Load() == 0 {
		t.Error("SelfCheck was never called")
	}
	if _, err := h.f.Docker.ContainerInspect(context.Background(), h.p, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("the predecessor is still there (inspect: %v)", err)
	}
	ins := h.f.checkServing(h.name)
	if ins.ID != s || ins.Image != h.newImage {
		t.Errorf("serving %s on %s, want S %s on %s", shortID(ins.ID), shortID(ins.Image), shortID(s), shortID(h.newImage))
	}
	if n := len(h.f.Owned()); n != 1 {
		t.Errorf("%d containers, want 1", n)
	}
	if r := readRecord(t, st, res.TxID); r.Step != stepDone || r.Outcome != OutcomeUpdated {
		t.Errorf("record at %s, outcome %s; want done, updated", r.Step, r.Outcome)
	}
	// A second Recover has nothing to do.
	if rs := m.Recover(ctx(t)); len(rs) != 0 {
		t.Errorf("second Recover = %+v, want nothing", rs)
	}
}

// TestHandoverSuccessorExits: S exits at once; P, restarted, rolls back: S removed, P serves
// again under its name, same container, same image.
func TestHandoverSuccessorExits(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=1"}}, nil)
	res, s := h.handedOver()
	h.f.waitState(s, "exited", exited)

	m, _ := h.role(h.p, nil, 0)
	got := last(t, m.Recover(ctx(t)))
	if got.Outcome != OutcomeRolledBack || got.Err == nil || got.Err.Reason != failure.ContainerExited {
		t.Fatalf("P's Recover = %s, %v; want rolled_back ContainerExited", got.Outcome, got.Err)
	}
	if got.TxID != res.TxID {
		t.Errorf("Recover finished %s, want %s", got.TxID, res.TxID)
	}
	h.checkRolledBack(s)
}

// TestHandoverStepBack: P, restarted while S runs, steps back at once and changes nothing.
func TestHandoverStepBack(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	res, s := h.handedOver()
	startedAt := h.f.Inspect(s).State.StartedAt

	m, st := h.role(h.p, nil, 0)
	// Another unfinished transaction, journaled after the handover: P must give the journal up
	// at once and leave it to S.
	other := record{TxID: newTxID(), ContainerID: "other-container", Name: "other", Step: stepPull, Seq: 2, Started: time.Now(), Updated: time.Now()}
	b, _ := json.Marshal(other)
	if err := st.PutJournal(other.TxID, other.ContainerID, b); err != nil {
		t.Fatal(err)
	}
	rs := m.Recover(ctx(t))
	got := last(t, rs)
	if len(rs) != 1 || got.Outcome != OutcomeHandedOver || got.OldID != h.p || got.NewID != s || got.Err != nil {
		t.Fatalf("P's Recover = %+v; want only handed_over from P to S", rs)
	}
	if r := readRecord(t, st, other.TxID); r.Step != stepPull || r.Seq != 2 {
		t.Errorf("the later record was touched after stepping back: at %s, seq %d", r.Step, r.Seq)
	}
	h.checkHandedOverState(res, s)
	if ins := h.f.Inspect(s); ins.State.StartedAt != startedAt || ins.RestartCount != 0 {
		t.Errorf("the successor was restarted (started %s, then %s)", startedAt, ins.State.StartedAt)
	}
	if r := readRecord(t, st, res.TxID); r.Step != stepHandover {
		t.Errorf("record at %s, want still at handover", r.Step)
	}
}

// TestHandoverSelfCheckFails: S runs but its own health check never answers: S rolls back,
// which removes S itself and gives P its name back.
func TestHandoverSelfCheckFails(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	_, s := h.handedOver()

	checks := atomic.Int32{}
	m, _ := h.role(s, func(context.Context) error { checks.Add(1); return errors.New("connection refused") }, 1500*time.Millisecond)
	start := time.Now()
	got := last(t, m.Recover(ctx(t)))
	if got.Outcome != OutcomeRolledBack || got.Err == nil || got.Err.Reason != failure.Unhealthy || got.Err.Stage != failure.StageVerify {
		t.Fatalf("S's Recover = %s, %v; want rolled_back verify/Unhealthy", got.Outcome, got.Err)
	}
	if checks.Load() < 2 {
		t.Errorf("SelfCheck called %d times, want it retried until the health timeout", checks.Load())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Recover took %v", d)
	}
	h.checkRolledBack(s)
}

// TestHandoverRefusesAutoRemove: a watcher run with --rm is not self-updated; nothing changes.
func TestHandoverRefusesAutoRemove(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, &container.HostConfig{AutoRemove: true})
	res, rel := h.handover(nil)
	if res.Outcome != OutcomeFailed || res.Err == nil || res.Err.Reason != failure.Unsupported {
		t.Fatalf("Handover = %s, %v; want failed Unsupported", res.Outcome, res.Err)
	}
	if rel.calls != 0 {
		t.Errorf("release called %d times, want never", rel.calls)
	}
	h.checkRolledBack("")
	ins := h.f.Inspect(h.p)
	if !ins.HostConfig.AutoRemove || ins.Name != "/"+h.name {
		t.Errorf("P is %s (AutoRemove %v)", ins.Name, ins.HostConfig.AutoRemove)
	}
	// The journal holds nothing unfinished.
	m, _ := h.role(h.p, nil, 0)
	if rs := m.Recover(ctx(t)); len(rs) != 0 {
		t.Errorf("Recover = %+v, want nothing to do", rs)
	}
}

// TestHandoverReleaseFails: release reports an error with the store still open: P rolls back
// before S ever starts.
func TestHandoverReleaseFails(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	res, rel := h.handover(errors.New("the listener would not close"))
	if rel.calls != 1 {
		t.Fatalf("release called %d times, want once", rel.calls)
	}
	if res.Outcome != OutcomeRolledBack || res.Err == nil {
		t.Fatalf("Handover = %s, %v; want rolled_back", res.Outcome, res.Err)
	}
	if !strings.Contains(res.Err.Error(), "listener would not close") {
		t.Errorf("Err = %v, want the release's error in it", res.Err)
	}
	h.checkRolledBack(rel.successor)
	m, _ := h.role(h.p, nil, 0)
	if rs := m.Recover(ctx(t)); len(rs) != 0 {
		t.Errorf("Recover = %+v, want nothing to do", rs)
	}
}

// TestHandoverRestartsVerifiedSuccessor: S verified itself (the record is at commit) and then
// stopped before removing P. P's Recover starts S again and steps back; S then finishes.
func TestHandoverRestartsVerifiedSuccessor(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	res, s := h.handedOver()
	timeout := 5
	if _, err := h.f.Docker.ContainerStop(context.Background(), s, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	h.f.waitState(s, "exited", exited)

	m, st := h.role(h.p, nil, 0)
	r := readRecord(t, st, res.TxID)
	r.Step = stepCommit
	b, _ := json.Marshal(r)
	if err := st.PutJournal(r.TxID, r.ContainerID, b); err != nil {
		t.Fatal(err)
	}
	got := last(t, m.Recover(ctx(t)))
	if got.Outcome != OutcomeHandedOver || got.OldID != h.p || got.NewID != s {
		t.Fatalf("P's Recover = %s, %v (old %s, new %s); want handed_over to S", got.Outcome, got.Err, shortID(got.OldID), shortID(got.NewID))
	}
	h.checkHandedOverState(res, s)
	_ = st.Close()

	// S, started again, finishes the commit without verifying again.
	checks := atomic.Int32{}
	ms, _ := h.role(s, func(context.Context) error { checks.Add(1); return nil }, 0)
	rs := ms.Recover(ctx(t))
	if len(rs) != 1 || rs[0].Outcome != OutcomeUpdated {
		t.Fatalf("S's Recover = %+v; want one updated result", rs)
	}
	if ins := h.f.checkServing(h.name); ins.ID != s {
		t.Errorf("serving %s, want S %s", shortID(ins.ID), shortID(s))
	}
	if n := len(h.f.Owned()); n != 1 {
		t.Errorf("%d containers, want 1", n)
	}
}

// TestHandoverOtherReader: a process that is neither P nor S (SelfID "", e.g. `watcher once`
// on the same state) leaves a running S alone, and rolls back when S does not run.
func TestHandoverOtherReader(t *testing.T) {
	t.Parallel()
	t.Run("successor runs", func(t *testing.T) {
		t.Parallel()
		h := newHandoverRun(t, testenv.ImageSpec{}, nil)
		res, s := h.handedOver()
		m, st := h.role("", nil, 0)
		rs := m.Recover(ctx(t))
		if len(rs) != 1 || rs[0].Outcome != OutcomeHandedOver || rs[0].NewID != s || rs[0].Err != nil {
			t.Fatalf("Recover = %+v; want one handed_over result", rs)
		}
		h.checkHandedOverState(res, s)
		if r := readRecord(t, st, res.TxID); r.Step != stepHandover {
			t.Errorf("record at %s, want still at handover", r.Step)
		}
	})
	t.Run("successor stopped", func(t *testing.T) {
		t.Parallel()
		h := newHandoverRun(t, testenv.ImageSpec{}, nil)
		_, s := h.handedOver()
		timeout := 5
		if _, err := h.f.Docker.ContainerStop(context.Background(), s, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			t.Fatal(err)
		}
		m, _ := h.role("", nil, 0)
		got := last(t, m.Recover(ctx(t)))
		if got.Outcome != OutcomeRolledBack || got.Err == nil || got.Err.Reason != failure.ContainerExited {
			t.Fatalf("Recover = %s, %v; want rolled_back ContainerExited", got.Outcome, got.Err)
		}
		h.checkRolledBack(s)
	})
}

// TestHandoverCrashAtEveryStep: P dies right after each journal write of Handover up to and
// including "handover" (S created and named but never started); P's Recover, restarted, leaves
// exactly P running under the name, the same container, with nothing temporary left.
func TestHandoverCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	for _, step := range []string{stepSnapshot, stepPull, stepCreate, stepSetAside, stepRename, stepHandover} {
		// Handover runs in a child process (TestCrashChild) that SIGKILLs itself right after the
		// journal write of step.
		killed, out := crashChild(t, crashJob{DB: h.f.db, ContainerID: h.p, Image: h.ref, PullRef: h.pull, CrashAfter: step, Handover: true}, 0)
		if !killed {
			t.Fatalf("crash after %s: the child was not killed\n%s", step, out)
		}
		if step == stepHandover {
			// the successor exists, named, never started
			ins := h.f.Inspect(h.name)
			if ins.ID == h.p || ins.State.Status != container.StateCreated {
				t.Errorf("crash after %s: %s holds the name (%s), want the created successor", step, shortID(ins.ID), ins.State.Status)
			}
		}

		m, st := h.role(h.p, nil, 0)
		rs := m.Recover(ctx(t))
		got := last(t, rs)
		switch step {
		case stepSnapshot, stepPull:
			if got.Outcome != OutcomeFailed || got.Err == nil || got.Err.Reason != failure.Interrupted {
				t.Errorf("crash after %s: Recover = %s, %v; want failed Interrupted", step, got.Outcome, got.Err)
			}
		default:
			if got.Outcome != OutcomeRolledBack {
				t.Errorf("crash after %s: Recover = %s, %v; want rolled_back", step, got.Outcome, got.Err)
			}
		}
		checkAllFinished(t, st, "crash after "+step)
		_ = st.Close()
		h.checkRolledBack("")
		if t.Failed() {
			t.Logf("child output:\n%s", out)
			return
		}
	}
}

// TestHandoverDeadlinesOneSource: the predecessor waits by the deadlines the successor verifies
// itself by — one source, the journal record — whatever either configuration says. Handover
// writes the verify window and health timeout it would use into the record and gives their sum
// to release (and in its Result); a successor configured otherwise verifies by the record; a
// predecessor stepping back after a restart learns the same sum from Recover. (Defect: the
// predecessor waited by its configuration's verify/health_timeout while the successor verified
// by its container's labels.)
func TestHandoverDeadlinesOneSource(t *testing.T) {
	t.Parallel()
	h := newHandoverRun(t, testenv.ImageSpec{}, nil)
	res, rel := h.handover(nil) // P's Manager: verify 500ms, health timeout 10s; the Spec says neither
	want := 500*time.Millisecond + 10*time.Second
	if res.Outcome != OutcomeHandedOver || rel.wait != want || res.SuccessorWait != want {
		t.Fatalf("Handover = %s, release's SuccessorWait %v, Result's %v; want handed_over and %v", res.Outcome, rel.wait, res.SuccessorWait, want)
	}
	m, s := h.role(h.p, nil, 0)
	r := readRecord(t, s, res.TxID)
	succ := &txn{m: New(h.f.Docker, s, Options{Verify: 7 * time.Second, HealthTimeout: time.Hour}), r: &r}
	if succ.verifyWindow() != 500*time.Millisecond || succ.healthTimeout() != 10*time.Second || succ.successorWait() != want {
		t.Fatalf("a successor configured otherwise verifies %v / %v; want the record's 500ms / 10s", succ.verifyWindow(), succ.healthTimeout())
	}
	back := last(t, m.Recover(ctx(t))) // P restarted while S runs: it steps back
	if back.Outcome != OutcomeHandedOver || back.SuccessorWait != want {
		t.Fatalf("Recover = %s with SuccessorWait %v; want handed_over with %v", back.Outcome, back.SuccessorWait, want)
	}
}
