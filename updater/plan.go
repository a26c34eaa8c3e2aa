package updater

import (
	"fmt"
	"strings"

	"github.com/watcher-dev/watcher/failure"
)

// A plan is a run's decisions as data: what is done to which target, in which order, and what is
// held and why. buildPlan (planner.go) is the only place that decides; apply (apply.go) executes
// a plan and decides nothing; `watcher check` prints one with String, as the golden tests do.

// Kind is what sort of thing a plan entry acts on.
type Kind string

const (
	KindContainer Kind = "container" // a container on one engine host
	KindService   Kind = "service"   // a Swarm service, updated through a manager
)

// Target names what a plan entry acts on, whatever its kind: a container on a host, or a service.
// Host is the engine's name when several are configured ("" = the one engine). It is a plain
// value: plans print, compare and marshal it without the observation behind it.
type Target struct {
	Kind Kind   `json:"kind"`
	Host string `json:"host,omitempty"`
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// String is the target as plans and logs name it: "web", "edge-1/web", "service edge-1/web".
func (t Target) String() string {
	s := t.Name
	if t.Host != "" {
		s = t.Host + "/" + s
	}
	if t.Kind != "" && t.Kind != KindContainer {
		s = string(t.Kind) + " " + s
	}
	return s
}

// Op is what a plan step does to its target.
type Op string

const (
	OpUpdate   Op = "update"   // pull the new image and replace the container (lifecycle transaction)
	OpRecreate Op = "recreate" // same image, new container: it shares a namespace with a replaced one
	OpRestart  Op = "restart"  // it depends on a replaced container (link, depends-on, compose)
	OpHandOver Op = "handover" // the watcher's own update: a successor takes over (self.go)
)

// Step is one operation on one target, after the steps it depends on.
type Step struct {
	Op     Op     `json:"op"`
	Target Target `json:"target"`
	Cause  string `json:"cause,omitempty"` // why: "digest sha256:… -> sha256:…", "depends on db", ...
	// DependsOn names earlier steps of the same group this one comes after.
	DependsOn []string `json:"after,omitempty"`
	// Follows names the steps this one exists for (a restart or recreate of a dependent): it runs
	// only if at least one of them stopped its container. When every one of them failed before
	// its stop, nothing disturbed this target and the step is skipped (see followsNothing).
	Follows   []string `json:"follows,omitempty"`
	NewDigest string   `json:"new_digest,omitempty"` // OpUpdate, OpHandOver: the digest to pull
	NewImage  string   `json:"new_image,omitempty"`  // OpUpdate, OpHandOver: the reference to run ("" = the same)
	// ImageID is a rollback's previous image: run as it is while the engine still has it (kept by
	// update.keep_images), else pulled by NewDigest.
	ImageID string `json:"image_id,omitempty"`
	// Order is OrderStartFirst for an OpUpdate of a container labelled so, else "" (stop-first).
	Order string `json:"order,omitempty"`
	// Rollback: a manual rollback of a Swarm service, which asks Swarm for its previous spec
	// (rollback=previous); NewImage is that spec's image.
	Rollback bool `json:"rollback,omitempty"`
	// PreUpdate and PostUpdate are the container's lifecycle hooks (OpUpdate; hooks.go): the update
	// happens only if PreUpdate succeeds, and PostUpdate runs in the new container after it.
	PreUpdate  *Hook `json:"pre_update,omitempty"`
	PostUpdate *Hook `json:"post_update,omitempty"`

	c *Container // what the check observed; apply builds the lifecycle spec from its settings
}

// Hold is a target the plan leaves alone, and why. A hold with an Outcome gives the target's
// report line that outcome (update_available in monitor mode, skipped in a dependency cycle, ...);
// one without only says why a container next to an update is not touched (it gets no line).
type Hold struct {
	Target  Target  `json:"target"`
	Outcome Outcome `json:"outcome,omitempty"`
	// Reason is set when the hold is one of the plan-stage reasons (DependentNotManaged, and later
	// OutsideWindow, HookSkipped, ...): the report line carries it as a plan-stage failure.
	Reason failure.Reason `json:"reason,omitempty"`
	Why    string         `json:"why"`
}

// Plan is what a run applies. Groups share nothing and run concurrently; the steps of one group
// run in order, dependencies first. Last runs after every group (the watcher's own update: it
// hands the process over, so nothing may follow it). Held is what is left alone.
type Plan struct {
	DryRun bool      `json:"dry_run,omitempty"` // nothing is applied: the report says what would be
	Groups [][]*Step `json:"groups,omitempty"`
	Last   []*Step   `json:"last,omitempty"`
	Held   []Hold    `json:"held,omitempty"`
}

// Steps counts the steps in all groups and Last.
func (p *Plan) Steps() int {
	n := len(p.Last)
	for _, g := range p.Groups {
		n += len(g)
	}
	return n
}

// applied returns the targets the plan's groups act on (not Last, whose handover records its own
// state), by target; none in a dry run.
func (p *Plan) applied() map[string]bool {
	out := map[string]bool{}
	if p.DryRun {
		return out
	}
	for _, g := range p.Groups {
		for _, s := range g {
			out[s.Target.String()] = true
		}
	}
	return out
}

// Empty reports whether the plan neither does nor holds anything.
func (p *Plan) Empty() bool { return p.Steps() == 0 && len(p.Held) == 0 }

// String prints the plan for `watcher check`, the logs and the tests:
//
//	group 1:
//	  update db (digest sha256:1111… -> sha256:2222…)
//	  restart app (depends on db) after db
//	last:
//	  handover watcher (digest …)
//	hold mon: monitor mode: digest …
//	wait api: a minor update waits for approval (tag 1.4.2 -> 1.5.0); approve: …
//	skip vpn: DependentNotManaged: client joins vpn's network namespace …
//	leave app2: stopped; a container its user stopped stays stopped
func (p *Plan) String() string {
	var b strings.Builder
	for i, g := range p.Groups {
		fmt.Fprintf(&b, "group %d:\n", i+1)
		writeSteps(&b, g)
	}
	if len(p.Last) > 0 {
		b.WriteString("last:\n")
		writeSteps(&b, p.Last)
	}
	for _, h := range p.Held {
		fmt.Fprintf(&b, "%s %s: ", holdVerb(h.Outcome), h.Target)
		if h.Reason != "" {
			fmt.Fprintf(&b, "%s: ", h.Reason)
		}
		b.WriteString(h.Why)
		b.WriteByte('\n')
	}
	return b.String()
}

func writeSteps(b *strings.Builder, steps []*Step) {
	for _, s := range steps {
		fmt.Fprintf(b, "  %s %s", s.Op, s.Target)
		if s.Cause != "" {
			fmt.Fprintf(b, " (%s)", s.Cause)
		}
		if len(s.DependsOn) > 0 {
			fmt.Fprintf(b, " after %s", strings.Join(s.DependsOn, ","))
		}
		if s.Order != "" {
			fmt.Fprintf(b, " %s", s.Order)
		}
		if s.PreUpdate != nil {
			b.WriteString(" if its pre-update hook succeeds")
		}
		if s.PostUpdate != nil {
			b.WriteString(", then its post-update hook")
		}
		b.WriteByte('\n')
	}
}

// holdVerb is how String names a hold: "hold" an update that is reported available, "skip" one
// reported skipped, "leave" a dependent that is not touched.
func holdVerb(o Outcome) string {
	switch o {
	case OutcomeUpdateAvailable:
		return "hold"
	case OutcomeSkipped:
		return "skip"
	case OutcomePendingApproval:
		return "wait"
	case "":
		return "leave"
	}
	return string(o)
}

// followsNothing is why a step whose Follows were all left running is skipped.
func followsNothing(s *Step) string {
	return strings.Join(s.Follows, ",") + " was not stopped; nothing to " + string(s.Op) + " for"
}
