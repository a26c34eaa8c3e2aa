package updater

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
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
	IncludeRestarting bool // also watch restarting containers (Watchtower's --include-restarting)
	// LifecycleHooks runs the lifecycle hook labels (update.lifecycle_hooks) with each host's
	// Replacer, where it can run them (a HookRunner: lifecycle.Manager).
	LifecycleHooks bool
	Defaults       Defaults
	// NoRollback keeps a new container that runs but failed its health gate (update.rollback:
	// false); lifecycle still rolls back one that exited or never ran. Default false: roll back.
	NoRollback bool
	Cleanup    bool   // remove images updates superseded when nothing uses them; default false
	Parallel   int    // containers in the disruptive part of an update at once, per host; default 4
	SelfID     string // the watcher's own container ID ("" = not in a container)
	SelfHost   string // the host SelfID is on ("" = the only one)
	// HostTimeout bounds how long a run waits for one host's engine to list and describe its
	// containers (and a ping): a slow engine never holds up the others longer. Default 30s.
	HostTimeout time.Duration
	// InventoryResync is how often the daemon's inventory (FollowEvents) lists every container
	// of a host to correct what lost events made it miss. Default DefaultInventoryResync.
	InventoryResync time.Duration
	KeepRuns        int          // history rows kept; default 500
	Logger          *slog.Logger // default slog.Default()
	Observers       []Observer
	// Release, when set, lets the watcher update its own container (self.go): it is called
	// during the handover, after this run's report is stored, and must give up the HTTP
	// listener and the store for the successor (see lifecycle.Handover). Without it (once,
	// check) the watcher reports its own update as available and leaves it.
	Release func(ctx context.Context, successorID string) error

	// Schedule is the daemon's cron spec (the schedule key): the containers without a
	// watcher.schedule label are checked on it (see Scheduler). "" = none.
	Schedule string
	// KeepImages is how many superseded images each container keeps for a rollback
	// (update.keep_images); cleanup removes older ones. Default 0: none kept.
	KeepImages int
	// Now is the clock maintenance windows are read on; default time.Now (tests inject one).
	Now func() time.Time
	// Services watches the Swarm services of the hosts that are managers (swarm.services); a
	// service is watched only when labelled watcher.enable=true. Default false.
	Services bool
}

// DefaultHostTimeout is Options.HostTimeout's default.
const DefaultHostTimeout = 30 * time.Second

// Updater runs cycles, one at a time, and remembers what it saw.
type Updater struct {
	hosts     []*host // in configuration order; one, named "", without hosts configured
	checkOnly bool    // no host has a Replacer: every run is a dry run (watcher check)
	checker   Checker
	history   History
	opts      Options
	selfID    string
	log       *slog.Logger
	baseCtx   context.Context // runs started by Trigger use it; cancelled = stop starting steps
	idle      sync.Cond       // signalled when a triggered run sequence ends

	loadOnce sync.Once // the last known states are read from History once (status.go)
	savedMu  sync.Mutex
	saved    savedStates // what saveStatus wrote last
	book     approvalBook
	sched    *Scheduler // the daemon's schedules, for Status; nil before NewScheduler

	mu        sync.Mutex
	running   *run
	queued    *run
	rollbacks []*run          // manual rollbacks waiting for the running run; never merged
	recent    map[string]*run // runs still in memory, by id (the last few)
	order     []string
	status    map[string]ContainerStatus // by Container.key: "web", or "edge-1/web"
	// handedOver: the store and listener went to a successor; no run starts any more.
	handedOver bool
}

type run struct {
	id     string
	req    Request
	done   chan struct{}
	report *Report
}

// New wires an Updater for one engine, named nowhere (no hosts configured). History may be nil
// (no history kept). Replacer may be nil: that Updater only checks, and every run is a dry run
// (`watcher check`).
func New(e Engine, c Checker, l Replacer, h History, o Options) *Updater {
	return NewHosts([]Host{{Engine: e, Life: l}}, c, h, o)
}

