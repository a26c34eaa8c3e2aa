package updater

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
)

func TestParseHooks(t *testing.T) {
	s, err := ParseSettings(map[string]string{
		wtLifecycle + "pre-check":           "echo a",
		wtLifecycle + "pre-update":          "  /drain.sh  ",
		wtLifecycle + "pre-update-timeout":  "5",
		wtLifecycle + "post-update":         "/warm.sh",
		wtLifecycle + "post-update-timeout": "0",
		wtLifecycle + "post-check":          "",
	}, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Hook{
		HookPreCheck:   {Command: "echo a", Timeout: time.Minute},
		HookPreUpdate:  {Command: "/drain.sh", Timeout: 5 * time.Minute},
		HookPostUpdate: {Command: "/warm.sh", Timeout: 0},
	}
	if len(s.Hooks) != len(want) {
		t.Errorf("hooks = %+v, want %+v", s.Hooks, want)
	}
	for k, h := range want {
		if s.Hooks[k] != h {
			t.Errorf("hook %s = %+v, want %+v", k, s.Hooks[k], h)
		}
	}
	if _, err := ParseSettings(map[string]string{wtLifecycle + "pre-update": "x", wtLifecycle + "pre-update-timeout": "1m"}, Defaults{}); err == nil ||
		!strings.Contains(err.Error(), "pre-update-timeout=\"1m\": want a whole number of minutes") {
		t.Errorf("a bad timeout label = %v, want an error naming it", err)
	}
	if s, _ := ParseSettings(nil, Defaults{}); s.Hooks != nil {
		t.Errorf("no labels: hooks %+v", s.Hooks)
	}
}

// TestPlanHooks: with hooks on, an update step carries its container's pre- and post-update
// hooks (and the plan says so); a dependent's restart, a stopped container, the watcher itself
// and a dry run get none.
func TestPlanHooks(t *testing.T) {
	hooked := func(c *Container) {
		c.Settings.Hooks = map[string]Hook{HookPreUpdate: {Command: "a"}, HookPostUpdate: {Command: "b"}}
	}
	obs := observed(tgt("db", hooked), tgt("app", hooked, dependsOn("db")), tgt("old", hooked, stopped), tgt("watcher", hooked, self))
	got := buildPlan(obs, cands(obs, "db", "old", "watcher"), planOptions{Hooks: true, CanHandOver: true}).String()
	want := "group 1:\n  update db (new digest) if its pre-update hook succeeds, then its post-update hook\n  restart app (depends on db) after db\n" +
		"group 2:\n  update old (new digest)\nlast:\n  handover watcher (new digest)\n"
	if got != want {
		t.Errorf("plan =\n%s\nwant\n%s", got, want)
	}
	if got := buildPlan(obs, cands(obs, "db"), planOptions{Hooks: true, DryRun: true}).String(); strings.Contains(got, "hook") {
		t.Errorf("dry-run plan has hooks:\n%s", got)
	}
	if got := buildPlan(obs, cands(obs, "db"), planOptions{}).String(); strings.Contains(got, "hook") {
		t.Errorf("plan with hooks off has hooks:\n%s", got)
	}
}

// TestWatchtowerInstance: a container with Watchtower's own label is another instance: held.
func TestWatchtowerInstance(t *testing.T) {
	obs := observed(tgt("watchtower", labels(WatchtowerLabel, "true")), tgt("app", labels(WatchtowerLabel, "false")))
	got := buildPlan(obs, cands(obs, "watchtower", "app"), planOptions{}).String()
	want := "group 1:\n  update app (new digest)\nskip watchtower: another watcher instance (new digest); it updates itself\n"
	if got != want {
		t.Errorf("plan =\n%s\nwant\n%s", got, want)
	}
}

func TestSelectionNamesAndScopeNone(t *testing.T) {
	sel := Selection{Names: []string{"nginx", "redis"}, Exclude: []string{"redis"}}
	for name, want := range map[string]bool{"nginx": true, "redis": false, "db": false} {
		if sel.Named(name) != want {
			t.Errorf("Named(%q) = %v, want %v", name, !want, want)
		}
	}
	if !(Selection{Exclude: []string{"x"}}).Named("y") {
		t.Error("no names: every name but the excluded is selected")
	}
	for labels, want := range map[[2]string]string{
		{wtScope, "none"}:    "",
		{wtScope, "blue"}:    "blue",
		{LabelScope, "none"}: "none", // watcher's own label means what it says
	} {
		s, _ := ParseSettings(map[string]string{labels[0]: labels[1]}, Defaults{})
		if s.Scope != want {
			t.Errorf("scope from %s=%s = %q, want %q", labels[0], labels[1], s.Scope, want)
		}
	}
}

// fakeHooks answers every hook with one result: fault injection for what a real engine cannot
// produce quickly (a timeout of a minute, an engine error). It replaces nothing.
type fakeHooks struct{ res lifecycle.HookResult }

func (f fakeHooks) RunHook(context.Context, string, string, time.Duration) lifecycle.HookResult {
	return f.res
}
func (fakeHooks) Replace(context.Context, lifecycle.Spec) lifecycle.Result { panic("not called") }
func (fakeHooks) Restart(context.Context, string, string, *time.Duration) *lifecycle.Error {
	panic("not called")
}
func (fakeHooks) Recover(context.Context) []lifecycle.Result { panic("not called") }

// TestPreUpdateOutcomes: how a pre-update hook's end decides the step, before anything is touched.
func TestPreUpdateOutcomes(t *testing.T) {
	tests := []struct {
		res     lifecycle.HookResult
		ok      bool
		outcome Outcome
		reason  failure.Reason
		msg     string
	}{
		{lifecycle.HookResult{ExitCode: 0}, true, "", "", ""},
		{lifecycle.HookResult{ExitCode: 75}, false, OutcomeSkipped, failure.HookSkipped, "exited 75"},
		{lifecycle.HookResult{ExitCode: 1}, false, OutcomeFailed, failure.HookFailed, "pre-update hook exited 1"},
		{lifecycle.HookResult{ExitCode: 137, TimedOut: true, Duration: time.Minute}, false, OutcomeFailed, failure.HookFailed, "timed out after 1m0s and was killed"},
		{lifecycle.HookResult{ExitCode: 75, TimedOut: true}, false, OutcomeFailed, failure.HookFailed, "timed out"},
		{lifecycle.HookResult{ExitCode: -1, Err: errors.New("no such container")}, false, OutcomeFailed, failure.HookFailed, "could not run: no such container"},
	}
	for _, tc := range tests {
		u := NewHosts([]Host{{Life: fakeHooks{tc.res}}}, nil, nil, Options{LifecycleHooks: true, Logger: slog.New(slog.DiscardHandler)})
		a := &applier{u: u, disturbed: map[string]bool{}}
		c := tgt("web")
		s := &Step{Op: OpUpdate, Target: c.Target(), PreUpdate: &Hook{Command: "x"}, c: c}
		line := &ContainerReport{Name: "web", Outcome: OutcomeFailed}
		if got := a.preUpdate(context.Background(), s, line); got != tc.ok {
			t.Errorf("%+v: preUpdate = %v, want %v", tc.res, got, tc.ok)
		}
		if len(line.Hooks) != 1 || line.Hooks[0].Hook != HookPreUpdate {
			t.Errorf("%+v: hooks on the line = %+v", tc.res, line.Hooks)
		}
		if tc.ok {
			continue
		}
		if line.Outcome != tc.outcome || line.Failure == nil || line.Failure.Stage != failure.StagePlan || line.Failure.Reason != tc.reason ||
			!strings.Contains(line.Failure.Message, tc.msg) || a.disturbed["web"] {
			t.Errorf("%+v: line %+v (failure %+v); want %s, plan/%s saying %q, nothing disturbed", tc.res, line, line.Failure, tc.outcome, tc.reason, tc.msg)
		}
	}
}
