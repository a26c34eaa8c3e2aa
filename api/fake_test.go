package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// fakeService coalesces triggers the way Service's contract says the updater must: one run at a
// time, at most one queued, and a trigger during a run joins the queued run. While hold is open
// (not closed), every run waits, so a test can pile triggers onto a running and a queued run.
type fakeService struct {
	mu       sync.Mutex
	watched  map[string]bool
	hold     chan struct{}
	running  *fakeRun
	queued   *fakeRun
	runs     map[string]*updater.Report
	order    []string // run ids, oldest first
	next     int
	triggers int // accepted triggers
	requests []updater.Request
	readyErr error
	failErr  error // returned by Containers, Runs and Run when set
	panicky  bool  // Containers panics
}

type fakeRun struct {
	id   string
	done chan struct{}
	reqs []updater.Request
}

var _ Service = (*fakeService)(nil)

func newFake(watched ...string) *fakeService {
	f := &fakeService{watched: map[string]bool{}, runs: map[string]*updater.Report{}}
	for _, n := range watched {
		f.watched[n] = true
	}
	return f
}

// holdRuns makes runs wait until the returned func is called.
func (f *fakeService) holdRuns() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
	var once sync.Once
	h := f.hold
	return func() { once.Do(func() { close(h) }) }
}

func (f *fakeService) Trigger(ctx context.Context, req updater.Request) (string, <-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err // as the updater, whose check of the names asks the engine
	}
	var missing []string
	for _, n := range req.Containers {
		if !f.watched[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return "", nil, &updater.NotWatchedError{Names: missing}
	}
	if len(req.Pushed) > 0 && !slices.ContainsFunc(req.Pushed, func(p string) bool { return f.watched[p] }) {
		return "", nil, &updater.NotWatchedError{Names: req.Pushed} // as the updater: pushes no one runs
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.triggers++
	f.requests = append(f.requests, req)
	if f.running == nil {
		f.running = f.newRun()
		f.running.reqs = append(f.running.reqs, req)
		go f.execute(f.running, f.hold)
		return f.running.id, f.running.done, nil
	}
	if f.queued == nil {
		f.queued = f.newRun()
	}
	f.queued.reqs = append(f.queued.reqs, req)
	return f.queued.id, f.queued.done, nil
}

func (f *fakeService) newRun() *fakeRun {
	f.next++
	return &fakeRun{id: fmt.Sprintf("run-%d", f.next), done: make(chan struct{})}
}

func (f *fakeService) execute(r *fakeRun, hold chan struct{}) {
	start := time.Now()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := &updater.Report{ID: r.id, Trigger: TriggerHTTP, StartedAt: start, FinishedAt: time.Now()}
	names := []string{}
	for _, q := range r.reqs {
		names = append(names, q.Containers...)
	}
	if len(names) == 0 {
		for n := range f.watched {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		rep.Containers = append(rep.Containers, updater.ContainerReport{Name: n, Image: "example/" + n + ":1", Outcome: updater.OutcomeUpToDate})
	}
	f.runs[r.id] = rep
	f.order = append(f.order, r.id)
	close(r.done)
	f.running, f.queued = f.queued, nil
	if f.running != nil {
		go f.execute(f.running, f.hold)
	}
}

func (f *fakeService) Run(id string) (*updater.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return nil, f.failErr
	}
	rep, ok := f.runs[id]
	if !ok {
		return nil, fmt.Errorf("run %s: %w", id, updater.ErrRunNotFound)
	}
	c := *rep
	return &c, nil
}

func (f *fakeService) Runs(limit int) ([]updater.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return nil, f.failErr
	}
	var out []updater.Report
	for i := len(f.order) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, *f.runs[f.order[i]])
	}
	return out, nil
}

func (f *fakeService) Containers(ctx context.Context, hosts ...string) ([]updater.ContainerStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as the updater, which lists the engine's containers
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicky {
		panic("fake: containers exploded")
	}
	if f.failErr != nil {
		return nil, f.failErr
	}
	var out []updater.ContainerStatus
	for n := range f.watched {
		out = append(out, updater.ContainerStatus{Name: n, Image: "example/" + n + ":1", State: updater.StateUpToDate})
	}
	slices.SortFunc(out, func(a, b updater.ContainerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeService) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // as the engine's ping
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readyErr
}

// triggerCount is how many triggers were accepted so far.
func (f *fakeService) triggerCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.triggers
}

// lastRequest is the most recent accepted trigger's request.
func (f *fakeService) lastRequest(t *testing.T) updater.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("no trigger reached the service")
	}
	return f.requests[len(f.requests)-1]
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errBoom = errors.New("boom: dial unix /var/run/docker.sock: secret-detail")

// Rollback is the updater's: an unwatched container is NotWatched, one named "fresh" has no
// update to undo, any other starts a run of its own.
func (f *fakeService) Rollback(ctx context.Context, host, name string) (string, <-chan struct{}, error) {
	switch {
	case !f.watched[name]:
		return "", nil, &updater.NotWatchedError{Names: []string{name}}
	case name == "fresh":
		return "", nil, &updater.NoRollbackError{Name: name, Why: "the watcher has recorded no committed update of it"}
	}
	return f.Trigger(ctx, updater.Request{Trigger: updater.TriggerRollback, Containers: []string{name}})
}

var _ Rollbacker = (*fakeService)(nil)
