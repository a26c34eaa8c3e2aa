package updater

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
)

// These tests drive the self-update paths of the updater (the plan's hold or handover, handOver, the run loop after a
// handover, Recover's report) over fakes: the order of the steps, what is stored when, and what
// later triggers get cannot be observed deterministically against a real engine. The real
// handover is covered by lifecycle's integration tests and the e2e test.

var (
	selfID  = strings.Repeat("5e1f", 16)
	otherID = strings.Repeat("0a1b", 16)
	succID  = strings.Repeat("c0de", 16)

	selfImage  = "registry.example/watcher:latest"
	otherImage = "registry.example/app:1"

	oldSelfDigest  = "sha256:" + strings.Repeat("1", 64)
	newSelfDigest  = "sha256:" + strings.Repeat("2", 64)
	oldOtherDigest = "sha256:" + strings.Repeat("3", 64)
	newOtherDigest = "sha256:" + strings.Repeat("4", 64)
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeEngine answers the few engine calls a cycle makes (list, inspects, image removal) from a
// fixed set of containers.
type fakeEngine struct {
	containers  []container.Summary
	repoDigests map[string][]string // image ID -> RepoDigests
	inspectErr  error               // when set, every container inspect fails with it
}

func (f *fakeEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{Items: slices.Clone(f.containers)}, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if f.inspectErr != nil {
		return client.ContainerInspectResult{}, f.inspectErr
	}
	for _, c := range f.containers {
		if c.ID == id {
			return client.ContainerInspectResult{Container: container.InspectResponse{
				ID: c.ID, Name: c.Names[0], Image: c.ImageID,
				Config:     &container.Config{Image: c.Image, Labels: c.Labels},
				HostConfig: &container.HostConfig{},
			}}, nil
		}
	}
	return client.ContainerInspectResult{}, cerrdefs.ErrNotFound
}

func (f *fakeEngine) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: id, RepoDigests: f.repoDigests[id], Os: "linux", Architecture: "amd64"}}, nil
}

func (f *fakeEngine) ImageRemove(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	return client.ImageRemoveResult{}, nil
}

func (f *fakeEngine) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{}, nil
}

// fakeChecker reports an update to the digest in updates for each reference it holds, and up to
// date for the rest.
type fakeChecker struct {
	mu      sync.Mutex
	updates map[string]string // image reference -> new digest
}

func (f *fakeChecker) Check(_ context.Context, qs []registry.Query) []registry.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]registry.Result, len(qs))
	for i, q := range qs {
		out[i] = registry.Result{Ref: q.Ref}
		if d, ok := f.updates[q.Ref]; ok {
			out[i].Digest, out[i].UpdateAvailable = d, true
		}
	}
	return out
}

func (f *fakeChecker) PullAuth(string) (string, error) { return "", nil }

func (f *fakeChecker) set(updates map[string]string) {
	f.mu.Lock()
	f.updates = updates
	f.mu.Unlock()
}

// selfReplacer is a Replacer that can hand over (a SelfReplacer). It records the order of the
// calls; handover decides what Handover does.
type selfReplacer struct {
	mu        sync.Mutex
	events    []string
	specs     []lifecycle.Spec // Handover's
	handover  func(ctx context.Context, s lifecycle.Spec, release func(context.Context, string) error) lifecycle.Result
	recovered []lifecycle.Result
}

var _ SelfReplacer = (*selfReplacer)(nil)

func (r *selfReplacer) event(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *selfReplacer) Replace(_ context.Context, s lifecycle.Spec) lifecycle.Result {
	r.event("replace " + s.ContainerID)
	if s.Started != nil {
		s.Started()
	}
	return lifecycle.Result{OldID: s.ContainerID, NewID: s.ContainerID + "-new", Outcome: lifecycle.OutcomeUpdated, Downtime: time.Millisecond, Stopped: true}
}

func (r *selfReplacer) Restart(_ context.Context, id, _ string, _ *time.Duration) *lifecycle.Error {
	r.event("restart " + id)
	return nil
}

