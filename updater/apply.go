package updater

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/swarm"
)

// Applying a plan: groups concurrently, each group's steps in order, through lifecycle. Nothing
// here decides what to do; the only things apply reacts to are the ones no plan can know in
// advance: the watcher stopping (no new step starts), and a Follows step whose parents all failed
// before their stop (nothing disturbed it: skipped, as the plan says).

// notePlan puts what the plan decided on the report lines before anything is applied: each hold
// that has an outcome, and the watcher's own update waiting for the rest of the run.
func notePlan(plan *Plan, lines map[string]*ContainerReport) {
	for _, h := range plan.Held {
		line := lines[h.Target.String()]
		if line == nil || h.Outcome == "" {
			continue
		}
		line.Outcome, line.Message, line.Failure = h.Outcome, h.Why, nil
		if h.Reason != "" {
			line.Failure = &Failure{Stage: failure.StagePlan, Reason: h.Reason, Message: h.Why}
		}
	}
	for _, s := range plan.Last {
		if line := lines[s.Target.String()]; line != nil {
			line.Outcome, line.Message = OutcomeSkipped, "the watcher's own update waits for the rest of the run"
		}
	}
}

// reportDryRun is a dry-run plan's execution: every update it would make is reported available.
func reportDryRun(plan *Plan, lines map[string]*ContainerReport) {
	for _, g := range append(plan.Groups, plan.Last) {
		for _, s := range g {
			if line := lines[s.Target.String()]; line != nil && (s.Op == OpUpdate || s.Op == OpHandOver) {
				line.Outcome, line.Message = OutcomeUpdateAvailable, "would update: "+s.Cause
			}
		}
	}
}

// applier is one plan's execution state, shared by its groups' goroutines.
type applier struct {
	u *Updater

	mu        sync.Mutex
	lines     map[string]*ContainerReport // by target
	replaced  map[string]string           // old container ID -> new, for what this run replaced
	disturbed map[string]bool             // targets whose container was stopped (see Step.Follows)
	committed []committed                 // the updates that committed
}

// committed is an update step that committed, with its transaction's result (or, for a Swarm
// service, the service update's).
type committed struct {
	step *Step
	res  lifecycle.Result
	svc  *swarm.Result
	line *ContainerReport
}

// apply runs the plan's groups: concurrently, each group's steps in order. update.parallel bounds
// how many containers of one host are in their disruptive phase at once (pull, stop, create,
// start): a step holds a slot of its host until its new container has started (lifecycle's
// Spec.Started), then gives it up while it verifies, so verify windows of many containers overlap
// instead of queueing behind each other. A failed step never stops the others, and the hosts'
// slots are their own: a slow engine holds up nothing on another. It returns the updates that
// committed.
func (u *Updater) apply(ctx context.Context, plan *Plan, lines map[string]*ContainerReport) []committed {
	a := &applier{u: u, lines: lines, replaced: map[string]string{}, disturbed: map[string]bool{}}
	var wg sync.WaitGroup
	for _, group := range plan.Groups {
		wg.Go(func() {
			for _, s := range group {
				a.step(ctx, s)
			}
		})
	}
	wg.Wait()
	return a.committed
}

// step executes one step and records its outcome on its target's line.
func (a *applier) step(ctx context.Context, s *Step) {
	line := a.line(s)
	slots := a.u.hostOf(s.c).slots
	if s.c.isService() {
		slots = a.u.hostOf(s.c).svcSlots
	}
	release, ok := acquire(ctx, slots)
	if !ok {
		a.skip(line, "the watcher is stopping; not started")
		return
	}
	if !a.followsSomething(s) {
		release()
		a.skip(line, followsNothing(s))
		return
	}
	start := time.Now()
	a.u.setStatus(s.c, s.c.status(StateUpdating))
	switch {
	case s.c.isService():
		a.updateService(ctx, s, line, release)
	case s.Op == OpUpdate, s.Op == OpRecreate:
		a.replace(ctx, s, line, release)
	case s.Op == OpRestart:
		a.restart(ctx, s, line, release)
	}
	a.mu.Lock()
	line.Duration = time.Since(start)
	st := statusOf(s.c, line)
	a.mu.Unlock()
	a.u.setStatus(s.c, st)
}

// line returns the step's report line; a dependent that is not watched gets one now.
func (a *applier) line(s *Step) *ContainerReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := s.Target.String()
	if a.lines[key] == nil {
		a.lines[key] = newLine(s.c)
		a.lines[key].Policy, a.lines[key].Mode = "", ""
	}
	return a.lines[key]
}

