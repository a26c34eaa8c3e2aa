package updater

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/failure"
)

// The planner: every decision about what a run does, holds or leaves alone, made from the
// observation and the check's candidates without any engine call, in this order:
//
//  1. each update on its own (holdOf): monitor mode and another watcher instance hold it; the
//     watcher's own container goes last, by handover, or is held where it cannot hand over;
//  2. dependency cycles among what the updates touch hold those updates;
//  3. opt-out is absolute: an update that would stop a container whose namespaces an opted-out
//     container joins is held (DependentNotManaged), since that container may not be recreated;
//     on Podman, an update of a container whose namespaces another joins is held (Unsupported):
//     Podman refuses to remove it;
//  4. what the remaining updates stop, transitively: running dependents the watcher manages
//     (watched, or watcher.follow=true) are restarted or, when they join a replaced container's
//     namespaces, recreated; every other dependent is left alone with a reason;
//  5. steps in dependency order, grouped into independent groups.

// Candidate is a watched container with a newer image, as the check found it.
type Candidate struct {
	Container *Container
	NewDigest string
	NewImage  string // "" = same reference
	Cause     string
	ImageID   string // a rollback's previous image, run without a pull while the engine has it
	// Kind is what sort of move it is, as update.approve names them: digest (same tag), patch,
	// minor or major (another version tag); "" for a rollback.
	Kind string
}

// planOptions are the run's circumstances a plan depends on.
type planOptions struct {
	DryRun      bool // nothing is applied; the plan says what would be
	CanHandOver bool // the watcher's own container can be updated by a handover (the daemon)
	// CanHandOverService: the watcher's own Swarm service can be updated last (the daemon, with a
	// service updater on the manager): Swarm replaces the task it runs in.
	CanHandOverService bool
	Podman             bool // the host is Podman's Docker-compatible API (see holdUnsupported)
	// Now is when the plan is applied: maintenance windows are read at it.
	Now time.Time
	// Forced lists the containers whose windows and rollback pins the request lifts (?force=true),
	// by Container.key ("web", or "edge-1/web").
	Forced map[string]bool
	// Pinned maps containers (by key) to the digest a manual rollback undid: not applied again
	// unforced.
	Pinned map[string]string
	// Rollback: the one candidate is a manual rollback, which a person asked for: mode, windows,
	// pins and approvals do not hold it.
	Rollback bool
	// Approvals are the recorded approvals by container (approve.go); nil when no state file
	// keeps them.
	Approvals map[string]*Approval
	Hooks     bool // lifecycle hooks run (update.lifecycle_hooks): updates carry theirs
}

// buildPlan turns the available updates into the plan a run applies. A Swarm service is a group
// of its own: it has no dependencies, and Swarm orders its tasks.
func buildPlan(obs *Observed, cands []Candidate, o planOptions) *Plan {
	plan := &Plan{DryRun: o.DryRun}
	updates := map[string]Candidate{}
	var services []*Step
	for _, c := range cands {
		switch h, op := holdOf(c, o); {
		case h != nil:
			plan.Held = append(plan.Held, *h)
		case op == OpHandOver:
			plan.Last = append(plan.Last, &Step{Op: OpHandOver, Target: c.Container.Target(), Cause: c.Cause,
				NewDigest: c.NewDigest, NewImage: c.NewImage, c: c.Container})
		case c.Container.isService():
			services = append(services, &Step{Op: OpUpdate, Target: c.Container.Target(), Cause: c.Cause, NewDigest: c.NewDigest,
				NewImage: c.NewImage, Rollback: o.Rollback, c: c.Container})
		default:
			updates[c.Container.Name] = c
		}
	}
	defer func() {
		slices.SortFunc(services, func(a, b *Step) int { return strings.Compare(a.Target.Name, b.Target.Name) })
		for _, s := range services {
			plan.Groups = append(plan.Groups, []*Step{s})
		}
	}()
	if len(updates) == 0 {
		return plan
	}
	p := newPlanner(obs, plan)
	p.holdCycles(updates)
	if o.Podman {
		p.holdUnsupported(updates)
	}
	p.holdBreakingOptOuts(updates)
	affected := p.affected(updates)
	order := topoOrder(affected, p.deps)
	p.group(order, p.steps(order, updates, affected))
	p.qualify()
	if o.Hooks && !o.DryRun && !o.Rollback { // a person's rollback is not an update the hooks guard
		attachHooks(plan)
	}
	return plan
}

