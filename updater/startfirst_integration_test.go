package updater_test

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// watcher.update-order=start-first reaches lifecycle: the labelled container is replaced with no
// downtime, and one that publishes a host port is refused (plan/Unsupported) and left running.
func TestStartFirstLabel(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	_, onNet := r.network("")
	startFirst := map[string]string{"watcher.enable": "true", updater.LabelUpdateOrder: updater.OrderStartFirst}
	sfRef, portsRef := r.pushed("sf"), r.pushed("ports")
	r.start("sf", sfRef, startFirst, onNet)
	portsID := r.start("ports", portsRef, startFirst, func(_ *container.Config, hc *container.HostConfig) {
		hc.PortBindings = network.PortMap{network.MustParsePort("8080/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1")}}}
	})
	r.Registry.PushImage(t, "sf", "latest", testenv.ImageSpec{Version: "v2"})
	r.Registry.PushImage(t, "ports", "latest", testenv.ImageSpec{Version: "v2"})

	check := r.run(updater.Request{DryRun: true})
	if check.Plan == nil || len(check.Plan.Groups) != 2 || check.Plan.Groups[0][0].Order != updater.OrderStartFirst {
		t.Fatalf("dry-run plan %v, want two start-first updates", check.Plan)
	}

	rep := r.run(updater.Request{})
	if l := line(t, rep, r.Name("sf")); l.Outcome != updater.OutcomeUpdated || l.Downtime != 0 {
		t.Errorf("sf: %s (downtime %v) %+v, want updated with no downtime", l.Outcome, l.Downtime, l.Failure)
	}
	l := line(t, rep, r.Name("ports"))
	if l.Outcome != updater.OutcomeFailed || l.Failure == nil || l.Failure.Stage != failure.StagePlan || l.Failure.Reason != failure.Unsupported {
		t.Errorf("ports: %s %+v, want failed plan/Unsupported", l.Outcome, l.Failure)
	}
	if ins := r.Inspect(r.Name("ports")); ins.ID != portsID || !ins.State.Running {
		t.Errorf("ports after the refusal: %s running=%v, want the old container running", ins.ID, ins.State.Running)
	}
}
