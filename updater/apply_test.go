package updater

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
)

// gateReplacer is a Replacer whose replacements wait at two gates the test opens: one at the end
// of the disruptive phase (pull, stop, create, start), before Started, and one in verify, after
// it. It stands in for lifecycle only to observe the updater's scheduling, which the real engine
// cannot show deterministically. Its channels must be made inside the synctest bubble.
type gateReplacer struct {
	gate   chan struct{} // each token lets one replacement out of its disruptive phase
	verify chan struct{} // closed: every replacement may finish verifying

	mu        sync.Mutex
	inGate    int // replacements in their disruptive phase
	verifying int // replacements past Started
}

func newGateReplacer() *gateReplacer {
	return &gateReplacer{gate: make(chan struct{}), verify: make(chan struct{})}
}

func (g *gateReplacer) Replace(_ context.Context, s lifecycle.Spec) lifecycle.Result {
	g.mu.Lock()
	g.inGate++
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.inGate--
	g.verifying++
	g.mu.Unlock()
	s.Started()
	<-g.verify
	return lifecycle.Result{Outcome: lifecycle.OutcomeUpdated, NewID: s.ContainerID + "-new", Downtime: time.Millisecond, Stopped: true}
}

func (g *gateReplacer) Restart(context.Context, string, string, *time.Duration) *lifecycle.Error {
	panic("no restart expected")
}
func (g *gateReplacer) Recover(context.Context) []lifecycle.Result { return nil }

func (g *gateReplacer) counts() (inGate, verifying int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inGate, g.verifying
}

// anonymous answers PullAuth for spec(); apply never checks registries.
type anonymous struct{}

func (anonymous) Check(context.Context, []registry.Query) []registry.Result {
	panic("apply must not check")
}
func (anonymous) PullAuth(string) (string, error) { return "", nil }

// update.parallel bounds the disruptive phase, not verify. synctest.Wait returns when every
// goroutine is blocked: in a replacement's disruptive phase, on an update.parallel slot, or in
// verify; so each round sees exactly how many replacements the updater let in at once.
func TestParallelBoundsDisruptionNotVerify(t *testing.T) {
	const n, parallel = 8, 2
	var cs []*Container
	for i := 0; i < n; i++ {
		cs = append(cs, tgt(fmt.Sprintf("c%d", i)))
	}
	obs := observed(cs...)
	plan := buildPlan(obs, cands(obs, sortedKeys(obs.byName)...), planOptions{})
	if len(plan.Groups) != n {
		t.Fatalf("plan has %d groups, want %d independent ones", len(plan.Groups), n)
	}
	synctest.Test(t, func(t *testing.T) {
		life := newGateReplacer()
		u := New(nil, anonymous{}, life, nil, Options{Parallel: parallel, Logger: discardLogger()})
		lines := map[string]*ContainerReport{}
		done := make(chan struct{})
		go func() {
			u.apply(context.Background(), plan, lines)
			close(done)
		}()
		for verifyOpen := false; ; {
			synctest.Wait()
			inGate, verifying := life.counts()
			if inGate > parallel {
				t.Errorf("%d containers in their disruptive phase at once, want at most update.parallel = %d", inGate, parallel)
			}
			if inGate == 0 {
				if verifyOpen {
					break
				}
				if verifying != n {
					t.Errorf("%d of %d replacements verifying at once, want all: a step must give its update.parallel slot up at Started", verifying, n)
				}
				close(life.verify)
				verifyOpen = true
				continue
			}
			for range inGate {
				life.gate <- struct{}{}
			}
		}
		<-done
		for _, l := range lines {
			if l.Outcome != OutcomeUpdated {
				t.Errorf("%s: %s, want updated", l.Name, l.Outcome)
			}
		}
	})
}

// panicReplacer fails the test if apply asks lifecycle for anything.
type panicReplacer struct{}