// qualify names the steps' DependsOn and Follows as their targets (edge-1/db when hosts are
// configured), as report lines and apply know them; the planner itself works on one host's
// container names.
func (p *planner) qualify() {
	name := func(ns []string) []string {
		for i, n := range ns {
			if c := p.obs.byName[n]; c != nil {
				ns[i] = c.Target().String()
			}
		}
		return ns
	}
	for _, g := range p.plan.Groups {
		for _, s := range g {
			s.DependsOn, s.Follows = name(s.DependsOn), name(s.Follows)
		}
	}
}

// holdUnsupported holds, on Podman, every update of a container whose namespaces (network, ipc,
// pid) another container joins: Podman's Docker-compatible API refuses to remove a container
// another joins ("has dependent containers"), so the replaced container could not be removed
// once the update is done. Nothing is touched; the line names the call.
func (p *planner) holdUnsupported(updates map[string]Candidate) {
	for _, n := range sortedKeys(updates) {
		for _, d := range p.rdeps[n] {
			if ns := joinsNamespaceOf(p.obs.byName[d], p.obs, n); ns != "" {
				p.hold(n, failure.Unsupported, fmt.Sprintf("%s joins the %s namespace of %s, and Podman's Docker-compatible API refuses DELETE /containers/{id} "+
					"(ContainerRemove) of a container another joins: the replaced container could not be removed", d, ns, n))
				delete(updates, n)
				break
			}
		}
	}
}

// needsOrder reports whether some candidate becomes an update with dependents to order, which
// needs the dependency graph (and so container inspects); held ones and the handover do not.
func needsOrder(cands []Candidate, o planOptions) bool {
	return slices.ContainsFunc(cands, func(c Candidate) bool {
		h, op := holdOf(c, o)
		return h == nil && op == OpUpdate && !c.Container.isService()
	})
}

// holdOf decides about one available update on its own: held (with the outcome its report line
// gets and why), handed over last (the watcher itself), or an update to order with the rest.
// Another watcher instance is held because it updates itself: two instances replacing each other
// would stop each other mid-transaction.
//
// A person's request lifts what only stands between it and the update: a manual rollback is held
// by none of mode, windows, pins and approvals; ?force=true lifts windows and pins, never an
// approval (only POST /v1/approve gives that).
func holdOf(c Candidate, o planOptions) (*Hold, Op) {
	t := c.Container
	hold := func(outcome Outcome, why string) (*Hold, Op) {
		return &Hold{Target: t.Target(), Outcome: outcome, Why: why}, ""
	}
	lifted := o.Rollback || o.Forced[t.key()]
	switch {
	case t.Self && o.Rollback:
		return &Hold{Target: t.Target(), Outcome: OutcomeSkipped, Reason: failure.Unsupported,
			Why: "the watcher cannot roll its own " + string(t.kind()) + " back; run the previous image with docker instead"}, ""
	case t.Settings.Mode == ModeMonitor && !o.Rollback:
		return hold(OutcomeUpdateAvailable, "monitor mode: "+c.Cause)
	case t.Self && !t.isService() && !o.CanHandOver:
		return hold(OutcomeUpdateAvailable, "this is the watcher's own container; only the daemon (watcher run) updates itself")
	case t.Self && t.isService() && !o.CanHandOverService:
		return hold(OutcomeUpdateAvailable, "this is the watcher's own service; only the daemon (watcher run) updates it")
	case !t.Self && (t.Labels[WatcherImageLabel] == WatcherImageTitle || isWatchtower(t.Labels)):
		return hold(OutcomeSkipped, "another watcher instance ("+c.Cause+"); it updates itself")
	case !lifted && o.Pinned[t.key()] != "" && o.Pinned[t.key()] == c.NewDigest:
		return hold(OutcomeSkipped, "a manual rollback undid "+shortDigest(c.NewDigest)+"; it is not applied again (a newer digest is; or force it: POST /v1/update?container="+t.Name+hostParam(t)+"&force=true)")
	}
	if h := approvalHold(c, o.Approvals); h != nil && !o.Rollback {
		return h, ""
	}
	if h := windowHold(c, o.Now); h != nil && !lifted {
		return h, ""
	}
	if t.Self {
		return nil, OpHandOver
	}
	return nil, OpUpdate
}

