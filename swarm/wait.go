package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	mobyswarm "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// Waiting for Swarm. Swarm rolls an update out on its own, with the service's UpdateConfig
// (parallelism, delay, order, failure_action, monitor), and says how it went in the service's
// UpdateStatus: updating, then completed, paused, or rollback_started and rollback_completed (or
// rollback_paused). The wait reads that status every Options.Poll until it says the update ended
// or the deadline passes. Two things make a status not the answer:
//
//   - it belongs to an earlier update: its StartedAt is the one journaled before ours was sent
//     (Swarm may not have started rolling ours out yet);
//   - there is none: Swarm clears it when a spec changes, until a rollout starts.
//
// Then the tasks answer: the update has converged when every replica (every eligible node, for
// a global service) runs a task on the new digest and no running task is on another one.
// Every call to the manager is bounded, so a manager or node that does not answer never holds
// the wait past its deadline by more than one call's bound.

// callBound bounds each call to the manager while waiting, within [minCall, maxCall].
const (
	minCall = 2 * time.Second
	maxCall = 15 * time.Second
)

// verdict is what one look at the service says about the update.
type verdict struct {
	done    bool
	outcome Outcome
	err     *Error
	message string // Swarm's message, when it has one
}

// finish waits for rec's update and ends it: the journal record is forgotten, except when the
// watcher stops meanwhile (the next start resumes the wait) or the manager cannot be read at
// the deadline (recovery finishes it once the manager answers).
func (m *Manager) finish(ctx context.Context, rec *record, start time.Time) Result {
	res := m.wait(ctx, rec)
	res.Duration = time.Since(start)
	if res.Err == nil || (res.Err.Reason != failure.Interrupted && !res.unread) {
		m.forget(rec)
	}
	l := m.log.With("service", rec.Name, "id", short(rec.ServiceID), "outcome", res.Outcome, "running", res.Replicas.Running,
		"desired", res.Replicas.Desired, "duration", res.Duration.Round(time.Millisecond))
	if res.Err != nil {
		l.Warn("service update ended", "reason", res.Err.Reason, "err", res.Err.Message)
	} else {
		l.Info("service update ended", "message", res.Message)
	}
	return res.Result
}

// waitResult is a Result and whether the manager could not be read at the end.
type waitResult struct {
	Result
	unread bool
}

// wait polls the service until its update has ended or rec.Deadline has passed.
func (m *Manager) wait(ctx context.Context, rec *record) waitResult {
	res := waitResult{Result: Result{TxID: rec.TxID, ServiceID: rec.ServiceID, Name: rec.Name, Outcome: OutcomeFailed,
		Previous: rec.Previous, Image: rec.Image, Version: rec.Version}}
	var last *mobyswarm.Service
	var lastErr error
	firstMessage := ""
	for {
		svc, err := m.lookAt(ctx, rec)
		switch {
		case cerrdefs.IsNotFound(err):
			res.Err = fail(failure.ServiceChanged, "the service was removed while the watcher waited for its update")
			return res
		case err == nil:
			last, lastErr = &svc, nil
			v := judge(svc, rec)
			if firstMessage == "" && v.message != "" && svc.UpdateStatus != nil && svc.UpdateStatus.State == mobyswarm.UpdateStateRollbackStarted {
				firstMessage = v.message // why Swarm rolled back; its completion only says "rollback completed"
			}
			if v.done || m.converged(ctx, rec, svc, &res.Replicas) {
				return m.ended(ctx, rec, svc, v, firstMessage, res)
			}
		default:
			lastErr = err
		}
		if ctx.Err() != nil {
			res.Err = fail(failure.Interrupted, "the watcher stopped while Swarm rolled the update out; its next start waits for it (until %s) instead of updating again",
				rec.Deadline.Format(time.RFC3339))
			return res
		}
		remaining := time.Until(rec.Deadline)
		if remaining <= 0 {
			return m.timedOut(ctx, rec, last, lastErr, res)
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(m.o.Poll, remaining)):
		}
	}
}

// lookAt reads the service, within one call's bound.
func (m *Manager) lookAt(ctx context.Context, rec *record) (mobyswarm.Service, error) {
	cctx, cancel := context.WithTimeout(ctx, callBound(rec.Deadline))
	defer cancel()
	return m.inspect(cctx, rec.ServiceID)
}

func callBound(deadline time.Time) time.Duration {
	return min(max(time.Until(deadline), minCall), maxCall)
}

