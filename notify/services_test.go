package notify

import (
	"testing"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/updater"
)

// The default message names a Swarm service as one, with its tasks, and Swarm's reason when it
// rolled the update back.
func TestDefaultTemplateServices(t *testing.T) {
	tmpl, err := parseTemplate(DefaultTemplate, "box")
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := "sha256:1111111111111111", "sha256:2222222222222222"
	rep := &updater.Report{ID: "r", Trigger: updater.TriggerSchedule, Containers: []updater.ContainerReport{
		{Kind: updater.KindService, Name: "web", Image: "reg/web:1", OldDigest: d1, NewDigest: d2, Outcome: updater.OutcomeUpdated,
			Replicas: &updater.Replicas{Mode: "replicated", Desired: 3, Running: 3}},
		{Kind: updater.KindService, Name: "api", Image: "reg/api:2", OldDigest: d1, NewDigest: d2, Outcome: updater.OutcomeRolledBack,
			Failure:  &updater.Failure{Stage: failure.StageService, Reason: failure.ServiceRolledBack, Message: "Swarm rolled the update back: task failed"},
			Replicas: &updater.Replicas{Mode: "global", Desired: 2, Running: 2}},
		{Name: "db", Image: "pg:16", Outcome: updater.OutcomeUpdated},
	}}
	got, err := render(tmpl, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `watcher on box: 1 rolled back, 2 updated
- service web (reg/web:1): updated sha256:111111111111 -> sha256:222222222222, 3/3 tasks
- service api (reg/api:2): rolled back sha256:111111111111 -> sha256:222222222222: service ServiceRolledBack: Swarm rolled the update back: task failed, 2/2 tasks
- db (pg:16): updated
run r (schedule), 0s`
	if got != want {
		t.Errorf("message =\n%s\nwant\n%s", got, want)
	}
}
