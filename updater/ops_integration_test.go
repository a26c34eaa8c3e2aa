package updater_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

func labelled(kv ...string) map[string]string {
	l := map[string]string{"watcher.enable": "true"}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// version is the APP_VERSION a container runs.
func (r *rig) version(name string) string {
	r.t.Helper()
	for _, e := range r.Inspect(r.Name(name)).Config.Env {
		if v, ok := strings.CutPrefix(e, "APP_VERSION="); ok {
			return v
		}
	}
	return ""
}

// TestWindowsOnRealEngine: on a clock of Thursday 00:30 UTC, a container whose window excludes
// now is held (skipped, OutsideWindow, untouched) and one whose window opened Wednesday 22:00 is
// updated across midnight; forced, the held one is updated too.
func TestWindowsOnRealEngine(t *testing.T) {
	now := time.Date(2026, 1, 8, 0, 30, 0, 0, time.UTC)
	r := newRig(t, func(o *updater.Options) {
		o.Now = func() time.Time { return now }
		o.Defaults.Zone = time.UTC
	})
	ref := r.pushed("app")
	heldID := r.start("held", ref, labelled("watcher.window", "02:00-03:00"))
	r.start("night", ref, labelled("watcher.window", "Wed 22:00-06:00"))
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	rep := r.run(updater.Request{Trigger: "test"})
	held := line(t, rep, r.Name("held"))
	if held.Outcome != updater.OutcomeSkipped || held.Failure == nil || held.Failure.Stage != failure.StagePlan ||
		held.Failure.Reason != failure.OutsideWindow || !strings.Contains(held.Message, "the next one starts Thu 2026-01-08 02:00 UTC") {
		t.Errorf("held: %s %q %+v; want skipped, plan/OutsideWindow, naming the next start", held.Outcome, held.Message, held.Failure)
	}
	if got := r.Inspect(r.Name("held")); got.ID != heldID || r.version("held") != "v1" {
		t.Errorf("held was touched outside its window: id %s version %s", short(got.ID), r.version("held"))
	}
	if l := line(t, rep, r.Name("night")); l.Outcome != updater.OutcomeUpdated || r.version("night") != "v2" {
		t.Errorf("night (inside Wed 22:00-06:00 at Thu 00:30): %s %+v, version %s; want updated to v2", l.Outcome, l.Failure, r.version("night"))
	}

	rep = r.run(updater.Request{Trigger: updater.TriggerHTTP, Containers: []string{r.Name("held")}, Force: true})
	if l := line(t, rep, r.Name("held")); l.Outcome != updater.OutcomeUpdated || r.version("held") != "v2" {
		t.Errorf("held, forced: %s %+v, version %s; want updated to v2", l.Outcome, l.Failure, r.version("held"))
	}
}

// rollback asks the updater for a rollback of name and returns its report.
func (r *rig) rollback(name string) (*updater.Report, error) {
	r.t.Helper()
	id, done, err := r.upd.Rollback(context.Background(), "", r.Name(name))
	if err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		r.t.Fatal("rollback did not finish")
	}
	return r.upd.Run(id)
}

// TestManualRollback: a container updated v1 -> v2 is rolled back to v1 from the image kept for
// it (no registry request), as a verified transaction; v2 is then not applied again, a newer v3
// is. A container never updated, and a second rollback, have nothing to roll back.
func TestManualRollback(t *testing.T) {
	r := newRig(t, func(o *updater.Options) { o.KeepImages = 1 })
	ref, d1 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	r.start("app", ref, enabled)
	r.start("fresh", r.pushed("other"), enabled)
	if _, err := r.rollback("fresh"); !isNoRollback(err) {
		t.Errorf("rollback of a container never updated: %v, want a NoRollbackError", err)
	}
	v1Image := r.Inspect(r.Name("app")).Image
	_, d2 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	if l := line(t, r.run(updater.Request{}), r.Name("app")); l.Outcome != updater.OutcomeUpdated {
		t.Fatalf("update to v2: %s %+v", l.Outcome, l.Failure)
	}
	if _, err := r.Docker.ImageInspect(context.Background(), v1Image); err != nil {
		t.Fatalf("keep_images 1: the superseded v1 image was removed: %v", err)
	}

	r.Registry.ResetRequests()
	rep, err := r.rollback("app")
	if err != nil {
		t.Fatal(err)
	}
	l := line(t, rep, r.Name("app"))
	if rep.Trigger != updater.TriggerRollback || l.Outcome != updater.OutcomeUpdated || l.OldDigest != d2.String() || l.NewDigest != d1.String() ||
		!strings.Contains(l.Message, "rolled back by hand") || r.version("app") != "v1" || !r.Inspect(r.Name("app")).State.Running {
		t.Fatalf("rollback: trigger %s line %+v, version %s; want updated %s -> %s, running v1", rep.Trigger, l, r.version("app"), d2, d1)
	}
	if n := len(r.Registry.Requests()); n != 0 {
		t.Errorf("rollback to a kept image made %d registry requests, want none: %+v", n, r.Registry.Requests())
	}
	if _, err := r.rollback("app"); !isNoRollback(err) || !strings.Contains(err.Error(), "already rolled back") {
		t.Errorf("second rollback: %v, want a NoRollbackError saying it was rolled back", err)
	}

	l = line(t, r.run(updater.Request{}), r.Name("app"))
	if l.Outcome != updater.OutcomeSkipped || !strings.Contains(l.Message, "a manual rollback undid") || r.version("app") != "v1" {
		t.Errorf("the run after the rollback: %s %q, version %s; want v2 held", l.Outcome, l.Message, r.version("app"))
	}
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3"})
	if l := line(t, r.run(updater.Request{}), r.Name("app")); l.Outcome != updater.OutcomeUpdated || r.version("app") != "v3" {
		t.Errorf("a newer v3: %s %+v, version %s; want updated to v3", l.Outcome, l.Failure, r.version("app"))
	}
}