func (r *selfReplacer) Recover(context.Context) []lifecycle.Result { return r.recovered }

func (r *selfReplacer) Handover(ctx context.Context, s lifecycle.Spec, release func(context.Context, string) error) lifecycle.Result {
	r.event("handover " + s.ContainerID)
	r.mu.Lock()
	r.specs = append(r.specs, s)
	h := r.handover
	r.mu.Unlock()
	if h == nil {
		return lifecycle.Result{OldID: s.ContainerID, Outcome: lifecycle.OutcomeFailed,
			Err: &lifecycle.Error{ContainerID: s.ContainerID, Stage: failure.StagePlan, Reason: failure.Unsupported, Message: "no handover expected"}}
	}
	return h(ctx, s, release)
}

func (r *selfReplacer) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// memHistory is an in-memory History: a run stored twice under one id keeps the last, as in
// store.Store.
type memHistory struct {
	mu   sync.Mutex
	runs map[string][]byte
	puts []string // ids, in the order PutRun was called
}

func newMemHistory() *memHistory { return &memHistory{runs: map[string][]byte{}} }

func (h *memHistory) PutRun(id string, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs[id] = slices.Clone(data)
	h.puts = append(h.puts, id)
	return nil
}

func (h *memHistory) Run(id string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.runs[id]
	if !ok {
		return nil, errors.New("not found")
	}
	return b, nil
}

func (h *memHistory) Runs(int) ([][]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]byte
	for _, b := range h.runs {
		out = append(out, b)
	}
	return out, nil
}

func (h *memHistory) PruneRuns(int) error { return nil }

// reports returns every stored report.
func (h *memHistory) reports(t *testing.T) []Report {
	t.Helper()
	rows, _ := h.Runs(0)
	var out []Report
	for _, b := range rows {
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("stored report unreadable: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// report returns the stored report id, or nil.
func (h *memHistory) report(t *testing.T, id string) *Report {
	t.Helper()
	b, err := h.Run(id)
	if err != nil {
		return nil
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("stored report %s unreadable: %v", id, err)
	}
	return &r
}

// observerLog records every report observers are told about (outcomes copied at that moment).
type observerLog struct {
	mu   sync.Mutex
	runs []Report
}

func (o *observerLog) RunFinished(r *Report) {
	o.mu.Lock()
	c := *r
	c.Containers = slices.Clone(r.Containers)
	o.runs = append(o.runs, c)
	o.mu.Unlock()
}

func (o *observerLog) told() []Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.runs)
}

func lineOf(r *Report, id string) *ContainerReport {
	if r == nil {
		return nil
	}
	for i := range r.Containers {
		if r.Containers[i].ID == id {
			return &r.Containers[i]
		}
	}
	return nil
}

// selfRig is an updater over fakes watching two running containers, the watcher's own ("watcher",
// selfID, whose image carries the watcher title label) and "app", both with an update available.
type selfRig struct {
	engine  *fakeEngine
	checker *fakeChecker
	life    *selfReplacer
	history *memHistory
	obs     *observerLog
	u       *Updater
}

func newSelfRig(mod func(*Options)) *selfRig {
	summary := func(id, name, img, imageID string, labels map[string]string) container.Summary {
		return container.Summary{ID: id, Names: []string{"/" + name}, Image: img, ImageID: imageID, Labels: labels, State: container.StateRunning}
	}
	r := &selfRig{
		engine: &fakeEngine{
			containers: []container.Summary{
				summary(selfID, "watcher", selfImage, "sha256:selfimage", map[string]string{WatcherImageLabel: WatcherImageTitle}),
				summary(otherID, "app", otherImage, "sha256:appimage", map[string]string{}),
			},
			repoDigests: map[string][]string{
				"sha256:selfimage": {"registry.example/watcher@" + oldSelfDigest},
				"sha256:appimage":  {"registry.example/app@" + oldOtherDigest},
			},
		},
		checker: &fakeChecker{updates: map[string]string{selfImage: newSelfDigest, otherImage: newOtherDigest}},
		life:    &selfReplacer{},
		history: newMemHistory(),
		obs:     &observerLog{},
	}
	opts := Options{SelfID: selfID, Logger: discardLogger(), Observers: []Observer{r.obs}}
	if mod != nil {
		mod(&opts)
	}
	r.u = New(r.engine, r.checker, r.life, r.history, opts)
	return r
}

// waitDone waits for a triggered run, failing the test instead of hanging.
func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not finish")
	}
}

