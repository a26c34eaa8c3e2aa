package updater

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/defaults"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
)

// Engine is the part of the Docker Engine API a cycle uses directly (lifecycle makes the rest).
type Engine interface {
	ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ImageInspect(ctx context.Context, id string, o ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageRemove(ctx context.Context, id string, o client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	Ping(ctx context.Context, o client.PingOptions) (client.PingResult, error)
}

// Checker asks registries whether images moved (registry.Checker).
type Checker interface {
	Check(ctx context.Context, qs []registry.Query) []registry.Result
	PullAuth(ref string) (string, error)
}

// Replacer replaces containers as journaled transactions (lifecycle.Manager).
type Replacer interface {
	Replace(ctx context.Context, s lifecycle.Spec) lifecycle.Result
	Restart(ctx context.Context, containerID, stopSignal string, timeout *time.Duration) *lifecycle.Error
	Recover(ctx context.Context) []lifecycle.Result
}

// History keeps run reports (store.Store).
type History interface {
	PutRun(id string, data []byte) error
	Run(id string) ([]byte, error)
	Runs(limit int) ([][]byte, error)
	PruneRuns(keep int) error
}

var (
	_ Engine    = (*client.Client)(nil)
	_ Checker   = (*registry.Checker)(nil)
	_ Replacer  = (*lifecycle.Manager)(nil)
	_ History   = (*store.Store)(nil)
	_ LastKnown = (*store.Store)(nil)
)

// Options are the cycle's settings from config. The zero value is safe: failed updates are
// rolled back, superseded images are kept, only opted-in containers are watched.
type Options struct {
	Selection         Selection
	IncludeStopped    bool
	IncludeRestarting bool       // also watch restarting containers (Watchtower's --include-restarting)
	Hooks             HookRunner // runs lifecycle hook labels; nil = off (update.lifecycle_hooks)
	Defaults          Defaults
	// NoRollback keeps a new container that runs but failed its health gate (update.rollback:
	// false); lifecycle still rolls back one that exited or never ran. Default false: roll back.
	NoRollback bool
	Cleanup    bool         // remove images updates superseded when nothing uses them; default false
	Parallel   int          // containers in the disruptive part of an update at once; default 4
	SelfID     string       // the watcher's own container ID ("" = not in a container)
	KeepRuns   int          // history rows kept; default 500
	Logger     *slog.Logger // default slog.Default()
	Observers  []Observer
	// Release, when set, lets the watcher update its own container (self.go): it is called
	// during the handover, after this run's report is stored, and must give up the HTTP
	// listener and the store for the successor (see lifecycle.Handover). Without it (once,
	// check) the watcher reports its own update as available and leaves it.
	Release func(ctx context.Context, successorID string) error
}

// Updater runs cycles, one at a time, and remembers what it saw.
type Updater struct {
	engine  Engine
	checker Checker
	life    Replacer
	history History
	opts    Options
	selfID  string
	log     *slog.Logger
	baseCtx context.Context // runs started by Trigger use it; cancelled = stop starting steps
	idle    sync.Cond       // signalled when a triggered run sequence ends

	loadOnce sync.Once // the last known states are read from History once (status.go)

	mu      sync.Mutex
	running *run
	queued  *run
	recent  map[string]*run // runs still in memory, by id (the last few)
	order   []string
	status  map[string]ContainerStatus // by container name
	// handedOver: the store and listener went to a successor; no run starts any more.
	handedOver bool
}

type run struct {
	id     string
	req    Request
	done   chan struct{}
	report *Report
}

// New wires an Updater. History may be nil (no history kept). Replacer may be nil: that Updater
// only checks, and every run is a dry run (`watcher check`).
func New(e Engine, c Checker, l Replacer, h History, o Options) *Updater {
	if o.Parallel < 1 {
		o.Parallel = defaults.Parallel
	}
	if o.KeepRuns < 1 {
		o.KeepRuns = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	u := &Updater{engine: e, checker: c, life: l, history: h, opts: o, selfID: o.SelfID, log: o.Logger,
		baseCtx: context.Background(), recent: map[string]*run{}, status: map[string]ContainerStatus{}}
	u.idle.L = &u.mu
	return u
}

// SetContext sets the context triggered runs use. When it is cancelled (SIGTERM), a run starts
// no new step; the step in flight finishes or is left to Recover. Call it before the first Trigger.
func (u *Updater) SetContext(ctx context.Context) { u.baseCtx = ctx }

// Wait blocks until no triggered run is running or queued.
func (u *Updater) Wait() {
	u.mu.Lock()
	for u.running != nil {
		u.idle.Wait()
	}
	u.mu.Unlock()
}

// Recover drives every unfinished transaction (a crash or kill mid-update) to commit or rollback.
// The daemon calls it before its first cycle; without a Replacer there is nothing to recover.
//
// What it finished is stored as a run with trigger "recovery", so an update interrupted by a
// crash — or a self-update finished by the successor — shows in the history with its outcome.
func (u *Updater) Recover(ctx context.Context) []lifecycle.Result {
	if u.life == nil {
		return nil
	}
	start := time.Now().UTC()
	res := u.life.Recover(ctx)
	rep := &Report{ID: newRunID(start), Trigger: TriggerRecovery, StartedAt: start}
	for _, r := range res {
		l := u.log.With("container", r.Name, "id", short(r.OldID), "txid", r.TxID, "outcome", r.Outcome)
		if r.Err != nil {
			l.Error("recovered an unfinished update", "stage", r.Err.Stage, "reason", r.Err.Reason, "err", r.Err.Message)
		} else {
			l.Info("recovered an unfinished update")
		}
		rep.Containers = append(rep.Containers, recoveredLine(r))
	}
	if len(rep.Containers) > 0 {
		rep.FinishedAt = time.Now().UTC()
		u.finish(rep)
	}
	return res
}

// recoveredLine is the report line of a transaction Recover finished.
func recoveredLine(r lifecycle.Result) ContainerReport {
	line := ContainerReport{Name: r.Name, ID: r.OldID, Outcome: OutcomeFailed, Downtime: r.Downtime,
		Message: "finished an update the watcher was interrupted in (transaction " + r.TxID + ")"}
	if r.NewID != r.OldID {
		line.NewID = r.NewID
	}
	switch r.Outcome {
	case lifecycle.OutcomeUpdated:
		line.Outcome = OutcomeUpdated
	case lifecycle.OutcomeRolledBack:
		line.Outcome = OutcomeRolledBack
	case lifecycle.OutcomeHandedOver:
		line.Outcome, line.Message = OutcomeHandedOver, "the self-update's successor runs and finishes it (transaction "+r.TxID+")"
	}
	if r.Err != nil {
		line.Failure = &Failure{Stage: r.Err.Stage, Reason: r.Err.Reason, Message: r.Err.Message}
	}
	return line
}

// Trigger asks for a run. When none is running, it starts now; otherwise the request joins the
// one queued follow-up run (merged with what is already queued) and gets that run's id, so two
// triggers never touch one container twice and a flood of triggers yields at most two runs.
func (u *Updater) Trigger(ctx context.Context, req Request) (string, <-chan struct{}, error) {
	if len(req.Containers) > 0 || len(req.Images) > 0 {
		if err := u.checkWatched(ctx, req); err != nil {
			return "", nil, err
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.handedOver {
		return "", nil, ErrHandedOver
	}
	if u.running == nil {
		r := u.newRun(req)
		u.running = r
		go u.loop(r)
		return r.id, r.done, nil
	}
	if u.queued == nil {
		u.queued = u.newRun(req)
	} else {
		u.queued.req = mergeRequests(u.queued.req, req)
	}
	return u.queued.id, u.queued.done, nil
}

func (u *Updater) newRun(req Request) *run {
	r := &run{id: newRunID(time.Now()), req: req, done: make(chan struct{})}
	u.remember(r)
	return r
}

// loop runs r, then whatever queued up meanwhile, until nothing is queued.
func (u *Updater) loop(r *run) {
	for r != nil {
		rep := u.Execute(u.baseCtx, r.id, r.req)
		u.mu.Lock()
		r.report = rep
		close(r.done)
		r = u.queued
		u.queued = nil
		if r != nil && u.handedOver {
			now := time.Now().UTC()
			r.report = &Report{ID: r.id, Trigger: r.req.Trigger, StartedAt: now, FinishedAt: now, Error: ErrHandedOver.Error()}
			close(r.done)
			r = nil
		}
		u.running = r
		if r == nil {
			u.idle.Broadcast()
		}
		u.mu.Unlock()
	}
}

// mergeRequests unions two filtered requests; an unfiltered one (everything) absorbs the other.
func mergeRequests(a, b Request) Request {
	all := func(r Request) bool { return len(r.Containers) == 0 && len(r.Images) == 0 }
	if all(a) || all(b) {
		return Request{Trigger: a.Trigger}
	}
	out := Request{Trigger: a.Trigger}
	out.Containers = union(a.Containers, b.Containers)
	out.Images = union(a.Images, b.Images)
	return out
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// checkWatched returns a *NotWatchedError naming the requested containers that are not watched
// and the requested images that no watched container runs.
func (u *Updater) checkWatched(ctx context.Context, req Request) error {
	obs, err := u.list(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range req.Containers {
		if t := obs.byName[n]; t == nil || !t.Watched {
			missing = append(missing, n)
		}
	}
	for _, img := range req.Images {
		found := false
		for _, t := range obs.Watched {
			if matchesImage(t.Image, []string{img}) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return &NotWatchedError{Names: missing}
	}
	return nil
}

// Execute performs one cycle now (the caller guarantees one at a time: Trigger, or the CLI's once
// and check) and returns its report, which is also stored and passed to the observers.
func (u *Updater) Execute(ctx context.Context, id string, req Request) *Report {
	if id == "" {
		id = newRunID(time.Now())
	}
	u.loadStatus()
	rep := &Report{ID: id, Trigger: req.Trigger, DryRun: req.DryRun || u.life == nil, StartedAt: time.Now().UTC()}
	for _, s := range u.cycle(ctx, req, rep) {
		if u.handOver(ctx, rep, s) {
			return rep // finished and stored before the store was handed over
		}
	}
	rep.FinishedAt = time.Now().UTC()
	u.finish(rep)
	return rep
}

// finish stores rep and tells the observers about it.
func (u *Updater) finish(rep *Report) {
	u.store(rep)
	u.tell(rep)
}

// store writes rep to history (a report stored again under its id replaces the earlier one).
func (u *Updater) store(rep *Report) {
	if u.history != nil {
		if b, err := json.Marshal(rep); err == nil {
			if err := u.history.PutRun(rep.ID, b); err != nil {
				u.log.Error("could not store the run report", "run", rep.ID, "err", err)
			} else if err := u.history.PruneRuns(u.opts.KeepRuns); err != nil {
				u.log.Warn("could not prune old run reports", "err", err)
			}
		}
	}
}

// tell makes rep the in-memory answer for its run and passes it to the observers.
func (u *Updater) tell(rep *Report) {
	u.mu.Lock()
	if r := u.recent[rep.ID]; r != nil {
		r.report = rep
	}
	u.mu.Unlock()
	for _, o := range u.opts.Observers {
		o.RunFinished(rep)
	}
	u.log.Info("run finished", "run", rep.ID, "trigger", rep.Trigger, "containers", len(rep.Containers),
		"updated", rep.Count(OutcomeUpdated), "failed", rep.Count(OutcomeFailed), "rolled_back", rep.Count(OutcomeRolledBack),
		"duration", rep.FinishedAt.Sub(rep.StartedAt).Round(time.Millisecond))
}

// remember keeps the last few runs in memory so a run id answers before its report is stored.
func (u *Updater) remember(r *run) {
	u.recent[r.id] = r
	u.order = append(u.order, r.id)
	for len(u.order) > 32 {
		delete(u.recent, u.order[0])
		u.order = u.order[1:]
	}
}

// Run looks up a report by id: in memory first (a queued or running run answers with an empty
// report), then in history.
func (u *Updater) Run(id string) (*Report, error) {
	u.mu.Lock()
	r := u.recent[id]
	var rep *Report
	if r != nil {
		rep = r.report
	}
	u.mu.Unlock()
	if rep != nil {
		return rep, nil
	}
	if r != nil {
		return &Report{ID: id, Trigger: r.req.Trigger}, nil // queued or running: no lines yet
	}
	if u.history == nil {
		return nil, ErrRunNotFound
	}
	b, err := u.history.Run(id)
	if err != nil {
		return nil, ErrRunNotFound
	}
	var out Report
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("run %s: stored report unreadable: %w", id, err)
	}
	return &out, nil
}

// Runs returns up to limit stored reports, newest first.
func (u *Updater) Runs(limit int) ([]Report, error) {
	if u.history == nil {
		return nil, nil
	}
	rows, err := u.history.Runs(limit)
	if err != nil {
		return nil, err
	}
	out := make([]Report, 0, len(rows))
	for _, b := range rows {
		var r Report
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// Containers returns every watched container with the latest state a run found for it.
func (u *Updater) Containers(ctx context.Context) ([]ContainerStatus, error) {
	obs, err := u.list(ctx)
	if err != nil {
		return nil, err
	}
	u.loadStatus()
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []ContainerStatus
	for _, name := range sortedKeys(obs.byName) {
		t := obs.byName[name]
		if !t.Watched {
			continue
		}
		known, ok := u.status[name]
		// What a run found holds while the container is the one it saw (or is being replaced);
		// a container replaced or recreated outside the watcher since then is "unknown" again.
		if ok && (known.ID == t.ID || known.State == StateUpdating) {
			out = append(out, known)
			continue
		}
		st := t.status(StateUnknown)
		st.LastError = known.LastError
		out = append(out, st)
	}
	return out, nil
}

// Ready reports whether the Docker engine answers.
func (u *Updater) Ready(ctx context.Context) error {
	_, err := u.engine.Ping(ctx, client.PingOptions{})
	return err
}

func newRunID(t time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
