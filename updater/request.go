package updater

import (
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// all reports whether r has no filter: every watched container.
func (r Request) all() bool {
	return len(r.Containers) == 0 && len(r.Images) == 0 && len(r.Pushed) == 0 && len(r.Schedules) == 0
}

// selects reports whether r looks at t; global is the schedule of containers without their own.
func (r Request) selects(t *Container, global string) bool {
	return r.all() || slices.Contains(r.Containers, t.Name) || matchesImage(t.Image, r.Images) ||
		matchesPushed(t, r.Pushed) || slices.Contains(r.Schedules, t.schedule(global))
}

// onHost reports whether t is on one of the hosts r names (on any when it names none).
func (r Request) onHost(t *Container) bool {
	return len(r.Hosts) == 0 || slices.Contains(r.Hosts, t.Host)
}

// forces reports whether the holds a person may lift are lifted for t (see Request.Force).
func (r Request) forces(t *Container, global string) bool {
	if r.Force {
		return r.onHost(t) && r.selects(t, global)
	}
	return slices.ContainsFunc(r.forced, func(f Request) bool { return f.onHost(t) && f.selects(t, global) })
}

// forcedParts are the filters of what r forces, to carry into a merge.
func forcedParts(r Request) []Request {
	out := slices.Clone(r.forced)
	if r.Force {
		out = append(out, Request{Hosts: r.Hosts, Containers: r.Containers, Images: r.Images, Pushed: r.Pushed, Schedules: r.Schedules})
	}
	return out
}

// schedule is the cron spec t is checked on: its watcher.schedule label, else global. A
// container whose labels cannot be read goes with the global schedule, whose runs report it.
func (c *Container) schedule(global string) string {
	if c.SettingsErr == nil && c.Settings.Schedule != "" {
		return c.Settings.Schedule
	}
	return global
}

// matchesPushed reports whether t runs one of the pushed references: the same repository, and
// the same tag unless the reference has none or t follows a tag policy (a pushed tag may be the
// one it moves to).
func matchesPushed(t *Container, pushed []string) bool {
	if len(pushed) == 0 {
		return false
	}
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		return false
	}
	for _, p := range pushed {
		pr, err := name.ParseReference(p)
		if err != nil || pr.Context().Name() != ref.Context().Name() {
			continue
		}
		if !hasTag(p) || t.Settings.Policy != PolicyDigest || pr.Identifier() == ref.Identifier() {
			return true
		}
	}
	return false
}

// hasTag reports whether reference s names a tag or digest (name.ParseReference defaults a bare
// repository to latest): its last path segment holds ":" or "@".
func hasTag(s string) bool {
	return strings.ContainsAny(s[strings.LastIndexByte(s, '/')+1:], ":@")
}
