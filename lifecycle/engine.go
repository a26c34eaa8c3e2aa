package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// removeWait bounds the wait for a container that is going away (AutoRemove, removal in progress)
// once it no longer runs.
const removeWait = 30 * time.Second

// defaultStopMargin is added to a container's stop timeout to bound the wait for a stop to end
// (Manager.stopMargin): the engine sends the stop signal, waits the timeout, kills, and then needs
// a moment to reap the process and, for AutoRemove, to start removing the container.
const defaultStopMargin = 10 * time.Second

// pollEvery is how often a wait that cannot rely on the engine's answer (a request cut or timed
// out by a proxy) asks the engine again.
const pollEvery = 250 * time.Millisecond

// inspectTimeout bounds one inspect made while waiting, so a hung request cannot outlast the wait.
const inspectTimeout = 10 * time.Second

// Engine error messages that share status 409 (removal in progress, name in use, not running,
// paused, restarting): a 409 is decided by its message and a fresh inspect, never by the status
// alone.
func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

func isNameInUse(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "is already in use")
}

func (t *txn) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	res, err := t.m.d.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return res.Container, err
}

// ours reports whether a container (its ID, name and LabelTxID) was created by this transaction:
// the journal recorded its ID, or it has this transaction's label AND its exact temporary name —
// a create whose answer the journal never saw. The label alone is not enough: `docker commit`
// images and label-copying clones (Portainer's duplicate, runlike, a copied compose file) carry
// it too, and those are the user's.
func (t *txn) ours(id, name, label string) bool {
	r := t.r
	name = strings.TrimPrefix(name, "/")
	switch {
	case id == "":
		return false
	case id == r.NewID || id == r.RestoredID:
		return true
	case label == r.TxID:
		return name == tempName(r.Name, r.TxID)
	case label == restoredLabel(r.TxID):
		return name == restoreName(r.Name, r.TxID)
	}
	return false
}

func (t *txn) oursInspect(ins container.InspectResponse) bool {
	label := ""
	if ins.Config != nil {
		label = ins.Config.Labels[LabelTxID]
	}
	return t.ours(ins.ID, ins.Name, label)
}

// mine lists the containers (any state) this transaction created with label (r.TxID, or
// restoredLabel(r.TxID)), by txn.ours.
func (t *txn) mine(ctx context.Context, label string) ([]container.Summary, error) {
	res, err := t.m.d.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelTxID+"="+label)})
	if err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range res.Items {
		if t.ours(c.ID, primaryName(c.Names), c.Labels[LabelTxID]) {
			out = append(out, c)
		}
	}
	return out, nil
}

// waitRemoved registers a wait for id's removal, bounded by bound. Call it before the action that
// removes it. The returned func waits and reports nil when the container is gone. When the wait
// request itself fails (a proxy cut it, or its timeout is shorter than the wait), it asks the
// engine until the container is gone or the bound is over.
func (t *txn) waitRemoved(ctx context.Context, id string, bound time.Duration) func() error {
	wctx, cancel := context.WithTimeout(ctx, bound)
	w := t.m.d.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	return func() error {
		defer cancel()
		select {
		case res := <-w.Result:
			if res.Error != nil && res.Error.Message != "" {
				return fmt.Errorf("removal of %s failed: %s", shortID(id), res.Error.Message)
			}
			return nil
		case err := <-w.Error:
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			if perr := t.pollGone(wctx, id); perr != nil {
				return fmt.Errorf("waiting for removal of %s: %w (%v)", shortID(id), perr, err)
			}
			return nil
		}
	}
}

// pollGone asks the engine until container id is gone or ctx ends.
func (t *txn) pollGone(ctx context.Context, id string) error {
	for {
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		_, err := t.inspect(ictx, id)
		cancel()
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// untilStopped waits until container id does not run (or is gone), at most until deadline, and
// reports whether it still runs. Failed inspects are asked again until the deadline: a stop the
// engine may still be carrying out is never judged by one unanswered request. err is the last
// inspect's error when the state could not be read at all.
func (t *txn) untilStopped(ctx context.Context, id string, deadline time.Time) (running bool, err error) {
	for {
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		ins, err := t.inspect(ictx, id)
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			return false, nil
		case err == nil && (ins.State == nil || !ins.State.Running):
			return false, nil
		}
		rest := time.Until(deadline)
		if rest <= 0 || ctx.Err() != nil {
			return err == nil, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(rest, pollEvery)):
		}
	}
}

// stopDeadline is when a stop of the old container asked for now must have ended, if the engine
// received it: its stop timeout plus the margin.
func (t *txn) stopDeadline(from time.Time) time.Time {
	return from.Add(time.Duration(t.stopTimeoutSeconds())*time.Second + t.m.stopMargin)
}

