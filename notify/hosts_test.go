package notify

import (
	"testing"

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
