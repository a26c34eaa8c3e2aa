package updater_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// hookLabels are Watchtower's lifecycle labels for the hooks given as name=command.
func hookLabels(base map[string]string, hooks ...string) map[string]string {
	l := map[string]string{}
	for k, v := range base {
		l[k] = v
	}
	for _, h := range hooks {
		name, cmd, _ := strings.Cut(h, "=")
		l["com.centurylinklabs.watchtower.lifecycle."+name] = cmd
	}
	return l
}

func hookNames(l updater.ContainerReport) []string {
	var out []string
	for _, h := range l.Hooks {
		out = append(out, h.Hook)
	}
	return out
}

// TestLifecycleHooks runs Watchtower's lifecycle hooks in real containers: all four around an
// update, exit 75 and a failure of pre-update holding the update before anything is touched, a
// failing post-update reported but kept, none in a dependent that is restarted, pre-check but no
// pre-update in monitor mode, and none at all in a dry run.
func TestLifecycleHooks(t *testing.T) {
	r := newRig(t, func(o *updater.Options) { o.LifecycleHooks = true })
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1", Shell: true})
	r.Pull(ref)
	all := []string{"pre-check=echo pre-check in $APP_VERSION", "pre-update=echo pre-update in $APP_VERSION",
		"post-update=echo post-update in $APP_VERSION", "post-check=echo post-check in $APP_VERSION"}
	okID := r.start("ok", ref, hookLabels(enabled, all...))
	skipID := r.start("skip", ref, hookLabels(enabled, "pre-update=echo not now; exit 75"))
	failID := r.start("fail", ref, hookLabels(enabled, "pre-update=echo cannot drain >&2; exit 3"))
	r.start("post", ref, hookLabels(enabled, "post-update=exit 4"))
	monID := r.start("mon", ref, hookLabels(map[string]string{"watcher.enable": "true", "watcher.mode": "monitor"}, all...))
	// A dependent that is not selected: restarted with ok (watcher.follow), never hooked.
	r.start("dep", ref, hookLabels(map[string]string{"watcher.follow": "true", "watcher.depends-on": r.Name("ok")}, all...))
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2", Shell: true})

	dry := r.run(updater.Request{DryRun: true})
	for _, l := range dry.Containers {
		if len(l.Hooks) > 0 {
			t.Errorf("dry run ran hooks in %s: %+v", l.Name, l.Hooks)
		}
	}

	rep := r.run(updater.Request{Trigger: "test"})
	ok := line(t, rep, r.Name("ok"))
	if ok.Outcome != updater.OutcomeUpdated || !slices.Equal(hookNames(ok), []string{"pre-check", "pre-update", "post-update", "post-check"}) {
		t.Fatalf("ok: %s with hooks %v; want updated with pre-check, pre-update, post-update, post-check", ok.Outcome, hookNames(ok))
	}
	for i, want := range []string{"pre-check in v1", "pre-update in v1", "post-update in v2", "post-check in v2"} {
		if h := ok.Hooks[i]; !h.OK() || !strings.Contains(h.Output, want) {
			t.Errorf("ok: hook %s = %+v, want exit 0 saying %q (old container before, new after)", h.Hook, h, want)
		}
	}
	if r.Inspect(r.Name("ok")).ID == okID {
		t.Error("ok was not replaced")
	}

	for name, want := range map[string]struct {
		id      string
		outcome updater.Outcome
		reason  failure.Reason
		msg     string
	}{
		"skip": {skipID, updater.OutcomeSkipped, failure.HookSkipped, "exited 75"},
		"fail": {failID, updater.OutcomeFailed, failure.HookFailed, "pre-update hook exited 3"},
	} {
		l := line(t, rep, r.Name(name))
		if l.Outcome != want.outcome || l.Failure == nil || l.Failure.Stage != failure.StagePlan || l.Failure.Reason != want.reason ||
			!strings.Contains(l.Failure.Message, want.msg) || !strings.Contains(l.Failure.Message, "not touched") {
			t.Errorf("%s: %+v; want %s, plan/%s saying %q and that nothing was touched", name, l, want.outcome, want.reason, want.msg)
		}
		if now := r.Inspect(r.Name(name)); now.ID != want.id || !now.State.Running || !slices.Contains(now.Config.Env, "APP_VERSION=v1") {
			t.Errorf("%s after its pre-update hook held it: id %.12s (was %.12s), running %v", name, now.ID, want.id, now.State.Running)
		}
	}
	if l := line(t, rep, r.Name("fail")); len(l.Hooks) != 1 || !strings.Contains(l.Hooks[0].Output, "cannot drain") {
		t.Errorf("fail: hooks %+v, want the pre-update run with its output", l.Hooks)
	}

	post := line(t, rep, r.Name("post"))
	if post.Outcome != updater.OutcomeUpdated || len(post.Hooks) != 1 || post.Hooks[0].ExitCode != 4 || !strings.Contains(post.Message, "post-update hook exited 4") {
		t.Errorf("post: %+v; want updated (kept), its post-update hook reported with exit 4", post)
	}
	mon := line(t, rep, r.Name("mon"))
	if mon.Outcome != updater.OutcomeUpdateAvailable || !slices.Equal(hookNames(mon), []string{"pre-check", "post-check"}) || r.Inspect(r.Name("mon")).ID != monID {
		t.Errorf("mon: %s with hooks %v; want update_available, pre-check and post-check only, not replaced", mon.Outcome, hookNames(mon))
	}
	dep := line(t, rep, r.Name("dep"))
	if dep.Outcome != updater.OutcomeRestarted || len(dep.Hooks) != 0 {
		t.Errorf("dep: %s with hooks %v; want restarted and no hook run (it is not selected)", dep.Outcome, hookNames(dep))
	}
	if !rep.Failed() {
		t.Error("a run with a failed pre-update hook is not Failed() (watcher once would exit 0)")
	}

	// Selected by name: the hooks run only in the containers the run is for.
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3", Shell: true})
	rep = r.run(updater.Request{Trigger: "test", Containers: []string{r.Name("post")}})
	for _, l := range rep.Containers {
		if l.Name != r.Name("post") && len(l.Hooks) > 0 {
			t.Errorf("a run for post only ran hooks in %s: %v", l.Name, hookNames(l))
		}
	}
}

// TestLifecycleHooksOff: without update.lifecycle_hooks the labels are not acted on.
func TestLifecycleHooksOff(t *testing.T) {
	r := newRig(t, nil)
	ref, _ := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1", Shell: true})
	r.Pull(ref)
	r.start("app", ref, hookLabels(enabled, "pre-update=exit 75", "pre-check=exit 1"))
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2", Shell: true})
	l := line(t, r.run(updater.Request{Trigger: "test"}), r.Name("app"))
	if l.Outcome != updater.OutcomeUpdated || len(l.Hooks) != 0 {
		t.Errorf("app with hooks off: %s, hooks %v; want updated with no hook run", l.Outcome, hookNames(l))
	}
}