// The plan's decision about the watcher's own container and other watcher instances, with the
// Updater's ability to hand over (Release, SelfID, a SelfReplacer), as a cycle makes it.
func TestPlanSelfAndOtherWatchers(t *testing.T) {
	release := func(context.Context, string) error { return nil }
	own := func() *Container { return tgt("watcher", withID(selfID), self, otherWatcher) }
	other := func() *Container { return tgt("watcher-2", withID(otherID), otherWatcher) }
	plain := func() *Container { return tgt("app", withID(otherID), labels(WatcherImageLabel, "something-else")) }
	mon := func(c *Container) *Container { monitor(c); return c }
	var (
		canHandOver = Options{SelfID: selfID, Release: release}
		noRelease   = Options{SelfID: selfID}
		noSelfID    = Options{Release: release}
	)
	const (
		onlyDaemon = "only the daemon"
		waits      = "waits for the rest of the run"
	)

	tests := []struct {
		name    string
		life    Replacer
		opts    Options
		dryRun  bool
		target  *Container
		op      Op      // the step planned for it, "" = none
		outcome Outcome // its line before apply
		message string  // in the line's message
	}{
		{name: "self without Release", life: &selfReplacer{}, opts: noRelease, target: own(), outcome: OutcomeUpdateAvailable, message: onlyDaemon},
		{name: "self without SelfID", life: &selfReplacer{}, opts: noSelfID, target: own(), outcome: OutcomeUpdateAvailable, message: onlyDaemon},
		{name: "self with a Replacer that cannot hand over", life: panicReplacer{}, opts: canHandOver, target: own(), outcome: OutcomeUpdateAvailable, message: onlyDaemon},
		{name: "self that can hand over", life: &selfReplacer{}, opts: canHandOver, target: own(), op: OpHandOver, outcome: OutcomeSkipped, message: waits},
		{name: "self in monitor mode", life: &selfReplacer{}, opts: canHandOver, target: mon(own()), outcome: OutcomeUpdateAvailable, message: "monitor mode: "},
		{name: "self in a dry run", life: &selfReplacer{}, opts: canHandOver, dryRun: true, target: own(), op: OpHandOver, outcome: OutcomeUpdateAvailable, message: "would update: "},
		{name: "self without Release in monitor mode", life: &selfReplacer{}, opts: noRelease, target: mon(own()), outcome: OutcomeUpdateAvailable, message: "monitor mode: "},
		{name: "self without Release in a dry run", life: &selfReplacer{}, opts: noRelease, dryRun: true, target: own(), outcome: OutcomeUpdateAvailable, message: onlyDaemon},
		{name: "another watcher instance", life: &selfReplacer{}, opts: canHandOver, target: other(), outcome: OutcomeSkipped, message: "another watcher instance"},
		{name: "another watcher instance, this one without Release", life: &selfReplacer{}, opts: noRelease, target: other(), outcome: OutcomeSkipped, message: "another watcher instance"},
		{name: "another watcher instance in monitor mode", life: &selfReplacer{}, opts: canHandOver, target: mon(other()), outcome: OutcomeUpdateAvailable, message: "monitor mode: "},
		{name: "another watcher instance in a dry run", life: &selfReplacer{}, opts: canHandOver, dryRun: true, target: other(), outcome: OutcomeSkipped, message: "another watcher instance"},
		{name: "another image title is an ordinary container", life: &selfReplacer{}, opts: canHandOver, target: plain(), op: OpUpdate, outcome: OutcomeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = discardLogger()
			u := New(nil, &fakeChecker{}, tt.life, nil, tt.opts)
			c := tt.target
			plan := buildPlan(observed(c), []Candidate{{Container: c, NewDigest: newSelfDigest, Cause: "digest a -> b"}},
				planOptions{DryRun: tt.dryRun, CanHandOver: u.canHandOver(u.hosts[0])})
			lines := map[string]*ContainerReport{c.Name: newLine(c)}
			notePlan(plan, lines)
			if plan.DryRun {
				reportDryRun(plan, lines)
			}
			var op Op
			for _, g := range append(plan.Groups, plan.Last) {
				for _, s := range g {
					if s.c == c {
						op = s.Op
					}
				}
			}
			if op != tt.op {
				t.Errorf("plan\n%s: %s has step %q, want %q", plan, c.Name, op, tt.op)
			}
			line := lines[c.Name]
			if line.Outcome != tt.outcome || !strings.Contains(line.Message, tt.message) {
				t.Errorf("line = %s %q, want %s with a message containing %q", line.Outcome, line.Message, tt.outcome, tt.message)
			}
			if tt.outcome == OutcomeSkipped && tt.op == "" && !strings.Contains(line.Message, "digest a -> b") {
				t.Errorf("message %q does not say what the update would be", line.Message)
			}
		})
	}
}