func (a *applier) skip(line *ContainerReport, why string) {
	a.mu.Lock()
	line.Outcome, line.Message, line.Failure = OutcomeSkipped, why, nil
	a.mu.Unlock()
}

// followsSomething reports whether a Follows step still has a reason to run: one of the steps it
// follows stopped its container. Steps without Follows always run.
func (a *applier) followsSomething(s *Step) bool {
	if len(s.Follows) == 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range s.Follows {
		if a.disturbed[f] {
			return true
		}
	}
	return false
}

// replace runs an update or recreation as a lifecycle transaction.
func (a *applier) replace(ctx context.Context, s *Step, line *ContainerReport, release func()) {
	if s.PreUpdate != nil && !a.preUpdate(ctx, s, line) {
		release()
		return
	}
	a.mu.Lock()
	replaced := make(map[string]string, len(a.replaced))
	for k, v := range a.replaced {
		replaced[k] = v
	}
	a.mu.Unlock()
	sp := a.u.spec(s, replaced)
	sp.Started = release
	res := a.u.hostOf(s.c).Life.Replace(ctx, sp)
	release() // lifecycle calls Started exactly once; this covers a Replacer that does not
	if s.Op == OpUpdate {
		a.u.hostOf(s.c).inv.replaced(s.c.ID, res.NewID, s.c.deps)
	} else {
		a.u.hostOf(s.c).inv.touch(s.c.ID, res.NewID)
	}
	a.mu.Lock()
	record(line, s, res)
	if res.NewID != "" && res.NewID != s.c.ID {
		a.replaced[s.c.ID] = res.NewID
	}
	if res.Outcome == lifecycle.OutcomeUpdated && s.Op == OpUpdate {
		a.committed = append(a.committed, committed{step: s, res: res, line: line})
	}
	a.disturbed[s.Target.String()] = res.Stopped
	a.mu.Unlock()
	a.u.hostOf(s.c).log.Info("container "+string(s.Op), "container", s.c.Name, "id", short(s.c.ID), "outcome", res.Outcome,
		"new_id", short(res.NewID), "downtime", res.Downtime, "err", errString(res.Err))
	if s.PostUpdate != nil && res.Outcome == lifecycle.OutcomeUpdated && res.NewID != "" {
		a.postUpdate(ctx, s, line, res.NewID)
	}
}

// restart restarts a dependent. It disturbed the container unless it never got to ask the
// engine (interrupted while waiting for another transaction on it).
func (a *applier) restart(ctx context.Context, s *Step, line *ContainerReport, release func()) {
	err := a.u.hostOf(s.c).Life.Restart(ctx, s.c.ID, s.c.Settings.StopSignal, s.c.Settings.StopTimeout)
	release()
	a.u.hostOf(s.c).inv.touch(s.c.ID)
	a.mu.Lock()
	if err != nil {
		line.Outcome = OutcomeFailed
		line.Failure = &Failure{Stage: err.Stage, Reason: err.Reason, Message: err.Detail()}
	} else {
		line.Outcome, line.Message, line.Failure = OutcomeRestarted, s.Cause, nil
	}
	a.disturbed[s.Target.String()] = err == nil || err.Reason != failure.Interrupted
	a.mu.Unlock()
	a.u.hostOf(s.c).log.Info("container restarted", "container", s.c.Name, "id", short(s.c.ID), "cause", s.Cause, "err", errString(err))
}

// acquire takes one of the slots, or gives up when ctx ends (the watcher is stopping). The
// returned release may be called any number of times; only the first gives the slot back.
func acquire(ctx context.Context, slots chan struct{}) (release func(), ok bool) {
	if ctx.Err() != nil {
		return nil, false
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-slots }) }, true
}

