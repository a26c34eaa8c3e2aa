package updater

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
)

// phaseReplacer is a Replacer that records how many replacements are in their disruptive phase
// (before Started) and in verify (after it) at once. It stands in for lifecycle only to observe
// the updater's scheduling, which the real engine cannot show deterministically.
type phaseReplacer struct {
	mu                  sync.Mutex
	disruptive, verify  int
	maxDisrupt, maxVeri int
	verifyFor           time.Duration
}

func (p *phaseReplacer) Replace(ctx context.Context, s lifecycle.Spec) lifecycle.Result {
	p.mu.Lock()
	p.disruptive++
	p.maxDisrupt = max(p.maxDisrupt, p.disruptive)
	p.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // pull, stop, create, start
	p.mu.Lock()
	p.disruptive--
	p.verify++
	p.maxVeri = max(p.maxVeri, p.verify)
	p.mu.Unlock()
	s.Started()
	time.Sleep(p.verifyFor)
	p.mu.Lock()
	p.verify--
	p.mu.Unlock()
	return lifecycle.Result{Outcome: lifecycle.OutcomeUpdated, NewID: s.ContainerID + "-new", Downtime: time.Millisecond, Stopped: true}
}

func (p *phaseReplacer) Restart(context.Context, string, string, *time.Duration) *lifecycle.Error {
	return nil
}
func (p *phaseReplacer) Recover(context.Context) []lifecycle.Result { return nil }

// anonymous answers PullAuth for spec(); apply never checks registries.
type anonymous struct{}

func (anonymous) Check(context.Context, []registry.Query) []registry.Result {
	panic("apply must not check")
}
func (anonymous) PullAuth(string) (string, error) { return "", nil }

func TestParallelBoundsDisruptionNotVerify(t *testing.T) {
	const n, parallel = 8, 2
	var ts []*Target
	for i := 0; i < n; i++ {
		ts = append(ts, tgt(fmt.Sprintf("c%d", i)))
	}
	obs := observed(ts...)
	plan := buildPlan(obs, cands(obs, sortedKeys(obs.byName)...))
	if len(plan.Groups) != n {
		t.Fatalf("plan has %d groups, want %d independent ones", len(plan.Groups), n)
	}
	rep := &phaseReplacer{verifyFor: 300 * time.Millisecond}
	u := New(nil, anonymous{}, rep, nil, Options{Parallel: parallel})
	lines := map[string]*ContainerReport{}
	u.apply(context.Background(), plan, lines)

	if rep.maxDisrupt > parallel {
		t.Errorf("%d containers in their disruptive phase at once, want at most update.parallel = %d", rep.maxDisrupt, parallel)
	}
	if rep.maxVeri <= parallel {
		t.Errorf("at most %d containers verifying at once, want more than %d: verify windows must overlap beyond the slot bound", rep.maxVeri, parallel)
	}
	for _, l := range lines {
		if l.Outcome != OutcomeUpdated {
			t.Errorf("%s: %s, want updated", l.Name, l.Outcome)
		}
	}
}

func TestStoppingStartsNoNewStep(t *testing.T) {
	obs := observed(tgt("a"), tgt("b"))
	plan := buildPlan(obs, cands(obs, "a", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := &phaseReplacer{}
	lines := map[string]*ContainerReport{}
	New(nil, anonymous{}, rep, nil, Options{}).apply(ctx, plan, lines)
	if rep.maxDisrupt != 0 {
		t.Errorf("a replacement started after the watcher began stopping")
	}
	for _, l := range lines {
		if l.Outcome != OutcomeSkipped {
			t.Errorf("%s: %s, want skipped", l.Name, l.Outcome)
		}
	}
}