// judge reads the update's end from the service alone: its spec's image and UpdateStatus.
//
//   - The spec has the update's image: Swarm's completed (rollback_completed, for a rollback the
//     watcher asked for) is the end, paused (rollback_paused) a paused end; anything else, or no
//     status of this update yet, is still waiting (and the tasks may show it converged).
//   - The spec has the image before (an update): Swarm's own rollback runs; rollback_completed
//     is its end, rollback_paused a paused one.
//   - Anything else: someone changed the service's image meanwhile, and their change stands.
func judge(svc mobyswarm.Service, rec *record) verdict {
	cur := image(svc.Spec)
	var state mobyswarm.UpdateState
	msg := ""
	if st := svc.UpdateStatus; fresh(st, rec) {
		state, msg = st.State, st.Message
	}
	switch {
	case cur == rec.Image:
		switch state {
		case mobyswarm.UpdateStateCompleted, mobyswarm.UpdateStateRollbackCompleted:
			return verdict{done: true, outcome: OutcomeUpdated, message: msg}
		case mobyswarm.UpdateStatePaused, mobyswarm.UpdateStateRollbackPaused:
			return verdict{done: true, outcome: OutcomeFailed, message: msg,
				err: fail(failure.ServicePaused, "Swarm paused the update (%s): %s; the service stays as Swarm left it", state, msg)}
		}
		return verdict{message: msg}
	case cur == rec.Previous && !rec.Rollback:
		switch state {
		case mobyswarm.UpdateStateRollbackStarted:
			return verdict{message: msg}
		case mobyswarm.UpdateStateRollbackCompleted:
			return verdict{done: true, outcome: OutcomeRolledBack, message: msg,
				err: fail(failure.ServiceRolledBack, "Swarm rolled the update back: %s", msg)}
		case mobyswarm.UpdateStateRollbackPaused:
			return verdict{done: true, outcome: OutcomeFailed, message: msg,
				err: fail(failure.ServicePaused, "Swarm paused its rollback of the update: %s; the service stays as Swarm left it", msg)}
		}
	}
	return verdict{done: true, outcome: OutcomeFailed, err: fail(failure.ServiceChanged,
		"the service's image was changed to %s outside the watcher while it waited; that change stands", cur)}
}

// fresh reports whether st is a status of this update (or of one Swarm started after it), not
// the one the service had before it was sent.
func fresh(st *mobyswarm.UpdateStatus, rec *record) bool {
	return st != nil && (rec.Before == nil || st.StartedAt == nil || !st.StartedAt.Equal(rec.Before.StartedAt))
}

// converged reports whether, with no status of this update to go by, the tasks show it done;
// it fills r with what it counted.
func (m *Manager) converged(ctx context.Context, rec *record, svc mobyswarm.Service, r *Replicas) bool {
	if fresh(svc.UpdateStatus, rec) {
		return false // Swarm reports this update: its status decides
	}
	if image(svc.Spec) != rec.Image {
		return false
	}
	tasks, nodes, err := m.tasks(ctx, rec, svc)
	if err != nil {
		return false
	}
	*r = count(svc, tasks, nodes, rec.Image)
	return r.Desired > 0 && r.Running == r.Desired && !runsOther(tasks, rec.Image)
}

// ended is the result of an update that ended (v.done), or converged without a status.
func (m *Manager) ended(ctx context.Context, rec *record, svc mobyswarm.Service, v verdict, why string, res waitResult) waitResult {
	if !v.done {
		v = verdict{done: true, outcome: OutcomeUpdated, message: "every task runs the new image"}
	}
	res.Outcome, res.Err, res.Message = v.outcome, v.err, v.message
	if why != "" && v.outcome == OutcomeRolledBack {
		res.Message = why
		res.Err = fail(failure.ServiceRolledBack, "Swarm rolled the update back: %s", why)
	}
	want := rec.Image
	if v.outcome == OutcomeRolledBack {
		want = rec.Previous
	}
	if tasks, nodes, err := m.tasks(ctx, rec, svc); err == nil {
		res.Replicas = count(svc, tasks, nodes, want)
	}
	return res
}

