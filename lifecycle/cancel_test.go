package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestGracefulStopMidUpdate: the caller's context ends while the new container is being
// verified (the daemon is shutting down). The update is undone on a context of its own, so the
// old container serves again before Replace returns, and the journal holds nothing unfinished.
func TestGracefulStopMidUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})

	c, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() {
		done <- f.m.Replace(c, Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: 30 * time.Second, Rollback: true})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for started := false; !started; {
		if time.Now().After(deadline) {
			t.Fatal("the new container never started")
		}
		for _, s := range f.Owned() {
			if s.Labels[LabelTxID] != "" && s.State == "running" {
				started = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	res := <-done
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.Interrupted {
		t.Fatalf("Replace = %s, %v; want rolled_back Interrupted", res.Outcome, res.Err)
	}
	if f.checkServing(name).ID != oldID {
		t.Fatal("old container not serving")
	}
	if left := f.m.Recover(context.Background()); len(left) != 0 {
		t.Fatalf("Recover found %d unfinished transactions", len(left))
	}
}
