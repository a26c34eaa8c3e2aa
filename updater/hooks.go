package updater

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
)

// Lifecycle hooks: Watchtower's com.centurylinklabs.watchtower.lifecycle.* labels, run with
// update.lifecycle_hooks as `sh -c CMD` inside the container (lifecycle.RunHook):
//
//   - pre-check and post-check run in every selected, running container before the run checks
//     it and after the run is over (in the new container when it was updated); their failure is
//     reported and changes nothing else;
//   - pre-update is part of an update step (the plan shows it): it runs in the old container
//     before anything is touched; exit 75 skips this update (skipped, HookSkipped), any other
//     failure or a timeout fails it (failed, HookFailed), and the container is left as it was;
//   - post-update runs in the new container once it is verified and committed; its failure is
//     reported, not rolled back.
//
// Hooks run only in the run's selected containers: never in a dependent that is restarted, an
// opted-out container, the watcher's own container, or during a dry run.

// Hook names, as in the labels.
const (
	HookPreCheck   = "pre-check"
	HookPostCheck  = "post-check"
	HookPreUpdate  = "pre-update"
	HookPostUpdate = "post-update"

	wtLifecycle = wtPrefix + "lifecycle."

	// hookSkipExit is EX_TEMPFAIL: a pre-update hook exiting with it asks to skip this update.
	hookSkipExit = 75
	// defaultHookTimeout is Watchtower's: one minute unless a -timeout label says otherwise.
	defaultHookTimeout = time.Minute
)

var hookNames = []string{HookPreCheck, HookPostCheck, HookPreUpdate, HookPostUpdate}

// Hook is one lifecycle hook a container's labels set.
type Hook struct {
	Command string        `json:"command"`
	Timeout time.Duration `json:"timeout_ns"` // 0 = none
}

// HookRunner runs a hook command in a container (lifecycle.Manager).
type HookRunner interface {
	RunHook(ctx context.Context, containerID, command string, timeout time.Duration) lifecycle.HookResult
}

var _ HookRunner = (*lifecycle.Manager)(nil)

// HookRun is one hook's run on a report line.
type HookRun struct {
	Hook      string        `json:"hook"`
	ExitCode  int           `json:"exit_code"` // -1 when it could not run or be seen to end
	Output    string        `json:"output,omitempty"`
	Truncated bool          `json:"truncated,omitempty"` // Output is the end of it
	TimedOut  bool          `json:"timed_out,omitempty"` // killed at its timeout
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
}

// OK reports whether the hook ran and exited 0.
func (h HookRun) OK() bool { return h.Error == "" && !h.TimedOut && h.ExitCode == 0 }

// describe says in a few words how the hook ended, for messages.
func (h HookRun) describe() string {
	switch {
	case h.TimedOut:
		return fmt.Sprintf("%s hook timed out after %v and was killed", h.Hook, h.Duration.Round(time.Second))
	case h.Error != "":
		return fmt.Sprintf("%s hook could not run: %s", h.Hook, h.Error)
	}
	return fmt.Sprintf("%s hook exited %d", h.Hook, h.ExitCode)
}

// hooks reads the lifecycle labels: the command of each hook set, with its -timeout label in
// minutes (0 = none; Watchtower's default of one minute otherwise).
func (r *labelReader) hooks() map[string]Hook {
	var out map[string]Hook
	for _, name := range hookNames {
		cmd := strings.TrimSpace(r.labels[wtLifecycle+name])
		if cmd == "" {
			continue
		}
		h := Hook{Command: cmd, Timeout: defaultHookTimeout}
		key := wtLifecycle + name + "-timeout"
		if v, ok := r.labels[key]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				h.Timeout = time.Duration(n) * time.Minute
			} else {
				r.bad(key, v, "want a whole number of minutes (0 = no limit)")
			}
		}
		if out == nil {
			out = map[string]Hook{}
		}
		out[name] = h
	}
	return out
}

// runHook runs a hook in container id on c's engine and logs how it went.
func (u *Updater) runHook(ctx context.Context, c *Container, id, name string, h Hook) HookRun {
	runner, ok := u.hostOf(c).Life.(HookRunner)
	if !ok {
		return HookRun{Hook: name, ExitCode: -1, Error: "this engine's transactions cannot run hooks"}
	}
	res := runner.RunHook(ctx, id, h.Command, h.Timeout)
	run := HookRun{Hook: name, ExitCode: res.ExitCode, Output: res.Output, Truncated: res.Truncated,
		TimedOut: res.TimedOut, Duration: res.Duration}
	if res.Err != nil {
		run.Error = res.Err.Error()
	}
	level := u.log.Info
	if !run.OK() {
		level = u.log.Warn
	}
	level("lifecycle hook", "container", c.Name, "hook", name, "exit_code", run.ExitCode, "timed_out", run.TimedOut,
		"duration", run.Duration, "err", run.Error)
	return run
}

