package lifecycle

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// startedProbe is a Spec.Started that counts its calls and notes what the engine showed then.
type startedProbe struct {
	f        *fixture
	name     string
	mu       sync.Mutex
	calls    int
	at       time.Time
	servedBy string // ID of the container named name when Started ran
	running  bool
}

func (p *startedProbe) hook() {
	ins := p.f.Inspect(p.name)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.at = time.Now()
	p.servedBy, p.running = ins.ID, ins.State.Running
}

func (p *startedProbe) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls, p.at, p.servedBy, p.running = 0, time.Time{}, "", false
}

func (p *startedProbe) check(t *testing.T, what string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls != 1 {
		t.Fatalf("%s: Started called %d times, want exactly once", what, p.calls)
	}
}

// TestStartedOnce: Spec.Started is called exactly once — right after the new container started
// and before its verify window on success; at the end when the transaction never got there (a
// pull of a digest the registry does not have, an unchanged image, a transaction already done).
func TestStartedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	p := &startedProbe{f: f, name: name}

	// success: after the start, before verify
	window := 2 * time.Second
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: window, Rollback: true, Started: p.hook})
	returned := time.Now()
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	p.check(t, "updated")
	if p.servedBy != res.NewID || !p.running {
		t.Errorf("when Started ran, %s was %s (running %v); want the new container %s, running", name, shortID(p.servedBy), p.running, shortID(res.NewID))
	}
	if gap := returned.Sub(p.at); gap < window {
		t.Errorf("Started ran %v before Replace returned; want it before the %v verify window", gap, window)
	}

	// the same transaction again: its Result, no work, still one call
	p.reset()
	again := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true, Started: p.hook})
	if again.TxID != res.TxID {
		t.Fatalf("second Replace = %+v, want the first transaction's result", again)
	}
	p.check(t, "already done")

	// unchanged: ends after the pull
	p.reset()
	same := f.m.Replace(ctx(t), Spec{ContainerID: res.NewID, Image: ref, PullRef: pull, Rollback: true, Started: p.hook})
	if same.Outcome != OutcomeUnchanged {
		t.Fatalf("Replace(up to date) = %s, %v; want unchanged", same.Outcome, same.Err)
	}
	p.check(t, "unchanged")

	// early failure: the pull of a digest the registry does not have
	p.reset()
	missing := f.Registry.Host + "/app@sha256:" + strings.Repeat("0", 64)
	bad := f.m.Replace(ctx(t), Spec{ContainerID: res.NewID, Image: ref, PullRef: missing, Rollback: true, Started: p.hook})
	if bad.Outcome != OutcomeFailed || bad.Err == nil || bad.Err.Stage != failure.StagePull || bad.Err.Reason != failure.ErrImagePull {
		t.Fatalf("Replace(missing digest) = %s, %v; want failed pull/ErrImagePull", bad.Outcome, bad.Err)
	}
	p.check(t, "missing digest")
	if p.servedBy != res.NewID || !p.running {
		t.Errorf("after the failed pull %s is %s (running %v), want %s untouched", name, shortID(p.servedBy), p.running, shortID(res.NewID))
	}
	f.checkServing(name)
}