// Without Release (once, check) a full run reports the watcher's own update as available and
// never hands over; the other container is updated as usual.
func TestExecuteWithoutReleaseLeavesSelf(t *testing.T) {
	r := newSelfRig(nil)
	rep := r.u.Execute(context.Background(), "", Request{Trigger: TriggerOnce})
	if l := lineOf(rep, selfID); l == nil || l.Outcome != OutcomeUpdateAvailable || !strings.Contains(l.Message, "only the daemon") {
		t.Errorf("self line = %+v, want update_available (only the daemon updates itself)", l)
	}
	if l := lineOf(rep, otherID); l == nil || l.Outcome != OutcomeUpdated {
		t.Errorf("app line = %+v, want updated", l)
	}
	if got := r.life.calls(); !slices.Equal(got, []string{"replace " + otherID}) {
		t.Errorf("replacer calls = %q, want only the app replaced", got)
	}
}

func TestExecuteHandsOverLast(t *testing.T) {
	var (
		mu          sync.Mutex
		releasedTo  []string
		storedAtRel *Report
	)
	var r *selfRig
	r = newSelfRig(func(o *Options) {
		o.Release = func(_ context.Context, successor string) error {
			mu.Lock()
			defer mu.Unlock()
			releasedTo = append(releasedTo, successor)
			// The store is about to go to the successor: the run must be in it already.
			rows := r.history.reports(t)
			if len(rows) == 1 {
				storedAtRel = &rows[0]
			}
			// Observers hear of it only once the release succeeded: a failed one rolls back.
			if n := len(r.obs.told()); n != 0 {
				t.Errorf("observers told about %d runs before the release succeeded, want 0", n)
			}
			return nil
		}
	})
	var handoverErr error
	r.life.handover = func(ctx context.Context, s lifecycle.Spec, release func(context.Context, string) error) lifecycle.Result {
		handoverErr = release(ctx, succID)
		if told := r.obs.told(); len(told) != 1 || lineOf(&told[0], selfID).Outcome != OutcomeHandedOver {
			t.Errorf("observers told %d times when release returned, want once, with the handover", len(told))
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(releasedTo, []string{succID}) {
			t.Errorf("Options.Release called with %q, want once with the successor %s", releasedTo, short(succID))
		}
		return lifecycle.Result{OldID: s.ContainerID, NewID: succID, Outcome: lifecycle.OutcomeHandedOver}
	}

	rep := r.u.Execute(context.Background(), "", Request{Trigger: TriggerSchedule})

	if handoverErr != nil {
		t.Errorf("release returned %v, want nil", handoverErr)
	}
	if got, want := r.life.calls(), []string{"replace " + otherID, "handover " + selfID}; !slices.Equal(got, want) {
		t.Errorf("replacer calls = %q, want %q: every other update before the handover", got, want)
	}
	if len(r.life.specs) != 1 {
		t.Fatalf("Handover called %d times, want 1", len(r.life.specs))
	}
	if s := r.life.specs[0]; s.ContainerID != selfID || s.Image != selfImage || s.PullRef != "registry.example/watcher@"+newSelfDigest || s.Recreate {
		t.Errorf("Handover spec = %+v, want container %s, image %s pulled by digest %s", s, short(selfID), selfImage, newSelfDigest)
	}

	// What was stored before the store went away.
	if storedAtRel == nil {
		t.Fatal("no report stored when Options.Release was called")
	}
	if storedAtRel.ID != rep.ID || storedAtRel.FinishedAt.IsZero() {
		t.Errorf("stored report = %s finished %v, want run %s, finished", storedAtRel.ID, storedAtRel.FinishedAt, rep.ID)
	}
	if l := lineOf(storedAtRel, selfID); l == nil || l.Outcome != OutcomeHandedOver || l.NewID != succID || l.Failure != nil || !strings.Contains(l.Message, short(succID)) {
		t.Errorf("stored self line = %+v, want handed_over to %s", l, short(succID))
	}
	if l := lineOf(storedAtRel, otherID); l == nil || l.Outcome != OutcomeUpdated {
		t.Errorf("stored app line = %+v, want updated", l)
	}
	if n := len(r.history.puts); n != 1 {
		t.Errorf("the run was stored %d times, want once (before the release)", n)
	}

	// What Execute returns.
	if l := lineOf(rep, selfID); l == nil || l.Outcome != OutcomeHandedOver || l.NewID != succID {
		t.Errorf("returned self line = %+v, want handed_over to %s", l, short(succID))
	}
	if l := lineOf(rep, otherID); l == nil || l.Outcome != OutcomeUpdated || l.NewID != otherID+"-new" {
		t.Errorf("returned app line = %+v, want updated", l)
	}
	if told := r.obs.told(); len(told) != 1 || lineOf(&told[0], selfID).Outcome != OutcomeHandedOver {
		t.Errorf("observers told %d times (%+v), want once, with the handover", len(told), told)
	}

	// Nothing runs any more: the store belongs to the successor.
	if _, _, err := r.u.Trigger(context.Background(), Request{Trigger: TriggerHTTP}); !errors.Is(err, ErrHandedOver) {
		t.Errorf("Trigger after the handover = %v, want ErrHandedOver", err)
	}
}

// A run triggered while the handover is in progress is queued; once the watcher has handed over
// it never runs, and its report says why.
func TestRunQueuedDuringHandover(t *testing.T) {
	var r *selfRig
	var released []string
	r = newSelfRig(func(o *Options) {
		o.Release = func(_ context.Context, successor string) error {
			released = append(released, successor) // only the run loop's goroutine calls it
			return nil
		}
	})
	var (
		queuedID   string
		queuedDone <-chan struct{}
		queueErr   error
		afterErr   error
	)
	r.life.handover = func(ctx context.Context, s lifecycle.Spec, release func(context.Context, string) error) lifecycle.Result {
		// Called on the run loop's goroutine: the run is in progress, so this trigger queues.
		queuedID, queuedDone, queueErr = r.u.Trigger(context.Background(), Request{Trigger: TriggerHTTP})
		if err := release(ctx, succID); err != nil {
			t.Errorf("release: %v", err)
		}
		_, _, afterErr = r.u.Trigger(context.Background(), Request{Trigger: TriggerHTTP})
		return lifecycle.Result{OldID: s.ContainerID, NewID: succID, Outcome: lifecycle.OutcomeHandedOver}
	}

	id, done, err := r.u.Trigger(context.Background(), Request{Trigger: TriggerSchedule})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, done)
	if queueErr != nil || queuedID == "" || queuedID == id {
		t.Fatalf("Trigger during the handover = %q, %v; want a queued run of its own", queuedID, queueErr)
	}
	if !errors.Is(afterErr, ErrHandedOver) {
		t.Errorf("Trigger right after the release = %v, want ErrHandedOver", afterErr)
	}
	if !slices.Equal(released, []string{succID}) {
		t.Errorf("Options.Release called with %q, want once with %s", released, short(succID))
	}
	waitDone(t, queuedDone)

	first, err := r.u.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	if l := lineOf(first, selfID); l == nil || l.Outcome != OutcomeHandedOver || l.NewID != succID {
		t.Errorf("handover run's self line = %+v, want handed_over", l)
	}
	queued, err := r.u.Run(queuedID)
	if err != nil {
		t.Fatal(err)
	}
	if queued.Error != ErrHandedOver.Error() || len(queued.Containers) != 0 || queued.FinishedAt.IsZero() {
		t.Errorf("queued run = %+v, want finished with no lines and error %q", queued, ErrHandedOver.Error())
	}
	if got := r.life.calls(); len(got) != 2 {
		t.Errorf("replacer calls = %q, want only the first run's two", got)
	}
	r.u.Wait() // returns: nothing runs or is queued
	if _, _, err := r.u.Trigger(context.Background(), Request{}); !errors.Is(err, ErrHandedOver) {
		t.Errorf("Trigger afterwards = %v, want ErrHandedOver", err)
	}
}