// hostParam is the ?host= part of a request naming c: none without hosts.
func hostParam(c *Container) string {
	if c.Host == "" {
		return ""
	}
	return "&host=" + c.Host
}

// planner holds the dependency graph of one engine's containers while a plan is built.
type planner struct {
	obs     *Observed
	plan    *Plan
	deps    graph             // X depends on Y
	rdeps   graph             // Y is depended on by X
	inCycle map[string]string // container -> the dependency cycle it is in
	held    map[string]bool   // containers with a hold of their own
}

func newPlanner(obs *Observed, plan *Plan) *planner {
	p := &planner{obs: obs, plan: plan, deps: graph{}, rdeps: graph{}, inCycle: map[string]string{}, held: map[string]bool{}}
	for _, c := range obs.All {
		for _, d := range dependencies(c, obs) {
			p.deps[c.Name] = append(p.deps[c.Name], d)
			p.rdeps[d] = append(p.rdeps[d], c.Name)
		}
	}
	for _, h := range plan.Held {
		p.held[h.Target.Name] = true
	}
	return p
}

func (p *planner) hold(name string, reason failure.Reason, why string) {
	p.plan.Held = append(p.plan.Held, Hold{Target: p.obs.byName[name].Target(), Outcome: OutcomeSkipped, Reason: reason, Why: why})
	p.held[name] = true
}

// holdCycles holds the updates caught in a dependency cycle among what the updates touch: they
// cannot be ordered. The rest proceed.
func (p *planner) holdCycles(updates map[string]Candidate) {
	for _, comp := range cycles(p.deps, closure(sortedKeys(updates), p.rdeps)) {
		desc := strings.Join(append(comp, comp[0]), " -> ")
		for _, n := range comp {
			p.inCycle[n] = desc
		}
	}
	for _, n := range sortedKeys(p.inCycle) {
		if _, ok := updates[n]; ok {
			p.hold(n, "", "dependency cycle: "+p.inCycle[n])
			delete(updates, n)
		}
	}
}

// holdBreakingOptOuts holds every update that would stop a container whose namespaces a running
// opted-out container joins (network_mode, ipc or pid container:X): that container may not be
// recreated, and would be cut off. Holding one update can change what another stops, so it
// repeats until nothing more is held.
func (p *planner) holdBreakingOptOuts(updates map[string]Candidate) {
	for changed := true; changed; {
		changed = false
		for _, root := range sortedKeys(updates) {
			if why := p.breaks(root, updates); why != "" {
				p.hold(root, failure.DependentNotManaged, why)
				delete(updates, root)
				changed = true
			}
		}
	}
}

// breaks says which opted-out container updating root would cut off, and the label that would
// let it follow; "" when none.
func (p *planner) breaks(root string, updates map[string]Candidate) string {
	for _, n := range sortedKeys(p.reach([]string{root}, updates)) {
		for _, d := range p.rdeps[n] {
			c := p.obs.byName[d]
			if c.State != "running" || c.managed() {
				continue
			}
			if ns := joinsNamespaceOf(c, p.obs, n); ns != "" {
				what := root
				if n != root {
					what = root + " (which stops " + n + ")"
				}
				if c.Self {
					return fmt.Sprintf("the watcher's own container %s joins the %s namespace of %s: updating %s would cut it off", d, ns, n, what)
				}
				return fmt.Sprintf("%s joins the %s namespace of %s and is not managed by this watcher: updating %s would cut it off; label %s %s=true to let it be recreated with %s",
					d, ns, n, what, d, LabelFollow, n)
			}
		}
	}
	return ""
}

// reach returns what updating roots stops: the roots and, transitively, every dependent that
// follows them (moves).
func (p *planner) reach(roots []string, updates map[string]Candidate) map[string]bool {
	return reachable(roots, func(n string) []string {
		var next []string
		for _, d := range p.rdeps[n] {
			if p.moves(d, updates) {
				next = append(next, d)
			}
		}
		return next
	})
}

