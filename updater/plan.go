package updater

import (
	"fmt"
	"sort"
	"strings"
)

// Op is what a plan step does to one container.
type Op string

const (
	OpUpdate   Op = "update"   // pull the new image and replace the container (lifecycle transaction)
	OpRecreate Op = "recreate" // same image, new container: it shares a namespace with a replaced one
	OpRestart  Op = "restart"  // it depends on a replaced container (link, depends-on, compose)
)

// Step is one operation on one container, after the steps it depends on.
type Step struct {
	Op        Op
	Target    *Target
	Cause     string   // why: "digest sha256:… -> sha256:…", "network of db replaced", ...
	DependsOn []string // names of earlier steps in the same group this one waits for
	NewDigest string   // OpUpdate: the digest to pull
	NewImage  string   // OpUpdate: the reference to run (a new tag under semver policies)
}

// Skip is a container the plan leaves alone, and why.
type Skip struct {
	Target *Target
	Why    string
}

// Plan is the data a cycle applies: groups that share nothing run concurrently; the steps of
// one group run in order, dependencies first. Applying it makes no decisions.
type Plan struct {
	Groups  [][]*Step
	Skipped []Skip
}

// Steps counts the steps in all groups.
func (p *Plan) Steps() int {
	n := 0
	for _, g := range p.Groups {
		n += len(g)
	}
	return n
}

// String prints the plan for `watcher check` and for tests.
func (p *Plan) String() string {
	var b strings.Builder
	for i, g := range p.Groups {
		fmt.Fprintf(&b, "group %d:\n", i+1)
		for _, s := range g {
			fmt.Fprintf(&b, "  %s %s", s.Op, s.Target.Name)
			if s.Cause != "" {
				fmt.Fprintf(&b, " (%s)", s.Cause)
			}
			if len(s.DependsOn) > 0 {
				fmt.Fprintf(&b, " after %s", strings.Join(s.DependsOn, ","))
			}
			b.WriteByte('\n')
		}
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(&b, "skip %s: %s\n", s.Target.Name, s.Why)
	}
	return b.String()
}

// Candidate is a watched container with a newer image, as the check found it.
type Candidate struct {
	Target    *Target
	NewDigest string
	NewImage  string // "" = same reference
	Cause     string
}

// graph is "X depends on Y" over container names.
type graph map[string][]string