// goAway removes a container this transaction created (it must carry LabelTxID=label) or, with
// label "", the replaced container itself, and returns when it is gone. Stopped AutoRemove
// containers are left to the engine's own removal and only waited for; running ones are stopped
// (the engine then removes them); created ones, which AutoRemove never touches, and dead ones,
// whose removal failed, are removed with force. Volumes are never removed.
func (t *txn) goAway(ctx context.Context, id, label string, stopTimeout int) error {
	ins, err := t.inspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if label != "" && ins.Config.Labels[LabelTxID] != label {
		return fmt.Errorf("refusing to remove container %s: it was not created by transaction %s", shortID(id), label)
	}
	if label == "" && ins.ID != t.r.ContainerID {
		return fmt.Errorf("refusing to remove container %s: not the replaced container", shortID(id))
	}
	if ins.HostConfig == nil || !ins.HostConfig.AutoRemove || ins.State == nil {
		return t.forceRemove(ctx, id)
	}
	wait := t.waitRemoved(ctx, id, time.Duration(stopTimeout)*time.Second+t.m.stopMargin+removeWait)
	switch ins.State.Status {
	case container.StateCreated, container.StateDead:
		// AutoRemove acts only on a container that ran; dead means its removal failed.
		err = t.forceRemove(ctx, id)
	case container.StateExited, container.StateRemoving:
		// the engine is removing it (or about to)
	default:
		// A failed stop request is judged by the wait below: the engine may be stopping it all
		// the same, and removes it when it exits.
		_, _ = t.m.d.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &stopTimeout})
	}
	if err != nil {
		return err
	}
	if err := wait(); err != nil {
		// Bounded wait over: if it is still there (stuck exited, or dead), force it.
		if _, ierr := t.inspect(ctx, id); cerrdefs.IsNotFound(ierr) {
			return nil
		}
		return t.forceRemove(ctx, id)
	}
	return nil
}

// forceRemove removes id with force (never its volumes); gone and going away are success.
func (t *txn) forceRemove(ctx context.Context, id string) error {
	_, err := t.m.d.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case isRemovalInProgress(err):
		return t.waitRemoved(ctx, id, removeWait)()
	}
	return err
}

// heldName is the error of a name this transaction needs that a container it did not create
// holds (a user's container, or a clone of one of ours). That container is never touched, and
// none of ours is started beside it: both would use the same volumes.
type heldName struct {
	name   string
	holder string // its ID
	kept   string // what of ours is left where, set by the rollback that gives up
}

func (h *heldName) Error() string {
	return fmt.Sprintf("name %q is held by container %s, which the watcher did not create; left alone", h.name, shortID(h.holder))
}

// claimName gives container id the name, if the only holder of that name is something this
// transaction may move: the replaced container while the engine removes it (waited for) or not
// yet set aside (renamed aside), or a container of this transaction (removed). A foreign holder is
// an *Error wrapping a *heldName (CreateContainerError, or RollbackFailed in a rollback): it is
// never touched.
//
// The rename is asked first and the engine read only when it fails (one request where all is
// well): the container may have the name already (an interrupted run renamed it), or be gone.
func (t *txn) claimName(ctx context.Context, id, name string, stage failure.Stage) error {
	for attempt := 0; ; attempt++ {
		_, err := t.m.d.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name})
		if err == nil {
			return nil
		}
		ins, ierr := t.inspect(ctx, id)
		if ierr != nil {
			return ierr
		}
		if strings.TrimPrefix(ins.Name, "/") == name {
			return nil
		}
		if !isNameInUse(err) || attempt >= 5 {
			return err
		}
		holder, herr := t.inspect(ctx, name)
		switch {
		case cerrdefs.IsNotFound(herr):
			continue // gone meanwhile
		case herr != nil:
			return herr
		case holder.ID == id:
			return nil
		case holder.ID == t.r.ContainerID:
			// the old container, on its way out (AutoRemove) or not yet set aside
			if holder.HostConfig != nil && holder.HostConfig.AutoRemove {
				if err := t.goAway(ctx, holder.ID, "", t.stopTimeoutSeconds()); err != nil {
					return err
				}
				continue
			}
			if _, err := t.m.d.ContainerRename(ctx, holder.ID, client.ContainerRenameOptions{NewName: asideName(t.r.Name, t.r.TxID)}); err != nil {
				return err
			}
		case t.oursInspect(holder):
			if err := t.goAway(ctx, holder.ID, holder.Config.Labels[LabelTxID], t.stopTimeoutSeconds()); err != nil {
				return err
			}
		default:
			reason := failure.CreateContainerError
			if stage == failure.StageRollback {
				reason = failure.RollbackFailed
			}
			return newError(t.r.ContainerID, stage, reason, "", &heldName{name: name, holder: holder.ID})
		}
	}
}

// isCtxErr reports whether err is only the context ending.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
