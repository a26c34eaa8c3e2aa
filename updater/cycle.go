package updater

import (
	"context"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/watcher-dev/watcher/failure"
)

// cycle is one run's work: observe every host the request names (at once, each within
// Options.HostTimeout), check the watched containers of all of them together (one registry
// request per distinct image), plan each host, apply (or, in a dry run, report what would be
// applied), clean up. An unreachable host's containers are reported with stage host. It fills
// rep, and returns the steps to run after the report is complete: the watcher's own update,
// handed over last (see Execute).
func (u *Updater) cycle(ctx context.Context, req Request, rep *Report) (last []*Step) {
	hs, err := u.pickHosts(req.Hosts)
	if err != nil {
		rep.Error = err.Error()
		return nil
	}
	seen, down, all := u.observeHosts(ctx, hs, rep)
	defer func() {
		for _, v := range down {
			rep.Containers = append(rep.Containers, u.unreachableLines(v, req)...)
		}
	}()
	if len(seen) == 0 {
		rep.Error = engineError(u.Named(), down)
		u.log.Error("run could not observe any engine", "run", rep.ID, "err", rep.Error)
		return nil
	}
	watched, services := countKinds(all)
	rep.Watched, rep.WatchedServices = &watched, services
	targets := selectTargets(all, req, u.opts.Schedule)
	var lines map[string]*ContainerReport
	var cands []Candidate
	if req.rollback != "" {
		targets = slices.DeleteFunc(targets, func(t *Container) bool { return t.kind() != req.rollbackKind })
		lines, cands = u.checkRollback(targets)
	} else {
		preChecks := u.checkHooks(ctx, targets, HookPreCheck, rep.DryRun, runningID)
		lines, cands = u.check(ctx, targets)
		addHookRuns(lines, preChecks)
	}
	po := u.planOptions(req, rep, targets)
	plan := u.planHosts(ctx, seen, cands, po, lines)
	if !plan.Empty() {
		rep.Plan = plan
	}
	notePlan(plan, lines)
	u.notePending(cands, po)
	if plan.DryRun {
		reportDryRun(plan, lines)
	}
	stepped := plan.applied()
	u.showStatus(targets, lines, stepped, false)
	if !plan.DryRun && plan.Steps() > len(plan.Last) {
		u.log.Info("applying plan", "steps", plan.Steps(), "groups", len(plan.Groups), "plan", plan.String())
		done := u.apply(ctx, plan, lines)
		for name, err := range u.noteLostHosts(ctx, seen, lines) {
			i := slices.IndexFunc(rep.Hosts, func(h HostReport) bool { return h.Name == name })
			rep.Hosts[i].Reachable, rep.Hosts[i].Error = false, "stopped answering during the run: "+err.Error()
		}
		if len(done) > 0 {
			u.afterUpdates(ctx, done, req.rollback != "")
		}
		u.showStatus(targets, lines, stepped, true)
	}
	if req.rollback == "" {
		addHookRuns(lines, u.checkHooks(ctx, targets, HookPostCheck, plan.DryRun, func(t *Container) string {
			if line := lines[t.key()]; runningID(t) != "" && line.NewID != "" {
				return line.NewID // the new container, after an update (or a rollback that recreated it)
			}
			return runningID(t)
		}))
	}
	rep.Containers = slices.Grow(rep.Containers, len(lines))
	isTarget := make(map[string]bool, len(targets))
	for _, t := range targets {
		rep.Containers = append(rep.Containers, *lines[t.key()])
		isTarget[t.key()] = true
	}
	// Dependents restarted or recreated that are not themselves watched get a line too.
	for _, key := range sortedKeys(lines) {
		if !isTarget[key] {
			rep.Containers = append(rep.Containers, *lines[key])
		}
	}
	u.settleApprovals(targets, lines)
	u.saveStatus(targets, req.all() && len(req.Hosts) == 0, down)
	if plan.DryRun {
		return nil
	}
	return plan.Last
}

// showStatus records the targets' states for GET /v1/containers and the live feed. Before apply
// (applied false) a target the plan has a step for is updating, the rest are what their line
// says; after it, a target whose step did not run (the watcher stopping, nothing to follow) gets
// its line's state too (apply recorded the others as it went).
func (u *Updater) showStatus(targets []*Container, lines map[string]*ContainerReport, stepped map[string]bool, applied bool) {
	sf := u.readStateFile()
	for _, t := range targets {
		key := t.key()
		switch {
		case !stepped[key] && !applied:
			u.setStatusWith(t, statusOf(t, lines[key]), sf)
		case stepped[key] && !applied:
			u.setStatusWith(t, t.status(StateUpdating), sf)
		case stepped[key] && u.knownState(t) == StateUpdating:
			u.setStatusWith(t, statusOf(t, lines[key]), sf)
		}
	}
}