// dependencies returns what t depends on, by container name: watcher.depends-on (or
// Watchtower's), legacy links, container:<X> network/ipc/pid modes, and compose's depends_on
// within the same compose project. Names that are not containers on this engine are dropped.
func dependencies(t *Target, obs *Observed) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		name = strings.TrimPrefix(name, "/")
		if name == "" || name == t.Name || seen[name] || obs.byName[name] == nil {
			return
		}
		seen[name] = true
		out = append(out, name)
	}
	byRef := func(ref string) {
		if c := obs.byID[ref]; c != nil {
			add(c.Name)
			return
		}
		for _, c := range obs.All { // a short ID
			if len(ref) >= 12 && strings.HasPrefix(c.ID, ref) {
				add(c.Name)
				return
			}
		}
		add(ref)
	}
	for _, d := range t.Settings.DependsOn {
		add(d)
	}
	for _, mode := range namespaceModes(t) {
		byRef(mode)
	}
	if t.inspect != nil {
		var links []string
		if t.inspect.HostConfig != nil {
			links = append(links, t.inspect.HostConfig.Links...) // default bridge: "/db:/app/alias"
		}
		if t.inspect.NetworkSettings != nil {
			for _, ep := range t.inspect.NetworkSettings.Networks {
				if ep != nil {
					links = append(links, ep.Links...) // user networks keep links per endpoint: "db:alias"
				}
			}
		}
		for _, l := range links {
			name, _, _ := strings.Cut(l, ":")
			add(name)
		}
	}
	if proj := t.Labels[composeProject]; proj != "" {
		for _, entry := range strings.Split(t.Labels[composeDependsOn], ",") {
			svc, _, _ := strings.Cut(strings.TrimSpace(entry), ":")
			if svc == "" {
				continue
			}
			for _, c := range obs.All {
				if c.Labels[composeProject] == proj && c.Labels[composeService] == svc {
					add(c.Name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// namespaceModes returns the containers whose namespaces t joins (network, ipc, pid); these
// dependents must be recreated, not just restarted, when that container is replaced.
func namespaceModes(t *Target) []string {
	var out []string
	modes := []string{t.NetworkMode}
	if t.inspect != nil && t.inspect.HostConfig != nil {
		modes = append(modes, string(t.inspect.HostConfig.IpcMode), string(t.inspect.HostConfig.PidMode))
	}
	for _, m := range modes {
		if ref, ok := strings.CutPrefix(m, "container:"); ok && ref != "" {
			out = append(out, ref)
		}
	}
	return out
}

func sharesNamespaceWith(t *Target, obs *Observed, names map[string]bool) string {
	for _, ref := range namespaceModes(t) {
		n := ref
		if c := obs.byID[ref]; c != nil {
			n = c.Name
		}
		if names[n] {
			return n
		}
	}
	return ""
}

// buildPlan orders the candidates' updates and the restarts or recreations of their dependents.
// Containers caught in a dependency cycle are skipped (and reported); the rest proceed.
func buildPlan(obs *Observed, cands []Candidate) *Plan {
	deps := graph{}
	rdeps := graph{}
	for _, t := range obs.All {
		for _, d := range dependencies(t, obs) {
			deps[t.Name] = append(deps[t.Name], d)
			rdeps[d] = append(rdeps[d], t.Name)
		}
	}
	updates := map[string]Candidate{}
	for _, c := range cands {
		updates[c.Target.Name] = c
	}
	plan := &Plan{}

	// Cycles among what the updates touch cannot be ordered: skip those containers.
	inCycle := map[string]string{}
	for _, comp := range cycles(deps, closure(sortedKeys(updates), rdeps)) {
		desc := strings.Join(append(comp, comp[0]), " -> ")
		for _, n := range comp {
			inCycle[n] = desc
		}
	}
	for _, n := range sortedKeys(inCycle) {
		if _, ok := updates[n]; ok {
			plan.Skipped = append(plan.Skipped, Skip{Target: obs.byName[n], Why: "dependency cycle: " + inCycle[n]})
			delete(updates, n)
		}
	}

	// Everything that must move: the updates and, transitively, what depends on them.
	affected := map[string]bool{}
	for _, n := range closure(sortedKeys(updates), rdeps) {
		if inCycle[n] != "" {
			continue
		}
		if _, upd := updates[n]; upd || obs.byName[n].State == "running" {
			affected[n] = true // a stopped dependent stays stopped: we start nothing the user stopped
		}
	}
	order := topoOrder(affected, deps)

	steps := map[string]*Step{}
	replaced := map[string]bool{} // gets a new container ID: updated or recreated
	for _, n := range order {
		t := obs.byName[n]
		s := &Step{Target: t}
		if c, ok := updates[n]; ok {
			s.Op, s.Cause, s.NewDigest, s.NewImage = OpUpdate, c.Cause, c.NewDigest, c.NewImage
			replaced[n] = true
		} else if parent := sharesNamespaceWith(t, obs, replaced); parent != "" {
			s.Op, s.Cause = OpRecreate, "joins the namespaces of "+parent+", which is replaced"
			replaced[n] = true
		} else {
			var on []string
			for _, d := range deps[n] {
				if affected[d] {
					on = append(on, d)
				}
			}
			s.Op, s.Cause = OpRestart, "depends on "+strings.Join(on, ",")
		}
		for _, d := range deps[n] {
			if affected[d] {
				s.DependsOn = append(s.DependsOn, d)
			}
		}
		steps[n] = s
	}

	// Groups: connected components of the affected subgraph, each in dependency order.
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
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
			gi = len(plan.Groups)
			groupOf[root] = gi
			plan.Groups = append(plan.Groups, nil)
		}
		plan.Groups[gi] = append(plan.Groups[gi], steps[n])
	}
	return plan
}

// closure returns start plus everything reachable from it along edges, sorted.
func closure(start []string, edges graph) []string {
	seen := map[string]bool{}
	stack := append([]string(nil), start...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, edges[n]...)
	}
	return sortedKeys(seen)
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

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedNames[V any](m map[string]V) []string { return sortedKeys(m) }