// moves reports whether n is stopped when something it depends on is: an update, or a running
// dependent the watcher manages, outside any dependency cycle. A dependent its user stopped stays
// stopped: the watcher starts nothing the user stopped.
func (p *planner) moves(n string, updates map[string]Candidate) bool {
	if p.inCycle[n] != "" {
		return false
	}
	if _, ok := updates[n]; ok {
		return true
	}
	c := p.obs.byName[n]
	return c.State == "running" && c.managed()
}

// affected returns what the updates stop, and holds (without a report line) each dependent next
// to it that stays as it is, saying why.
func (p *planner) affected(updates map[string]Candidate) map[string]bool {
	affected := p.reach(sortedKeys(updates), updates)
	left := map[string]string{}
	for _, n := range sortedKeys(affected) {
		for _, d := range p.rdeps[n] {
			if _, ok := left[d]; !ok && !affected[d] && !p.held[d] {
				left[d] = p.whyLeft(d, n)
			}
		}
	}
	for _, d := range sortedKeys(left) {
		p.plan.Held = append(p.plan.Held, Hold{Target: p.obs.byName[d].Target(), Why: left[d]})
	}
	return affected
}

// whyLeft says why dependent d of parent is not restarted with it.
func (p *planner) whyLeft(d, parent string) string {
	c := p.obs.byName[d]
	switch {
	case p.inCycle[d] != "":
		return "dependency cycle: " + p.inCycle[d]
	case c.Self:
		return "the watcher's own container is never restarted as a dependent"
	case c.State != "running":
		return "stopped; a container its user stopped stays stopped"
	}
	return "not managed by this watcher; label it " + LabelFollow + "=true to restart it after " + parent
}

// steps makes the step of each affected container: its update, or the recreation or restart
// that follows what it depends on.
func (p *planner) steps(order []string, updates map[string]Candidate, affected map[string]bool) map[string]*Step {
	steps := map[string]*Step{}
	replaced := map[string]bool{} // gets a new container ID: updated or recreated
	for _, n := range order {
		c := p.obs.byName[n]
		var after []string
		for _, d := range p.deps[n] {
			if affected[d] {
				after = append(after, d)
			}
		}
		s := &Step{Target: c.Target(), DependsOn: after, c: c}
		if u, ok := updates[n]; ok {
			s.Op, s.Cause, s.NewDigest, s.NewImage, s.ImageID = OpUpdate, u.Cause, u.NewDigest, u.NewImage, u.ImageID
			if c.Settings.UpdateOrder == OrderStartFirst {
				s.Order = OrderStartFirst
			}
			replaced[n] = true
		} else if parent := sharesNamespaceWith(c, p.obs, replaced); parent != "" {
			s.Op, s.Cause, s.Follows = OpRecreate, "joins the namespaces of "+parent+", which is replaced", after
			replaced[n] = true
		} else {
			s.Op, s.Cause, s.Follows = OpRestart, "depends on "+strings.Join(after, ","), after
		}
		steps[n] = s
	}
	return steps
}