// knownState is the state last recorded for c.
func (u *Updater) knownState(c *Container) State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status[c.key()].State
}

// observeHosts observes hs (listHosts) and sorts them into those seen and those down, with the
// watched containers of those seen; with hosts configured, rep lists each.
func (u *Updater) observeHosts(ctx context.Context, hs []*host, rep *Report) (seen, down []hostView, watched []*Container) {
	for _, v := range u.listHosts(ctx, hs, true) {
		if u.Named() {
			rep.Hosts = append(rep.Hosts, hostReport(v))
		}
		if v.err != nil {
			down = append(down, v)
			continue
		}
		seen = append(seen, v)
		watched = append(watched, v.obs.Watched...)
	}
	return seen, down, watched
}

// hostReport is v's part in a run report.
func hostReport(v hostView) HostReport {
	hr := HostReport{Name: v.h.Name, Reachable: v.err == nil}
	if v.err != nil {
		hr.Error = v.err.Error()
	} else {
		hr.Watched, hr.WatchedServices = countKinds(v.obs.Watched)
	}
	return hr
}

// countKinds counts the containers and the services among ts.
func countKinds(ts []*Container) (containers, services int) {
	for _, t := range ts {
		if t.isService() {
			services++
		} else {
			containers++
		}
	}
	return containers, services
}

// engineError is a run's error when no engine could be observed.
func engineError(named bool, down []hostView) string {
	if !named {
		return "docker engine: " + down[0].err.Error()
	}
	parts := make([]string, len(down))
	for i, v := range down {
		parts[i] = v.h.Name + ": " + v.err.Error()
	}
	return "no engine reachable: " + strings.Join(parts, "; ")
}

// planHosts plans each host on its own (dependencies never cross engines) and joins the plans:
// the groups of every host run at once, each host's steps within its own update.parallel.
func (u *Updater) planHosts(ctx context.Context, views []hostView, cands []Candidate, base planOptions, lines map[string]*ContainerReport) *Plan {
	plan := &Plan{DryRun: base.DryRun}
	for _, v := range views {
		var mine []Candidate
		for _, c := range cands {
			if c.Container.host == v.h {
				mine = append(mine, c)
			}
		}
		if len(mine) == 0 {
			continue
		}
		o := base
		o.CanHandOver, o.Podman = u.canHandOver(v.h), v.h.podman()
		o.CanHandOverService = u.selfID != "" && u.opts.Release != nil && v.h.Services != nil
		p := u.plan(ctx, v.h, v.obs, mine, o, lines)
		plan.Groups = append(plan.Groups, p.Groups...)
		plan.Last = append(plan.Last, p.Last...)
		plan.Held = append(plan.Held, p.Held...)
	}
	return plan
}

// plan builds one host's plan. Ordering needs links and ipc/pid modes, which only inspect shows:
// the running containers are inspected when some update has dependents to order, so a cycle with
// nothing to apply never pays for it — and the daemon's inventory keeps what they showed
// (depFacts), so a container is inspected for it once, not every run. When they cannot be
// inspected, those updates are not planned and their lines say why; holds and the handover need
// no graph and stand.
func (u *Updater) plan(ctx context.Context, h *host, obs *Observed, cands []Candidate, o planOptions, lines map[string]*ContainerReport) *Plan {
	if !needsOrder(cands, o) {
		return buildPlan(obs, cands, o)
	}
	var unknown []*Container
	for _, c := range obs.All {
		if (c.State == "running" || c.Watched) && c.deps == nil {
			unknown = append(unknown, c)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, u.opts.HostTimeout)
	defer cancel()
	err := h.inspectTargets(hctx, unknown)
	h.inv.learnDeps(unknown)
	if err != nil {
		cands = slices.DeleteFunc(slices.Clone(cands), func(c Candidate) bool {
			if h, op := holdOf(c, o); h != nil || op != OpUpdate || c.Container.isService() {
				return false
			}
			lines[c.Container.key()].Failure = &Failure{Stage: failure.StageCheck, Reason: failure.ImageInspectError, Message: err.Error()}
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
// Whether the watcher's own container can be handed over, and whether an engine is Podman, are
// each host's (planHosts).
func (u *Updater) planOptions(req Request, rep *Report, targets []*Container) planOptions {
	o := planOptions{DryRun: rep.DryRun, Now: u.opts.Now(), Forced: map[string]bool{}, Rollback: req.rollback != "",
		Hooks: u.opts.LifecycleHooks}
	for _, t := range targets {
		if req.forces(t, u.opts.Schedule) {
			o.Forced[t.key()] = true
		}
	}
	o.Pinned = u.pinned()
	switch {
	case u.approvalStore() != nil:
		o.Approvals = u.approvals()
	case o.DryRun:
		o.Approvals = map[string]*Approval{} // watcher check reads no state file: what waits, waits
	}
	return o
}
