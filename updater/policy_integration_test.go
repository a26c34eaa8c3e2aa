package updater_test

import (
	"slices"
	"testing"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// Under patch, a container on 1.0.0 moves to 1.0.1 and leaves 1.1.0 alone: recreated on the new
// tag (Config.Image becomes repo:1.0.1), the report and history showing from -> to. A monitor
// container under minor only reports 1.1.0.
func TestPatchPolicyMovesToNewerPatchTag(t *testing.T) {
	r := newRig(t, nil)
	ref100, d100 := r.Registry.PushImage(t, "app", "1.0.0", testenv.ImageSpec{Version: "1.0.0"})
	ref101, d101 := r.Registry.PushImage(t, "app", "1.0.1", testenv.ImageSpec{Version: "1.0.1"})
	ref110, d110 := r.Registry.PushImage(t, "app", "1.1.0", testenv.ImageSpec{Version: "1.1.0"})
	r.Pull(ref100)
	appID := r.start("app", ref100, map[string]string{"watcher.enable": "true", "watcher.policy": "patch"})
	monID := r.start("mon", ref100, map[string]string{"watcher.enable": "true", "watcher.policy": "minor", "watcher.mode": "monitor"})

	rep := r.run(updater.Request{Trigger: "test"})

	app := line(t, rep, r.Name("app"))
	if app.Outcome != updater.OutcomeUpdated || app.Image != ref100 || app.NewImage != ref101 || app.OldDigest != d100.String() || app.NewDigest != d101.String() || app.NewID == "" {
		t.Fatalf("app: %+v (failure %+v); want updated %s -> %s", app, app.Failure, ref100, ref101)
	}
	now := r.Inspect(r.Name("app"))
	if now.ID == appID || now.ID != app.NewID || !now.State.Running || now.Config.Image != ref101 || !slices.Contains(now.Config.Env, "APP_VERSION=1.0.1") {
		t.Errorf("app after the run: id %s running %t image %s env %v; want a new container on %s", now.ID, now.State.Running, now.Config.Image, now.Config.Env, ref101)
	}
	mon := line(t, rep, r.Name("mon"))
	if mon.Outcome != updater.OutcomeUpdateAvailable || mon.NewImage != ref110 || mon.NewDigest != d110.String() {
		t.Errorf("mon: %+v; want update_available to %s", mon, ref110)
	}
	if got := r.Inspect(r.Name("mon")); got.ID != monID || got.Config.Image != ref100 {
		t.Errorf("monitor container touched: id %s image %s", got.ID, got.Config.Image)
	}
	stored, err := r.upd.Run(rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h := line(t, stored, r.Name("app")); h.Image != ref100 || h.NewImage != ref101 {
		t.Errorf("history: %s -> %s, want %s -> %s", h.Image, h.NewImage, ref100, ref101)
	}

	// Next cycle: 1.0.1 is the newest patch; 1.1.0 stays out of reach.
	rep2 := r.run(updater.Request{Trigger: "test"})
	if l := line(t, rep2, r.Name("app")); l.Outcome != updater.OutcomeUpToDate || l.Image != ref101 || l.NewImage != "" {
		t.Errorf("second run: %+v; want %s up to date", l, ref101)
	}
	if got := r.Inspect(r.Name("app")); got.ID != app.NewID || got.Config.Image != ref101 {
		t.Errorf("second run touched app: id %s image %s", got.ID, got.Config.Image)
	}
}