// group puts the steps into groups: the connected components of the affected subgraph, each in
// dependency order, numbered in the order of their first step.
func (p *planner) group(order []string, steps map[string]*Step) {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if q, ok := parent[x]; ok && q != x {
			r := find(q)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	for _, n := range order {
		find(n)
		for _, d := range steps[n].DependsOn {
			parent[find(n)] = find(d)
		}
	}
	groupOf := map[string]int{}
	for _, n := range order {
		root := find(n)
		gi, ok := groupOf[root]
		if !ok {
			gi = len(p.plan.Groups)
			groupOf[root] = gi
			p.plan.Groups = append(p.plan.Groups, nil)
		}
		p.plan.Groups[gi] = append(p.plan.Groups[gi], steps[n])
	}
}

// graph is "X depends on Y" over container names.
type graph map[string][]string

// dependencies returns what c depends on, by container name: watcher.depends-on (or
// Watchtower's), legacy links, container:<X> network/ipc/pid modes, and compose's depends_on
// within the same compose project. Names that are not containers on this engine are dropped.
func dependencies(c *Container, obs *Observed) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		name = strings.TrimPrefix(name, "/")
		if name == "" || name == c.Name || seen[name] || obs.byName[name] == nil {
			return
		}
		seen[name] = true
		out = append(out, name)
	}
	for _, d := range c.Settings.DependsOn {
		add(d)
	}
	for _, ns := range namespaceModes(c) {
		add(obs.nameOf(ns.ref))
	}
	for _, l := range links(c) {
		name, _, _ := strings.Cut(l, ":")
		add(name)
	}
	if proj := c.Labels[composeProject]; proj != "" {
		for _, entry := range strings.Split(c.Labels[composeDependsOn], ",") {
			svc, _, _ := strings.Cut(strings.TrimSpace(entry), ":")
			if svc == "" {
				continue
			}
			for _, o := range obs.All {
				if o.Labels[composeProject] == proj && o.Labels[composeService] == svc {
					add(o.Name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// links returns c's legacy links: "/db:/app/alias" on the default bridge, "db:alias" on user
// networks (where the engine keeps them per endpoint). Only inspect shows them (c.deps).
func links(c *Container) []string {
	if c.deps == nil {
		return nil
	}
	return c.deps.Links
}

// nsMode is one namespace a container joins from another: kind network, ipc or pid, and the
// other container as the mode names it (an ID, a short ID or a name).
type nsMode struct{ kind, ref string }

// namespaceModes returns the namespaces c joins from other containers; these dependents must
// be recreated, not just restarted, when that container is replaced.
func namespaceModes(c *Container) []nsMode {
	modes := []nsMode{{"network", c.NetworkMode}}
	if f := c.deps; f != nil {
		if c.NetworkMode == "" {
			// Podman's container list leaves the network mode out; its inspect has it.
			modes[0].ref = f.NetworkMode
		}
		modes = append(modes, nsMode{"ipc", f.IpcMode}, nsMode{"pid", f.PidMode})
	}
	var out []nsMode
	for _, m := range modes {
		if ref, ok := strings.CutPrefix(m.ref, "container:"); ok && ref != "" {
			out = append(out, nsMode{m.kind, ref})
		}
	}
	return out
}

// sharesNamespaceWith returns the first of names whose namespaces c joins, or "".
func sharesNamespaceWith(c *Container, obs *Observed, names map[string]bool) string {
	for _, ns := range namespaceModes(c) {
		if n := obs.nameOf(ns.ref); names[n] {
			return n
		}
	}
	return ""
}

// joinsNamespaceOf returns which namespace (network, ipc, pid) c joins from parent, or "".
func joinsNamespaceOf(c *Container, obs *Observed, parent string) string {
	for _, ns := range namespaceModes(c) {
		if obs.nameOf(ns.ref) == parent {
			return ns.kind
		}
	}
	return ""
}

// closure returns start plus everything reachable from it along edges, sorted.
func closure(start []string, edges graph) []string {
	return sortedKeys(reachable(start, func(n string) []string { return edges[n] }))
}

// reachable returns start plus every node next leads to from it, transitively.
func reachable(start []string, next func(string) []string) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(start)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, next(n)...)
	}
	return seen
}

// cycles returns the dependency cycles (strongly connected components with more than one node,
// or a node depending on itself) that involve any of the given nodes, each as a sorted name list.
func cycles(deps graph, among []string) [][]string {
	want := map[string]bool{}
	for _, n := range among {
		want[n] = true
	}
	// Tarjan's algorithm over the whole graph; components are filtered afterwards.
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	next := 0
	var visit func(string)
	visit = func(v string) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range deps[v] {
			if _, ok := index[w]; !ok {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 {
				sort.Strings(comp)
				for _, n := range comp {
					if want[n] {
						out = append(out, comp)
						break
					}
				}
			}
		}
	}
	for _, n := range sortedKeys(deps) {
		if _, ok := index[n]; !ok {
			visit(n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// topoOrder orders the nodes so that each comes after what it depends on (ties by name).
func topoOrder(nodes map[string]bool, deps graph) []string {
	indeg := map[string]int{}
	for n := range nodes {
		indeg[n] = 0
	}
	rdeps := graph{}
	for n := range nodes {
		for _, d := range deps[n] {
			if nodes[d] {
				indeg[n]++
				rdeps[d] = append(rdeps[d], n)
			}
		}
	}
	var ready, out []string
	for n, d := range indeg {
		if d == 0 {
			ready = append(ready, n)
		}
	}
	sort.Strings(ready)
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		var freed []string
		for _, m := range rdeps[n] {
			indeg[m]--
			if indeg[m] == 0 {
				freed = append(freed, m)
			}
		}
		ready = append(ready, freed...)
		sort.Strings(ready)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