// When Options.Release fails, lifecycle rolls the handover back; the run reports that, is stored
// (again, over the handed_over report written before the release) and the watcher goes on.
func TestHandoverReleaseFails(t *testing.T) {
	for _, tt := range []struct {
		name    string
		outcome lifecycle.Outcome
		want    Outcome
		stage   failure.Stage
		reason  failure.Reason
	}{
		{"rolled back", lifecycle.OutcomeRolledBack, OutcomeRolledBack, failure.StageStart, failure.Interrupted},
		{"rollback failed", lifecycle.OutcomeFailed, OutcomeFailed, failure.StageRollback, failure.RollbackFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			releaseErr := errors.New("closing the state file: disk on fire")
			var r *selfRig
			r = newSelfRig(func(o *Options) {
				o.Release = func(context.Context, string) error { return releaseErr }
			})
			r.life.handover = func(ctx context.Context, s lifecycle.Spec, release func(context.Context, string) error) lifecycle.Result {
				err := release(ctx, succID)
				if !errors.Is(err, releaseErr) {
					t.Errorf("release returned %v, want Options.Release's error", err)
				}
				return lifecycle.Result{OldID: s.ContainerID, NewID: succID, Outcome: tt.outcome,
					Err: &lifecycle.Error{ContainerID: s.ContainerID, Stage: tt.stage, Reason: tt.reason, Message: "releasing the state file and listener for the successor", Err: err}}
			}

			rep := r.u.Execute(context.Background(), "", Request{Trigger: TriggerSchedule})

			l := lineOf(rep, selfID)
			if l == nil || l.Outcome != tt.want || l.Failure == nil || l.Failure.Reason != tt.reason || l.Failure.Stage != tt.stage {
				t.Fatalf("self line = %+v, want %s, %s/%s", l, tt.want, tt.stage, tt.reason)
			}
			if strings.Contains(l.Message, "successor "+short(succID)+" started") {
				t.Errorf("self line message = %q, still says the successor took over", l.Message)
			}
			if l := lineOf(rep, otherID); l == nil || l.Outcome != OutcomeUpdated {
				t.Errorf("app line = %+v, want updated", l)
			}
			stored := r.history.report(t, rep.ID)
			if sl := lineOf(stored, selfID); sl == nil || sl.Outcome != tt.want {
				t.Errorf("stored self line = %+v, want %s (the handed_over report replaced)", sl, tt.want)
			}
			var outcomes []Outcome
			for _, rr := range r.obs.told() {
				outcomes = append(outcomes, lineOf(&rr, selfID).Outcome)
			}
			if !slices.Equal(outcomes, []Outcome{tt.want}) {
				t.Errorf("observers were told the self line as %q, want once as %s (never handed_over)", outcomes, tt.want)
			}

			// Not handed over: the watcher goes on.
			r.checker.set(nil)
			id, done, err := r.u.Trigger(context.Background(), Request{Trigger: TriggerHTTP})
			if err != nil {
				t.Fatalf("Trigger after a failed release = %v, want a run", err)
			}
			waitDone(t, done)
			next, err := r.u.Run(id)
			if err != nil {
				t.Fatal(err)
			}
			if next.Error != "" || lineOf(next, selfID) == nil || lineOf(next, selfID).Outcome != OutcomeUpToDate {
				t.Errorf("next run = %+v, want an ordinary run (self up to date)", next)
			}
		})
	}
}

