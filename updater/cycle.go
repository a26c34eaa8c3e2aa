package updater

import (
	"context"
	"slices"
	"strings"

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
	targets := selectTargets(obs.Watched, req)
	preChecks := u.checkHooks(ctx, targets, HookPreCheck, rep.DryRun, runningID)
	lines, cands := u.check(ctx, targets)
	addHookRuns(lines, preChecks)
	plan := u.plan(ctx, obs, cands, planOptions{DryRun: rep.DryRun, CanHandOver: u.canHandOver(), Hooks: u.opts.Hooks != nil}, lines)
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
		if superseded := u.apply(ctx, plan, lines); u.opts.Cleanup && len(superseded) > 0 {
			u.cleanup(ctx, superseded)
		}
	}
	addHookRuns(lines, u.checkHooks(ctx, targets, HookPostCheck, plan.DryRun, func(t *Container) string {
		if line := lines[t.Name]; runningID(t) != "" && line.NewID != "" {
			return line.NewID // the new container, after an update (or a rollback that recreated it)
		}
		return runningID(t)
	}))
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

func selectTargets(ts []*Container, req Request) []*Container {
	if len(req.Containers) == 0 && len(req.Images) == 0 {
		return ts
	}
	var out []*Container
	for _, t := range ts {
		if slices.Contains(req.Containers, t.Name) || matchesImage(t.Image, req.Images) {
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
		if !strings.Contains(strings.TrimPrefix(f, fr.Context().RegistryStr()), ":") || fr.Identifier() == ref.Identifier() {
			return true
		}
	}
	return false
}