// spec is the lifecycle transaction for an update, recreation or handover step.
func (u *Updater) spec(s *Step, replaced map[string]string) lifecycle.Spec {
	t := s.c
	sp := lifecycle.Spec{
		ContainerID:   t.ID,
		Image:         firstNonEmpty(s.NewImage, t.Image),
		Replaced:      replaced,
		StopSignal:    t.Settings.StopSignal,
		StopTimeout:   t.Settings.StopTimeout,
		Verify:        t.Settings.Verify,
		HealthTimeout: t.Settings.HealthTimeout,
		Rollback:      !u.opts.NoRollback,
		ImageID:       s.ImageID,
	}
	if s.Op == OpRecreate {
		sp.Recreate = true
		return sp
	}
	if t.image != nil && t.image.details != nil {
		sp.OldImage = t.image.details // the check's inspect: the transaction need not repeat it
	}
	sp.Events = u.hostOf(t).inv.eventSource()
	sp.StartFirst = s.Op == OpUpdate && s.Order == OrderStartFirst
	if ref, err := name.ParseReference(sp.Image); err == nil && s.NewDigest != "" {
		sp.PullRef = ref.Context().Name() + "@" + s.NewDigest
	}
	if auth, err := u.checker.PullAuth(sp.Image); err == nil {
		sp.RegistryAuth = auth
	} else {
		u.log.Warn("no registry credentials for the pull; trying anonymously", "image", sp.Image, "err", err)
	}
	return sp
}

// record turns a lifecycle result into the step's report line.
func record(line *ContainerReport, s *Step, res lifecycle.Result) {
	line.Downtime = res.Downtime
	if res.NewID != "" && res.NewID != line.ID {
		line.NewID = res.NewID
	}
	if s.NewImage != "" && s.NewImage != s.c.Image {
		line.NewImage = s.NewImage
	}
	line.Failure = nil
	if res.Err != nil {
		line.Failure = &Failure{Stage: res.Err.Stage, Reason: res.Err.Reason, Message: res.Err.Message}
	}
	switch res.Outcome {
	case lifecycle.OutcomeUpdated:
		if s.Op == OpRecreate {
			line.Outcome, line.Message = OutcomeRestarted, "recreated: "+s.Cause
		} else {
			line.Outcome = OutcomeUpdated
		}
	case lifecycle.OutcomeUnchanged:
		line.Outcome, line.Message = OutcomeUpToDate, "the tag moved but this platform's image is the same"
	case lifecycle.OutcomeRolledBack:
		line.Outcome, line.Message = OutcomeRolledBack, "the new container failed; the old one runs again"
	default:
		line.Outcome = OutcomeFailed
	}
}

// cleanup removes images superseded by updates on h when no container (running or not) still
// uses them and no container keeps them for a rollback (kept). It never forces: an image some
// container needs stays.
func (h *host) cleanup(ctx context.Context, superseded []string, kept map[string]bool) {
	list, err := h.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		h.log.Warn("cleanup skipped: could not list containers", "err", err)
		return
	}
	used := map[string]bool{}
	for _, c := range list.Items {
		used[c.ImageID] = true
	}
	for _, id := range union(superseded, nil) {
		if used[id] || kept[id] {
			continue
		}
		if _, err := h.Engine.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
			h.log.Warn("could not remove a superseded image", "image", id, "err", err)
		} else if err == nil {
			h.log.Info("removed superseded image", "image", id)
		}
	}
}

// noteLostHosts finds the hosts whose engine stopped answering while the plan was applied: a
// step that failed there failed because of it, and its transaction is left unfinished in the
// journal (lifecycle could not roll back on an engine that does not answer). Those lines are
// reported as the host's failure, with what the step saw, and the host is recovered as soon as
// it answers again. It returns why each lost host is lost, by name.
func (u *Updater) noteLostHosts(ctx context.Context, views []hostView, lines map[string]*ContainerReport) map[string]error {
	lost := map[string]error{}
	for _, v := range views {
		var failed []*ContainerReport
		for _, l := range lines {
			if l.Host == v.h.Name && l.Outcome == OutcomeFailed && l.Failure != nil && l.Failure.Stage != failure.StageCheck && l.Failure.Stage != failure.StagePlan {
				failed = append(failed, l)
			}
		}
		if len(failed) == 0 || ctx.Err() != nil {
			continue
		}
		err := v.h.ping(ctx, u.opts.HostTimeout)
		if err == nil || !u.Named() {
			continue // the one engine's failures read as they always did; it is recovered all the same
		}
		lost[v.h.Name] = err
		for _, l := range failed {
			l.Failure = &Failure{Stage: failure.StageHost, Reason: failure.EngineUnreachable,
				Message: fmt.Sprintf("the engine stopped answering during the update (%s/%s: %s); the unfinished update is finished when the engine answers again",
					l.Failure.Stage, l.Failure.Reason, l.Failure.Message)}
		}
	}
	return lost
}

func errString(e *lifecycle.Error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
