package notify

import (
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/updater"
)

// With hosts configured, the default message names each container's host and every host that
// could not be reached.
func TestDefaultTemplateHosts(t *testing.T) {
	tmpl, err := parseTemplate(DefaultTemplate, "box")
	if err != nil {
		t.Fatal(err)
	}
	rep := &updater.Report{ID: "r", Trigger: updater.TriggerSchedule,
		Hosts: []updater.HostReport{{Name: "edge", Reachable: true, Watched: 1}, {Name: "core", Error: "dial tcp 10.0.0.5:2376: connection refused"}},
		Containers: []updater.ContainerReport{
			{Host: "edge", Name: "web", Image: "nginx:1.27", Outcome: updater.OutcomeUpdated},
			{Host: "core", Name: "db", Image: "pg:16", Outcome: updater.OutcomeFailed,
				Failure: &updater.Failure{Stage: failure.StageHost, Reason: failure.EngineUnreachable, Message: "the engine does not answer"}},
		}}
	got, err := render(tmpl, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `watcher on box: 1 host unreachable, 1 failed, 1 updated
- host core unreachable: dial tcp 10.0.0.5:2376: connection refused
- edge/web (nginx:1.27): updated
- core/db (pg:16): failed: host EngineUnreachable: the engine does not answer
run r (schedule), 0s`
	if got != want {
		t.Errorf("message =\n%s\nwant\n%s", got, want)
	}
	if got := title(rep); got != "watcher: FAILED — 1 host unreachable, 1 failed, 1 updated" {
		t.Errorf("title = %q", got)
	}
}

// A host that could not be reached is news even when no container of it is known (a host that
// was never reached), and the same container name on two hosts is two containers.
func TestSelectLinesHosts(t *testing.T) {
	n, err := newNotifier(Options{}, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rep := &updater.Report{ID: "r", Hosts: []updater.HostReport{{Name: "edge", Reachable: true}, {Name: "new", Error: "refused"}}}
	if got, _ := n.selectLines(rep); got == nil {
		t.Error("a run with an unreachable host and no line sends nothing")
	}
	waiting := func(host string) updater.ContainerReport {
		return updater.ContainerReport{Host: host, Name: "web", Outcome: updater.OutcomeUpdateAvailable, NewDigest: "sha256:1"}
	}
	rep = &updater.Report{ID: "r2", Containers: []updater.ContainerReport{waiting("a"), waiting("b")}}
	if got, _ := n.selectLines(rep); got == nil || len(got.Containers) != 2 {
		t.Errorf("the same waiting update on hosts a and b: %+v, want both told", got)
	}
	if got, _ := n.selectLines(rep); got != nil {
		t.Errorf("told again: %+v", got.Containers)
	}
}