func TestRecoverStoresARecoveryRun(t *testing.T) {
	r := newSelfRig(nil)
	r.life.recovered = []lifecycle.Result{
		{TxID: "tx1", Name: "app", OldID: otherID, NewID: otherID + "-new", Outcome: lifecycle.OutcomeUpdated, Downtime: time.Second},
		{TxID: "tx2", Name: "db", OldID: "db-id", NewID: "db-id", Outcome: lifecycle.OutcomeRolledBack,
			Err: &lifecycle.Error{ContainerID: "db-id", Stage: failure.StageVerify, Reason: failure.Interrupted, Message: "the watcher stopped mid-update"}},
		{TxID: "tx3", Name: "watcher", OldID: selfID, NewID: succID, Outcome: lifecycle.OutcomeHandedOver},
	}
	got := r.u.Recover(context.Background())
	if len(got) != 3 {
		t.Errorf("Recover returned %d results, want lifecycle's 3", len(got))
	}
	runs := r.history.reports(t)
	if len(runs) != 1 {
		t.Fatalf("%d runs stored, want 1", len(runs))
	}
	rep := &runs[0]
	if rep.Trigger != TriggerRecovery || rep.Error != "" || rep.Watched != nil || rep.StartedAt.IsZero() || rep.FinishedAt.Before(rep.StartedAt) || len(rep.Containers) != 3 {
		t.Fatalf("recovery run = %+v, want trigger recovery with 3 lines and no watched count", rep)
	}
	if l := rep.Containers[0]; l.Name != "app" || l.ID != otherID || l.NewID != otherID+"-new" || l.Outcome != OutcomeUpdated || l.Failure != nil || l.Downtime != time.Second || !strings.Contains(l.Message, "tx1") {
		t.Errorf("app line = %+v, want updated to the new container, naming tx1", l)
	}
	if l := rep.Containers[1]; l.Name != "db" || l.NewID != "" || l.Outcome != OutcomeRolledBack || l.Failure == nil ||
		*l.Failure != (Failure{Stage: failure.StageVerify, Reason: failure.Interrupted, Message: "the watcher stopped mid-update"}) {
		t.Errorf("db line = %+v (failure %+v), want rolled_back with the verify/Interrupted failure and no new id", l, l.Failure)
	}
	if l := rep.Containers[2]; l.Name != "watcher" || l.ID != selfID || l.NewID != succID || l.Outcome != OutcomeHandedOver || l.Failure != nil || !strings.Contains(l.Message, "successor") {
		t.Errorf("watcher line = %+v, want handed_over to the successor", l)
	}
	if told := r.obs.told(); len(told) != 1 || told[0].ID != rep.ID {
		t.Errorf("observers told about %d runs, want the recovery run", len(told))
	}
	if !rep.Failed() {
		t.Errorf("recovery run with a rollback is not Failed()")
	}

	// Nothing recovered: no run.
	r2 := newSelfRig(nil)
	if got := r2.u.Recover(context.Background()); len(got) != 0 {
		t.Errorf("Recover = %+v, want nothing", got)
	}
	if n := len(r2.history.reports(t)); n != 0 || len(r2.obs.told()) != 0 {
		t.Errorf("%d runs stored (observers told %d) after recovering nothing, want none", n, len(r2.obs.told()))
	}
}