func (panicReplacer) Replace(context.Context, lifecycle.Spec) lifecycle.Result {
	panic("no replacement expected")
}
func (panicReplacer) Restart(context.Context, string, string, *time.Duration) *lifecycle.Error {
	panic("no restart expected")
}
func (panicReplacer) Recover(context.Context) []lifecycle.Result { return nil }

func TestStoppingStartsNoNewStep(t *testing.T) {
	obs := observed(tgt("a"), tgt("b"))
	plan := buildPlan(obs, cands(obs, "a", "b"), planOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lines := map[string]*ContainerReport{}
	New(nil, anonymous{}, panicReplacer{}, nil, Options{Logger: discardLogger()}).apply(ctx, plan, lines)
	for _, l := range lines {
		if l.Outcome != OutcomeSkipped || !strings.Contains(l.Message, "stopping") {
			t.Errorf("%s: %s %q, want skipped because the watcher is stopping", l.Name, l.Outcome, l.Message)
		}
	}
}

// scriptReplacer answers Replace from a table by container ID and records every call.
type scriptReplacer struct {
	mu      sync.Mutex
	results map[string]lifecycle.Result
	calls   []string
}

func (r *scriptReplacer) Replace(_ context.Context, s lifecycle.Spec) lifecycle.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "replace "+s.ContainerID)
	s.Started()
	return r.results[s.ContainerID]
}

func (r *scriptReplacer) Restart(_ context.Context, id, _ string, _ *time.Duration) *lifecycle.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "restart "+id)
	return nil
}
func (r *scriptReplacer) Recover(context.Context) []lifecycle.Result { return nil }

// A dependent follows its parent when the parent's container was stopped, whatever the outcome:
// a start that fails after the stop rolls back with no downtime measured, yet the dependent lost
// its parent for a while and is restarted. When the parent never stopped, the dependent is left.
func TestDependentsFollowAStoppedParent(t *testing.T) {
	fail := func(stage failure.Stage, reason failure.Reason) *lifecycle.Error {
		return &lifecycle.Error{Stage: stage, Reason: reason, Message: "it failed"}
	}
	tests := []struct {
		name    string
		parent  lifecycle.Result
		restart bool
		outcome Outcome
	}{
		{"updated", lifecycle.Result{Outcome: lifecycle.OutcomeUpdated, NewID: "db-new", Stopped: true, Downtime: time.Second}, true, OutcomeRestarted},
		{"start failed after the stop, rolled back", lifecycle.Result{Outcome: lifecycle.OutcomeRolledBack, Stopped: true,
			Err: fail(failure.StageStart, failure.RunContainerError)}, true, OutcomeRestarted},
		{"pull failed, never stopped", lifecycle.Result{Outcome: lifecycle.OutcomeFailed, Err: fail(failure.StagePull, failure.ErrImagePull)}, false, OutcomeSkipped},
		{"unchanged image", lifecycle.Result{Outcome: lifecycle.OutcomeUnchanged}, false, OutcomeSkipped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := observed(tgt("db", withID("db-id")), tgt("app", withID("app-id"), dependsOn("db")))
			plan := buildPlan(obs, cands(obs, "db"), planOptions{})
			life := &scriptReplacer{results: map[string]lifecycle.Result{"db-id": tc.parent}}
			lines := map[string]*ContainerReport{"db": newLine(obs.byName["db"])}
			New(nil, anonymous{}, life, nil, Options{Logger: discardLogger()}).apply(context.Background(), plan, lines)

			if got := slices.Contains(life.calls, "restart app-id"); got != tc.restart {
				t.Errorf("calls %q: app restarted = %v, want %v", life.calls, got, tc.restart)
			}
			app := lines["app"]
			if app == nil || app.Outcome != tc.outcome {
				t.Fatalf("app line = %+v, want %s", app, tc.outcome)
			}
			if !tc.restart && app.Message != "db was not stopped; nothing to restart for" {
				t.Errorf("app message = %q, want the plan's reason", app.Message)
			}
		})
	}
}