// timedOut is the result of an update that did not end by its deadline: how far it got, what
// Swarm says, and which nodes are down.
func (m *Manager) timedOut(ctx context.Context, rec *record, last *mobyswarm.Service, lastErr error, res waitResult) waitResult {
	timeout := rec.Deadline.Sub(rec.Started).Round(time.Second)
	if last == nil || lastErr != nil {
		res.unread = last == nil
		res.Err = fail(failure.ServiceUpdateTimeout, "no end of the update within %s: the manager does not answer (%v)", timeout, lastErr)
		return res
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no convergence within %s", timeout)
	tasks, nodes, err := m.tasks(context.WithoutCancel(ctx), rec, *last)
	if err == nil {
		res.Replicas = count(*last, tasks, nodes, rec.Image)
		fmt.Fprintf(&b, ": %d of %d %s run %s", res.Replicas.Running, res.Replicas.Desired, unit(res.Replicas), shortDigest(digestOf(rec.Image)))
	}
	if down := downNodes(nodes); len(down) > 0 {
		fmt.Fprintf(&b, "; nodes not ready: %s", strings.Join(down, ", "))
	}
	if st := last.UpdateStatus; st != nil {
		fmt.Fprintf(&b, "; Swarm's update is %s (%s)", st.State, st.Message)
	}
	b.WriteString("; Swarm goes on rolling it out, the watcher no longer waits")
	res.Err = &Error{Reason: failure.ServiceUpdateTimeout, Message: b.String()}
	return res
}

func unit(r Replicas) string {
	if r.Global {
		return "eligible nodes"
	}
	return "replicas"
}

// tasks lists the service's tasks and, for a global service or a report of a timeout, the nodes.
func (m *Manager) tasks(ctx context.Context, rec *record, svc mobyswarm.Service) ([]mobyswarm.Task, []mobyswarm.Node, error) {
	cctx, cancel := context.WithTimeout(ctx, callBound(rec.Deadline))
	defer cancel()
	tl, err := m.d.TaskList(cctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svc.ID)})
	if err != nil {
		return nil, nil, err
	}
	nl, err := m.d.NodeList(cctx, client.NodeListOptions{})
	if err != nil {
		return tl.Items, nil, nil // nodes only refine the count
	}
	return tl.Items, nl.Items, nil
}

// count counts the service's tasks that run image (by its digest) against the replicas it
// should have: its replica count, or for a global service the eligible nodes (ready, active)
// Swarm has a task for.
func count(svc mobyswarm.Service, tasks []mobyswarm.Task, nodes []mobyswarm.Node, image string) Replicas {
	want := digestOf(image)
	var r Replicas
	running := map[string]bool{} // node or slot -> runs image
	if svc.Spec.Mode.Global != nil {
		r.Global = true
		eligible := map[string]bool{}
		for _, n := range nodes {
			eligible[n.ID] = n.Status.State == mobyswarm.NodeStateReady && n.Spec.Availability == mobyswarm.NodeAvailabilityActive
		}
		seen := map[string]bool{}
		for _, t := range tasks {
			if t.DesiredState == mobyswarm.TaskStateRunning && (nodes == nil || eligible[t.NodeID]) {
				seen[t.NodeID] = true
			}
			if isRunning(t) && want != "" && digestOf(taskImage(t)) == want {
				running[t.NodeID] = true
			}
		}
		r.Desired = len(seen)
		for n := range running {
			if seen[n] {
				r.Running++
			}
		}
		return r
	}
	if svc.Spec.Mode.Replicated != nil && svc.Spec.Mode.Replicated.Replicas != nil {
		r.Desired = int(*svc.Spec.Mode.Replicated.Replicas)
	}
	for _, t := range tasks {
		if isRunning(t) && want != "" && digestOf(taskImage(t)) == want {
			r.Running++
		}
	}
	return r
}

// runsOther reports whether a task runs (and should run) an image other than image.
func runsOther(tasks []mobyswarm.Task, image string) bool {
	return slices.ContainsFunc(tasks, func(t mobyswarm.Task) bool {
		return isRunning(t) && digestOf(taskImage(t)) != digestOf(image)
	})
}

func isRunning(t mobyswarm.Task) bool {
	return t.DesiredState == mobyswarm.TaskStateRunning && t.Status.State == mobyswarm.TaskStateRunning
}

func taskImage(t mobyswarm.Task) string {
	if t.Spec.ContainerSpec == nil {
		return ""
	}
	return t.Spec.ContainerSpec.Image
}

// downNodes names the nodes that are not ready, with their state and address.
func downNodes(nodes []mobyswarm.Node) []string {
	var out []string
	for _, n := range nodes {
		if n.Status.State != mobyswarm.NodeStateReady {
			out = append(out, fmt.Sprintf("%s (%s, %s)", n.Description.Hostname, n.Status.State, n.Status.Addr))
		}
	}
	slices.Sort(out)
	return out
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	if d == "" {
		return "an unpinned image"
	}
	return d
}
