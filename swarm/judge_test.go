package swarm

import (
	"testing"
	"time"

	mobyswarm "github.com/moby/moby/api/types/swarm"

	"github.com/watcher-dev/watcher/failure"
)

const (
	oldRef = "reg/app:1@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	newRef = "reg/app:1@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func svcWith(img string, state mobyswarm.UpdateState, started time.Time, msg string) mobyswarm.Service {
	s := mobyswarm.Service{Spec: mobyswarm.ServiceSpec{TaskTemplate: mobyswarm.TaskSpec{ContainerSpec: &mobyswarm.ContainerSpec{Image: img}}}}
	if state != "" {
		s.UpdateStatus = &mobyswarm.UpdateStatus{State: state, StartedAt: &started, Message: msg}
	}
	return s
}

// TestJudge: what one look at the service says, for an update and for a rollback the watcher
// asked for; a status that still reads as the one before the update is no answer.
func TestJudge(t *testing.T) {
	before := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := before.Add(time.Minute)
	upd := &record{Previous: oldRef, Image: newRef, Before: &status{State: mobyswarm.UpdateStateCompleted, StartedAt: before}}
	back := &record{Previous: newRef, Image: oldRef, Rollback: true}
	tests := []struct {
		name    string
		rec     *record
		svc     mobyswarm.Service
		done    bool
		outcome Outcome
		reason  failure.Reason
	}{
		{"no status yet", upd, svcWith(newRef, "", after, ""), false, "", ""},
		{"status of the update before", upd, svcWith(newRef, mobyswarm.UpdateStateCompleted, before, "update completed"), false, "", ""},
		{"updating", upd, svcWith(newRef, mobyswarm.UpdateStateUpdating, after, "update in progress"), false, "", ""},
		{"completed", upd, svcWith(newRef, mobyswarm.UpdateStateCompleted, after, "update completed"), true, OutcomeUpdated, ""},
		{"paused", upd, svcWith(newRef, mobyswarm.UpdateStatePaused, after, "update paused due to failure"), true, OutcomeFailed, failure.ServicePaused},
		{"Swarm rolls back", upd, svcWith(oldRef, mobyswarm.UpdateStateRollbackStarted, after, "update rolled back due to failure"), false, "", ""},
		{"Swarm rolled back", upd, svcWith(oldRef, mobyswarm.UpdateStateRollbackCompleted, after, "rollback completed"), true, OutcomeRolledBack, failure.ServiceRolledBack},
		{"Swarm's rollback paused", upd, svcWith(oldRef, mobyswarm.UpdateStateRollbackPaused, after, "rollback paused"), true, OutcomeFailed, failure.ServicePaused},
		{"reverted by someone", upd, svcWith(oldRef, mobyswarm.UpdateStateCompleted, after, "update completed"), true, OutcomeFailed, failure.ServiceChanged},
		{"another image", upd, svcWith("reg/app:2", mobyswarm.UpdateStateUpdating, after, ""), true, OutcomeFailed, failure.ServiceChanged},
		{"rollback asked: rolling back", back, svcWith(oldRef, mobyswarm.UpdateStateRollbackStarted, after, "manually requested rollback"), false, "", ""},
		{"rollback asked: done", back, svcWith(oldRef, mobyswarm.UpdateStateRollbackCompleted, after, "rollback completed"), true, OutcomeUpdated, ""},
		{"rollback asked: paused", back, svcWith(oldRef, mobyswarm.UpdateStateRollbackPaused, after, ""), true, OutcomeFailed, failure.ServicePaused},
	}
	for _, tc := range tests {
		v := judge(tc.svc, tc.rec)
		var reason failure.Reason
		if v.err != nil {
			reason = v.err.Reason
		}
		if v.done != tc.done || v.outcome != tc.outcome || reason != tc.reason {
			t.Errorf("%s: judge = done %t, %q, %q; want done %t, %q, %q", tc.name, v.done, v.outcome, reason, tc.done, tc.outcome, tc.reason)
		}
	}
}

func task(node, img string, desired, state mobyswarm.TaskState) mobyswarm.Task {
	return mobyswarm.Task{NodeID: node, DesiredState: desired, Status: mobyswarm.TaskStatus{State: state},
		Spec: mobyswarm.TaskSpec{ContainerSpec: &mobyswarm.ContainerSpec{Image: img}}}
}

func node(id string, state mobyswarm.NodeState, avail mobyswarm.NodeAvailability) mobyswarm.Node {
	return mobyswarm.Node{ID: id, Status: mobyswarm.NodeStatus{State: state}, Spec: mobyswarm.NodeSpec{Availability: avail}}
}

// TestCount: replicas against the replica count; a global service's against the eligible nodes
// (ready and active) Swarm has a task for; only running tasks on the image's digest count.
func TestCount(t *testing.T) {
	run, shut := mobyswarm.TaskStateRunning, mobyswarm.TaskStateShutdown
	three := uint64(3)
	rep := mobyswarm.Service{Spec: mobyswarm.ServiceSpec{Mode: mobyswarm.ServiceMode{Replicated: &mobyswarm.ReplicatedService{Replicas: &three}}}}
	glob := mobyswarm.Service{Spec: mobyswarm.ServiceSpec{Mode: mobyswarm.ServiceMode{Global: &mobyswarm.GlobalService{}}}}
	tasks := []mobyswarm.Task{
		task("n1", newRef, run, run),
		task("n2", newRef, run, mobyswarm.TaskStatePreparing),
		task("n3", oldRef, run, run),
		task("n1", oldRef, shut, mobyswarm.TaskStateShutdown),
		task("n4", newRef, run, run), // on a node that is down
	}
	nodes := []mobyswarm.Node{
		node("n1", mobyswarm.NodeStateReady, mobyswarm.NodeAvailabilityActive),
		node("n2", mobyswarm.NodeStateReady, mobyswarm.NodeAvailabilityActive),
		node("n3", mobyswarm.NodeStateReady, mobyswarm.NodeAvailabilityActive),
		node("n4", mobyswarm.NodeStateDown, mobyswarm.NodeAvailabilityActive),
		node("n5", mobyswarm.NodeStateReady, mobyswarm.NodeAvailabilityDrain),
	}
	if got := count(rep, tasks, nodes, newRef); got != (Replicas{Desired: 3, Running: 2}) {
		t.Errorf("replicated: count = %+v, want 2 of 3", got)
	}
	if got := count(glob, tasks, nodes, newRef); got != (Replicas{Global: true, Desired: 3, Running: 1}) {
		t.Errorf("global: count = %+v, want 1 of 3 eligible nodes", got)
	}
	if !runsOther(tasks, newRef) || runsOther(tasks[:2], newRef) {
		t.Error("runsOther does not tell a running task on another digest")
	}
}