// checkHooks runs the hook called name (pre-check or post-check) in each selected container that
// has it and runs, a few at a time, and returns the runs by container. idOf gives the container
// to run it in ("" = none: not running). Nothing runs in a dry run or with hooks off.
func (u *Updater) checkHooks(ctx context.Context, targets []*Container, name string, dryRun bool, idOf func(*Container) string) map[string]HookRun {
	runs := map[string]HookRun{}
	if !u.opts.LifecycleHooks || dryRun {
		return runs
	}
	var todo []*Container
	for _, t := range targets {
		if _, ok := t.Settings.Hooks[name]; ok && !t.Self && !t.isService() && idOf(t) != "" && u.hostOf(t).Life != nil {
			todo = append(todo, t)
		}
	}
	results := make([]HookRun, len(todo))
	forEach(ctx, len(todo), func(i int) {
		results[i] = u.runHook(ctx, todo[i], idOf(todo[i]), name, todo[i].Settings.Hooks[name])
	})
	for i, t := range todo {
		if results[i].Hook != "" { // forEach stops starting new ones when ctx ends
			runs[t.key()] = results[i]
		}
	}
	return runs
}

// addHookRuns puts hook runs on their containers' report lines.
func addHookRuns(lines map[string]*ContainerReport, runs map[string]HookRun) {
	for key, r := range runs {
		if line := lines[key]; line != nil {
			line.Hooks = append(line.Hooks, r)
		}
	}
}

// runningID is the container a pre-check runs in: the target itself, when it runs.
func runningID(t *Container) string {
	if t.State == "running" {
		return t.ID
	}
	return ""
}

// attachHooks gives each update step of a running, selected container its pre-update and
// post-update hooks. Restarts and recreations of dependents get none: they are not selected.
// Nor do Swarm services: a hook runs in a container, and a service's tasks are Swarm's.
func attachHooks(plan *Plan) {
	for _, g := range plan.Groups {
		for _, s := range g {
			if s.Op != OpUpdate || s.c.Self || s.c.isService() || s.c.State != "running" {
				continue
			}
			if h, ok := s.c.Settings.Hooks[HookPreUpdate]; ok {
				s.PreUpdate = &h
			}
			if h, ok := s.c.Settings.Hooks[HookPostUpdate]; ok {
				s.PostUpdate = &h
			}
		}
	}
}

// preUpdate runs the step's pre-update hook and says whether the update may go on. When it may
// not, the line says why (HookSkipped for exit 75, else HookFailed) and nothing was touched.
func (a *applier) preUpdate(ctx context.Context, s *Step, line *ContainerReport) bool {
	run := a.u.runHook(ctx, s.c, s.c.ID, HookPreUpdate, *s.PreUpdate)
	a.mu.Lock()
	defer a.mu.Unlock()
	line.Hooks = append(line.Hooks, run)
	switch {
	case run.OK():
		return true
	case run.Error == "" && !run.TimedOut && run.ExitCode == hookSkipExit:
		why := "pre-update hook exited 75: this update is skipped; the container was not touched"
		line.Outcome, line.Message = OutcomeSkipped, why
		line.Failure = &Failure{Stage: failure.StagePlan, Reason: failure.HookSkipped, Message: why}
	default:
		why := run.describe() + ": the update is not made; the container was not touched"
		line.Outcome, line.Message = OutcomeFailed, ""
		line.Failure = &Failure{Stage: failure.StagePlan, Reason: failure.HookFailed, Message: why}
	}
	a.disturbed[s.Target.String()] = false
	return false
}

// postUpdate runs the step's post-update hook in the new container. Its failure is reported on
// the line, which stays updated: the new container runs and passed verify.
func (a *applier) postUpdate(ctx context.Context, s *Step, line *ContainerReport, newID string) {
	run := a.u.runHook(ctx, s.c, newID, HookPostUpdate, *s.PostUpdate)
	a.mu.Lock()
	defer a.mu.Unlock()
	line.Hooks = append(line.Hooks, run)
	if !run.OK() {
		line.Message = run.describe() + " (the update is kept: the new container passed verify)"
	}
}
