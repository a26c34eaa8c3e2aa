package updater_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// liveLog records what a LiveObserver is told.
type liveLog struct {
	mu      sync.Mutex
	started []updater.Trigger
	states  map[string][]updater.State
}

func (l *liveLog) RunFinished(*updater.Report) {}
func (l *liveLog) RunStarted(r *updater.Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = append(l.started, r.Trigger)
}
func (l *liveLog) ContainerChanged(st updater.ContainerStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states[st.Name] = append(l.states[st.Name], st.State)
}

// status is name's entry in Containers.
func (r *rig) status(name string) updater.ContainerStatus {
	r.t.Helper()
	cs, err := r.upd.Containers(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == r.Name(name) {
			return c
		}
	}
	r.t.Fatalf("%s not among the containers", name)
	return updater.ContainerStatus{}
}

// approve approves name's update and waits for the run that applies it.
func (r *rig) approve(name string) *updater.Report {
	r.t.Helper()
	a, id, done, err := r.upd.Approve(context.Background(), "", r.Name(name))
	if err != nil || a.State != updater.ApprovalApproved {
		r.t.Fatalf("Approve(%s) = %+v, %v", name, a, err)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		r.t.Fatal("the approval's run did not finish")
	}
	rep, err := r.upd.Run(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

// TestApprovalsOnRealEngine: with update.approve digest, an update waits as pending_approval with
// its exact digest (a dry run says so and records nothing; a container labelled
// watcher.approve="" is updated at once); approving applies it in a run; a registry that moved on
// before the approval's run lapses it (the new digest waits); a rejection holds the digest until
// a newer one appears, which waits again. The live observer sees it all.
func TestApprovalsOnRealEngine(t *testing.T) {
	live := &liveLog{states: map[string][]updater.State{}}
	r := newRig(t, func(o *updater.Options) {
		o.Defaults.Approve = []string{"digest"}
		o.Observers = append(o.Observers, live)
	})
	ref := r.pushed("app")
	appID := r.start("app", ref, labelled())
	r.start("free", ref, labelled("watcher.approve", ""))
	_, d2 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	dry := r.run(updater.Request{Trigger: updater.TriggerCheck, DryRun: true})
	if l := line(t, dry, r.Name("app")); l.Outcome != updater.OutcomePendingApproval {
		t.Errorf("dry run: app %s %q, want pending_approval", l.Outcome, l.Message)
	}
	if a := r.status("app").Approval; a != nil {
		t.Errorf("a dry run recorded %+v", a)
	}

	rep := r.run(updater.Request{Trigger: "test"})
	app := line(t, rep, r.Name("app"))
	if app.Outcome != updater.OutcomePendingApproval || app.NewDigest != d2.String() || app.Failure != nil ||
		!strings.Contains(app.Message, "a digest update waits for approval") || !strings.Contains(app.Message, "POST /v1/approve?container="+r.Name("app")) {
		t.Errorf("app: %s %q %+v; want pending_approval for %s, saying how to approve", app.Outcome, app.Message, app.Failure, d2)
	}
	if r.Inspect(r.Name("app")).ID != appID || r.version("app") != "v1" {
		t.Error("an update waiting for approval was applied")
	}
	if l := line(t, rep, r.Name("free")); l.Outcome != updater.OutcomeUpdated {
		t.Errorf("free (watcher.approve=\"\"): %s, want updated at once", l.Outcome)
	}
	st := r.status("app")
	if st.State != updater.StateUpdateAvailable || st.Approval == nil || st.Approval.State != updater.ApprovalPending ||
		st.Approval.Digest != d2.String() || st.Approval.Kind != "digest" {
		t.Fatalf("app status %+v approval %+v; want update_available, pending for %s", st, st.Approval, d2)
	}
	since := st.Approval.Since
	r.run(updater.Request{Trigger: "test"})
	if a := r.status("app").Approval; a == nil || !a.Since.Equal(since) {
		t.Errorf("a second run changed the pending entry: %+v", a)
	}

	rep = r.approve("app")
	if l := line(t, rep, r.Name("app")); rep.Trigger != updater.TriggerApprove || l.Outcome != updater.OutcomeUpdated || l.NewDigest != d2.String() || r.version("app") != "v2" {
		t.Fatalf("the approval's run: trigger %s, app %s %+v, version %s; want app updated to v2", rep.Trigger, l.Outcome, l.Failure, r.version("app"))
	}
	if st := r.status("app"); st.State != updater.StateUpToDate || st.Approval != nil || st.UpdatedAt.IsZero() {
		t.Errorf("after the approved update: %+v (approval %+v); want up to date, nothing waiting, an update time", st, st.Approval)
	}
	live.mu.Lock()
	started, states := append([]updater.Trigger(nil), live.started...), live.states[r.Name("app")]
	live.mu.Unlock()
	if started[len(started)-1] != updater.TriggerApprove || !strings.Contains(strings.Trim(strings.Join(stateNames(states), " "), " "), "update_available updating up_to_date") {
		t.Errorf("live observer: runs %v, app states %v", started, states)
	}

	// The registry moves on after the entry was recorded: the approval lapses.
	_, d3 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3"})
	r.run(updater.Request{Trigger: "test"})
	_, d4 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v4"})
	rep = r.approve("app")
	if l := line(t, rep, r.Name("app")); l.Outcome != updater.OutcomePendingApproval || l.NewDigest != d4.String() ||
		!strings.Contains(l.Message, "the approval of "+d3.String()[:19]) || !strings.Contains(l.Message, "lapsed") || r.version("app") != "v2" {
		t.Errorf("approved %s, registry at %s: %s %q, version %s; want the approval lapsed and v4 waiting", d3, d4, l.Outcome, l.Message, r.version("app"))
	}
	if a := r.status("app").Approval; a == nil || a.State != updater.ApprovalPending || a.Digest != d4.String() || a.Lapsed != d3.String() {
		t.Errorf("after the lapse: %+v; want pending for %s, lapsed %s", a, d4, d3)
	}

	// A rejection holds that digest; a newer one waits for approval again.
	if a, err := r.upd.Reject(context.Background(), "", r.Name("app")); err != nil || a.State != updater.ApprovalRejected || a.Digest != d4.String() {
		t.Fatalf("Reject = %+v, %v", a, err)
	}
	if st := r.status("app"); st.Approval == nil || st.Approval.State != updater.ApprovalRejected {
		t.Errorf("the rejection does not show at once: %+v", st.Approval)
	}
	rep = r.run(updater.Request{Trigger: "test"})
	if l := line(t, rep, r.Name("app")); l.Outcome != updater.OutcomeSkipped || !strings.Contains(l.Message, "rejected") || r.version("app") != "v2" {
		t.Errorf("after the rejection: %s %q, version %s; want skipped, v2", l.Outcome, l.Message, r.version("app"))
	}
	rep = r.run(updater.Request{Trigger: updater.TriggerHTTP, Containers: []string{r.Name("app")}, Force: true})
	if l := line(t, rep, r.Name("app")); l.Outcome != updater.OutcomeSkipped || r.version("app") != "v2" {
		t.Errorf("forced after the rejection: %s, version %s; force lifts no rejection", l.Outcome, r.version("app"))
	}
	_, d5 := r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v5"})
	rep = r.run(updater.Request{Trigger: "test"})
	if l := line(t, rep, r.Name("app")); l.Outcome != updater.OutcomePendingApproval || l.NewDigest != d5.String() || !strings.Contains(l.Message, "the rejection of") {
		t.Errorf("a newer digest after the rejection: %s %q; want pending_approval for %s", l.Outcome, l.Message, d5)
	}

	var na *updater.NoApprovalError
	if _, err := r.upd.Reject(context.Background(), "", r.Name("free")); !errors.As(err, &na) {
		t.Errorf("Reject(free) = %v, want a NoApprovalError", err)
	}
	var nw *updater.NotWatchedError
	if _, _, _, err := r.upd.Approve(context.Background(), "", r.Name("ghost")); !errors.As(err, &nw) {
		t.Errorf("Approve(ghost) = %v, want a NotWatchedError", err)
	}
}

func stateNames(ss []updater.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TestApprovalKinds: under tag policies the kind of a move is the first number that changed:
// with watcher.approve=major, a move to 2.0.0 waits (the line and the entry name the new tag)
// and a move to 1.0.1 does not; a malformed watcher.approve fails only its container.
func TestApprovalKinds(t *testing.T) {
	r := newRig(t, nil)
	ref100, _ := r.Registry.PushImage(t, "app", "1.0.0", testenv.ImageSpec{Version: "1.0.0"})
	r.Registry.PushImage(t, "app", "1.0.1", testenv.ImageSpec{Version: "1.0.1"})
	ref200, d200 := r.Registry.PushImage(t, "app", "2.0.0", testenv.ImageSpec{Version: "2.0.0"})
	r.Pull(ref100)
	r.start("major", ref100, labelled("watcher.policy", "major", "watcher.approve", "major"))
	r.start("minor", ref100, labelled("watcher.policy", "minor", "watcher.approve", "major, minor"))
	r.start("bad", ref100, labelled("watcher.approve", "major,huge"))

	rep := r.run(updater.Request{Trigger: "test"})
	if l := line(t, rep, r.Name("major")); l.Outcome != updater.OutcomePendingApproval || l.NewImage != ref200 || l.NewDigest != d200.String() ||
		!strings.Contains(l.Message, "a major update waits for approval (tag 1.0.0 -> 2.0.0)") {
		t.Errorf("major: %s %q; want pending_approval to %s", l.Outcome, l.Message, ref200)
	}
	if a := r.status("major").Approval; a == nil || a.Kind != "major" || a.NewImage != ref200 {
		t.Errorf("major's entry %+v", a)
	}
	if l := line(t, rep, r.Name("minor")); l.Outcome != updater.OutcomeUpdated || r.version("minor") != "1.0.1" {
		t.Errorf("minor (a patch move, approval for minor and major): %s %+v; want updated to 1.0.1", l.Outcome, l.Failure)
	}
	if l := line(t, rep, r.Name("bad")); l.Outcome != updater.OutcomeFailed || l.Failure == nil || l.Failure.Reason != failure.InvalidLabel ||
		!strings.Contains(l.Failure.Message, `watcher.approve="major,huge": unknown update kind "huge"`) {
		t.Errorf("bad: %s %+v; want InvalidLabel naming watcher.approve", l.Outcome, l.Failure)
	}
}
