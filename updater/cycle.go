package updater

import (
	"context"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/watcher-dev/watcher/failure"
)

// cycle is one run's work: observe, check, plan, apply (or, in a dry run, report what would be
// applied), clean up. It fills rep, and returns the steps to run after the report is complete:
// the watcher's own update, handed over last (see Execute).
func (u *Updater) cycle(ctx context.Context, req Request, rep *Report) (last []*Step) {
	obs, err := u.observe(ctx)
	if err != nil {
		rep.Error = "docker engine: " + err.Error()
		u.log.Error("run could not observe the engine", "run", rep.ID, "err", err)
		return nil
	}
	watched := len(obs.Watched)
	rep.Watched = &watched
	targets := selectTargets(obs.Watched, req, u.opts.Schedule)
	var lines map[string]*ContainerReport
	var cands []Candidate
	if req.rollback != "" {
		lines, cands = u.checkRollback(targets)
	} else {
		lines, cands = u.check(ctx, targets)
	}
	plan := u.plan(ctx, obs, cands, u.planOptions(req, rep, targets), lines)
	if !plan.Empty() {
		rep.Plan = plan
	}
	notePlan(plan, lines)
	for _, t := range targets {
		u.setStatus(t, statusOf(t, lines[t.Name]))
	}

	switch {
	case plan.DryRun:
		reportDryRun(plan, lines)
	case plan.Steps() > len(plan.Last):
		u.log.Info("applying plan", "steps", plan.Steps(), "groups", len(plan.Groups), "plan", plan.String())
		if done := u.apply(ctx, plan, lines); len(done) > 0 {
			u.afterUpdates(ctx, done, req.rollback != "")
		}
	}
	for _, t := range targets {
		rep.Containers = append(rep.Containers, *lines[t.Name])
	}
	// Dependents restarted or recreated that are not themselves watched get a line too.
	for _, key := range sortedKeys(lines) {
		if !slices.ContainsFunc(targets, func(t *Container) bool { return t.Name == key }) {
			rep.Containers = append(rep.Containers, *lines[key])
		}
	}
	u.saveStatus(targets, len(req.Containers) == 0 && len(req.Images) == 0)
	if plan.DryRun {
		return nil
	}
	return plan.Last
}

// plan builds the run's plan. Ordering needs links and ipc/pid modes, which only inspect shows:
// the running containers are inspected when some update has dependents to order, so a cycle with
// nothing to apply never pays for it. When they cannot be inspected, those updates are not
// planned and their lines say why; holds and the handover need no graph and stand.
func (u *Updater) plan(ctx context.Context, obs *Observed, cands []Candidate, o planOptions, lines map[string]*ContainerReport) *Plan {
	if !needsOrder(cands, o) {
		return buildPlan(obs, cands, o)
	}
	var running []*Container
	for _, c := range obs.All {
		if c.State == "running" || c.Watched {
			running = append(running, c)
		}
	}
	if err := u.inspectTargets(ctx, running); err != nil {
		cands = slices.DeleteFunc(slices.Clone(cands), func(c Candidate) bool {
			if h, op := holdOf(c, o); h != nil || op != OpUpdate {
				return false
			}
			lines[c.Container.Name].Failure = &Failure{Stage: failure.StageCheck, Reason: failure.ImageInspectError, Message: err.Error()}
			return true
		})
	}
	return buildPlan(obs, cands, o)
}

// selectTargets returns the watched containers req looks at; global is the daemon's schedule.
func selectTargets(ts []*Container, req Request, global string) []*Container {
	if req.all() {
		return ts
	}
	var out []*Container
	for _, t := range ts {
		if req.selects(t, global) {
			out = append(out, t)
		}
	}
	return out
}

// matchesImage compares references after normalising them (nginx == docker.io/library/nginx:latest).
// A filter without a tag matches every tag of that repository.
func matchesImage(image string, filters []string) bool {
	ref, err := name.ParseReference(image)
	if err != nil {
		return slices.Contains(filters, image)
	}
	for _, f := range filters {
		fr, err := name.ParseReference(f)
		if err != nil {
			continue
		}
		if fr.Context().Name() != ref.Context().Name() {
			continue
		}
		if !hasTag(f) || fr.Identifier() == ref.Identifier() {
			return true
		}
	}
	return false
}

// planOptions are the circumstances of this run's plan: the clock, what the request forces, and
// the digests manual rollbacks undid.
func (u *Updater) planOptions(req Request, rep *Report, targets []*Container) planOptions {
	o := planOptions{DryRun: rep.DryRun, CanHandOver: u.canHandOver(), Now: u.opts.Now(), Forced: map[string]bool{}, Rollback: req.rollback != ""}
	for _, t := range targets {
		if req.forces(t, u.opts.Schedule) {
			o.Forced[t.Name] = true
		}
	}
	o.Pinned = u.pinned()
	return o
}