// TestRollbackAfterCleanup: with keep_images 0 the superseded image is removed at once; a
// rollback pulls it again by digest (repo@sha256:old) and runs it.
func TestRollbackAfterCleanup(t *testing.T) {
	r := newRig(t, func(o *updater.Options) { o.KeepImages = 0 })
	ref, d1 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	r.Pull(ref)
	r.start("app", ref, enabled)
	v1Image := r.Inspect(r.Name("app")).Image
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	if l := line(t, r.run(updater.Request{}), r.Name("app")); l.Outcome != updater.OutcomeUpdated {
		t.Fatalf("update to v2: %s %+v", l.Outcome, l.Failure)
	}
	if _, err := r.Docker.ImageInspect(context.Background(), v1Image); err == nil {
		t.Fatal("keep_images 0: the superseded v1 image is still there")
	}
	r.Registry.ResetRequests()
	rep, err := r.rollback("app")
	if err != nil {
		t.Fatal(err)
	}
	if l := line(t, rep, r.Name("app")); l.Outcome != updater.OutcomeUpdated || r.version("app") != "v1" {
		t.Fatalf("rollback after cleanup: %+v, version %s; want updated back to v1", l, r.version("app"))
	}
	// The engine pulls repo@sha256:old; what it fetches depends on what it still has (here the
	// config blob: the layers are shared with v2).
	if n := r.Registry.Count("GET", ""); n == 0 || r.Inspect(r.Name("app")).Image != v1Image {
		t.Errorf("rollback after cleanup: %d registry requests, image %s; want %s pulled again (%s)", n, r.Inspect(r.Name("app")).Image, v1Image, d1)
	}
}

func isNoRollback(err error) bool {
	var nr *updater.NoRollbackError
	return errors.As(err, &nr)
}

// TestPerContainerSchedules: two containers of one image on their own watcher.schedule are
// checked at their own ticks (a run the faster one's tick starts does not check the slower one),
// one cron entry per schedule, and every run asks the registry once for the image.
func TestPerContainerSchedules(t *testing.T) {
	r := newRig(t, nil)
	ref := r.pushed("app")
	fast, slow := r.Name("fast"), r.Name("slow")
	r.start("fast", ref, labelled("watcher.schedule", "@every 1s"))
	r.start("slow", ref, labelled("watcher.schedule", "@every 3s"))
	r.start("none", ref, enabled) // no label and no daemon schedule: only checked when asked
	r.Registry.ResetRequests()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := r.upd.NewScheduler(updater.SchedulerOptions{})
	s.Start(ctx)
	if next := s.Next(); len(next) != 2 || next["@every 1s"].IsZero() || next["@every 3s"].IsZero() {
		t.Errorf("schedules = %v, want one entry for each of @every 1s and @every 3s", next)
	}
	var runs []updater.Report
	deadline := time.Now().Add(time.Minute)
	for {
		runs, _ = r.upd.Runs(0)
		fastAlone := slices.ContainsFunc(runs, func(rep updater.Report) bool { return slices.Equal(names(&rep), []string{fast}) })
		slowChecked := slices.ContainsFunc(runs, func(rep updater.Report) bool { return slices.Contains(names(&rep), slow) })
		if fastAlone && slowChecked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: a run of fast alone %v, slow checked %v; runs %v", fastAlone, slowChecked, runNames(runs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	r.upd.Wait()
	runs, _ = r.upd.Runs(0)
	for _, rep := range runs {
		if rep.Trigger != updater.TriggerSchedule || slices.Contains(names(&rep), r.Name("none")) || len(rep.Containers) == 0 {
			t.Errorf("run %s (%s) checked %v; want scheduled runs of fast and slow only", rep.ID, rep.Trigger, names(&rep))
		}
	}
	if heads := r.Registry.Count("HEAD", "/manifests/latest"); heads != len(runs) {
		t.Errorf("%d runs made %d HEADs of app:latest, want one each", len(runs), heads)
	}
}

func runNames(runs []updater.Report) [][]string {
	var out [][]string
	for _, rep := range runs {
		out = append(out, names(&rep))
	}
	return out
}

// TestPushedTrigger: a push names what was pushed; only the containers running that repository
// and tag are checked, and a push no watched container runs starts no run.
func TestPushedTrigger(t *testing.T) {
	r := newRig(t, nil)
	ref := r.pushed("app")
	r.start("app", ref, enabled)
	r.start("other", r.pushed("other"), enabled)
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	id, done, err := r.upd.Trigger(context.Background(), updater.Request{Trigger: updater.TriggerWebhook,
		Pushed: []string{r.Registry.Host + "/app:latest", r.Registry.Host + "/nobody:latest"}})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	rep, _ := r.upd.Run(id)
	if got := names(rep); !slices.Equal(got, []string{r.Name("app")}) || line(t, rep, r.Name("app")).Outcome != updater.OutcomeUpdated {
		t.Errorf("pushed app:latest checked %v (%+v), want app alone, updated", got, rep.Containers)
	}
	if _, _, err := r.upd.Trigger(context.Background(), updater.Request{Trigger: updater.TriggerWebhook, Pushed: []string{r.Registry.Host + "/app:other-tag"}}); err == nil {
		t.Error("a push of a tag no container runs started a run")
	}
}