// NewHosts wires an Updater for several engines (hosts), each with a unique name. One host
// named "" is what New makes.
func NewHosts(hosts []Host, c Checker, h History, o Options) *Updater {
	if o.Parallel < 1 {
		o.Parallel = defaults.Parallel
	}
	if o.KeepRuns < 1 {
		o.KeepRuns = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HostTimeout <= 0 {
		o.HostTimeout = DefaultHostTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	u := &Updater{checker: c, history: h, opts: o, selfID: o.SelfID, log: o.Logger, checkOnly: true,
		baseCtx: context.Background(), recent: map[string]*run{}, status: map[string]ContainerStatus{}}
	for _, hc := range hosts {
		u.hosts = append(u.hosts, newHost(hc, o))
		u.checkOnly = u.checkOnly && hc.Life == nil
	}
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

// Recover drives every unfinished transaction (a crash or kill mid-update) to commit or rollback,
// on every host whose engine answers; a host that does not is recovered when it answers again
// (WatchHosts, or the next run). The daemon calls it before its first cycle; without a Replacer
// there is nothing to recover.
//
// What it finished is stored as a run with trigger "recovery", so an update interrupted by a
// crash — or a self-update finished by the successor — shows in the history with its outcome.
func (u *Updater) Recover(ctx context.Context) []lifecycle.Result {
	if u.checkOnly {
		return nil
	}
	var up []*host
	for i, s := range u.Hosts(ctx) {
		if s.Reachable {
			up = append(up, u.hosts[i])
		}
	}
	return u.recoverHosts(ctx, up, true)
}

// recoverHosts recovers hosts (atStart: every one; later: those whose engine was lost and is
// back) and stores what they finished as one recovery run. The host the
// watcher's own container is on goes first and alone: when its successor runs (a self-update
// in flight), this process must give the journal up at once, with nothing else writing it.
// The others then recover at once, each on its own engine.
func (u *Updater) recoverHosts(ctx context.Context, hs []*host, atStart bool) []lifecycle.Result {
	start := time.Now().UTC()
	rep := &Report{ID: newRunID(start), Trigger: TriggerRecovery, StartedAt: start}
	var out []lifecycle.Result
	add := func(h *host, res recovered) {
		for _, r := range res.containers {
			l := h.log.With("container", r.Name, "id", short(r.OldID), "txid", r.TxID, "outcome", r.Outcome)
			if r.Err != nil {
				l.Error("recovered an unfinished update", "stage", r.Err.Stage, "reason", r.Err.Reason, "err", r.Err.Message)
			} else {
				l.Info("recovered an unfinished update")
			}
			line := recoveredLine(r)
			line.Host = h.Name
			rep.Containers = append(rep.Containers, line)
		}
		for _, r := range res.services {
			rep.Containers = append(rep.Containers, recoveredServiceLine(h, r))
		}
		out = append(out, res.containers...)
	}
	rest := slices.Clone(hs)
	if i := slices.IndexFunc(rest, func(h *host) bool { return u.selfID != "" && h.Name == u.opts.SelfHost }); i >= 0 {
		self := rest[i]
		rest = slices.Delete(rest, i, i+1)
		res := self.recover(ctx, atStart)
		add(self, res)
		if slices.ContainsFunc(res.containers, func(r lifecycle.Result) bool { return r.Outcome == lifecycle.OutcomeHandedOver && r.OldID == u.selfID }) {
			u.finishRecovery(rep)
			return out // this process steps back for its successor (see lifecycle.Manager.Recover)
		}
	}
	results := make([]recovered, len(rest))
	var wg sync.WaitGroup
	for i, h := range rest {
		wg.Go(func() { results[i] = h.recover(ctx, atStart) })
	}
	wg.Wait()
	for i, h := range rest {
		add(h, results[i])
	}
	u.finishRecovery(rep)
	return out
}

// finishRecovery stores a recovery run that finished something.
func (u *Updater) finishRecovery(rep *Report) {
	if len(rep.Containers) > 0 {
		rep.FinishedAt = time.Now().UTC()
		u.finish(rep)
	}
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
	if len(req.Containers) > 0 || len(req.Images) > 0 || len(req.Pushed) > 0 || len(req.Hosts) > 0 {
		var err error
		if req, err = u.checkWatched(ctx, req); err != nil {
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
		r = u.next()
		u.running = r
		if r == nil {
			u.idle.Broadcast()
		}
		u.mu.Unlock()
	}
}

// next takes the run to start after the one that ended: a waiting rollback first, then the
// queued run. After a handover none starts: each answers with ErrHandedOver. u.mu is held.
func (u *Updater) next() *run {
	for {
		var r *run
		if len(u.rollbacks) > 0 {
			r, u.rollbacks = u.rollbacks[0], u.rollbacks[1:]
		} else {
			r, u.queued = u.queued, nil
		}
		if r == nil || !u.handedOver {
			return r
		}
		now := time.Now().UTC()
		r.report = &Report{ID: r.id, Trigger: r.req.Trigger, StartedAt: now, FinishedAt: now, Error: ErrHandedOver.Error()}
		close(r.done)
	}
}

// mergeRequests makes one request that covers both: an unfiltered one (everything) absorbs the
// other, on the hosts both name (every host when either names none). It may cover more than
// either asked for, never less. What was forced stays forced for the containers its request
// selected, and no others.
func mergeRequests(a, b Request) Request {
	out := Request{Trigger: a.Trigger, forced: append(forcedParts(a), forcedParts(b)...)}
	if len(a.Hosts) > 0 && len(b.Hosts) > 0 {
		out.Hosts = union(a.Hosts, b.Hosts)
	}
	if a.all() || b.all() {
		return out
	}
	if !slices.Equal(a.Hosts, b.Hosts) {
		// web on host a and everything on host b is no smaller than everything on both.
		return out
	}
	out.Containers = union(a.Containers, b.Containers)
	out.Images = union(a.Images, b.Images)
	out.Pushed = union(a.Pushed, b.Pushed)
	out.Schedules = union(a.Schedules, b.Schedules)
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

// Execute performs one cycle now (the caller guarantees one at a time: Trigger, or the CLI's once
// and check) and returns its report, which is also stored and passed to the observers.
func (u *Updater) Execute(ctx context.Context, id string, req Request) *Report {
	if id == "" {
		id = newRunID(time.Now())
	}
	u.loadStatus()
	rep := &Report{ID: id, Trigger: req.Trigger, DryRun: req.DryRun || u.checkOnly, StartedAt: time.Now().UTC()}
	started := *rep
	u.live(func(o LiveObserver) { o.RunStarted(&started) })
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
