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

// removeWait bounds the wait for a container that is going away (AutoRemove, removal in progress).
const removeWait = 30 * time.Second

// Engine error messages that share status 409 (see engine-and-registry-facts.md §1): a 409 is
// decided by its message and a fresh inspect, never by the status alone.
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

// byLabel lists every container (any state) whose LabelTxID is value.
func (t *txn) byLabel(ctx context.Context, value string) ([]container.Summary, error) {
	res, err := t.m.d.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelTxID+"="+value)})
	return res.Items, err
}

// waitRemoved registers a wait for id's removal. Call it before the action that removes it.
// The returned func waits (bounded) and reports nil when the container is gone.
func (t *txn) waitRemoved(ctx context.Context, id string) func() error {
	wctx, cancel := context.WithTimeout(ctx, removeWait)
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
			return fmt.Errorf("waiting for removal of %s: %w", shortID(id), err)
		}
	}
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
	if ins.HostConfig != nil && ins.HostConfig.AutoRemove && ins.State != nil {
		wait := t.waitRemoved(ctx, id)
		switch ins.State.Status {
		case container.StateCreated, container.StateDead:
			// AutoRemove acts only on a container that ran; dead means its removal failed.
			err = t.forceRemove(ctx, id)
		case container.StateExited, container.StateRemoving:
			// the engine is removing it (or about to)
		default:
			_, err = t.m.d.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &stopTimeout})
			if cerrdefs.IsNotFound(err) || isRemovalInProgress(err) {
				err = nil
			}
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
	return t.forceRemove(ctx, id)
}

// forceRemove removes id with force (never its volumes); gone and going away are success.
func (t *txn) forceRemove(ctx context.Context, id string) error {
	_, err := t.m.d.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case isRemovalInProgress(err):
		return t.waitRemoved(ctx, id)()
	}
	return err
}

// claimName gives container id the name, if the only holder of that name is something this
// transaction may move: the replaced container while the engine removes it (waited for) or a
// container of this transaction (removed). A foreign holder is an *Error (CreateContainerError):
// it is never touched.
func (t *txn) claimName(ctx context.Context, id, name string, stage failure.Stage) error {
	for attempt := 0; ; attempt++ {
		ins, err := t.inspect(ctx, id)
		if err != nil {
			return err
		}
		if strings.TrimPrefix(ins.Name, "/") == name {
			return nil
		}
		_, err = t.m.d.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name})
		if err == nil || !isNameInUse(err) || attempt >= 5 {
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
				if err := t.goAway(ctx, holder.ID, "", 0); err != nil {
					return err
				}
				continue
			}
			if _, err := t.m.d.ContainerRename(ctx, holder.ID, client.ContainerRenameOptions{NewName: asideName(t.r.Name, t.r.TxID)}); err != nil {
				return err
			}
		case holder.Config != nil && strings.HasPrefix(holder.Config.Labels[LabelTxID], t.r.TxID):
			if err := t.goAway(ctx, holder.ID, holder.Config.Labels[LabelTxID], 0); err != nil {
				return err
			}
		default:
			reason := failure.CreateContainerError
			if stage == failure.StageRollback {
				reason = failure.RollbackFailed
			}
			return newError(t.r.ContainerID, stage, reason,
				fmt.Sprintf("name %q is held by container %s, which this update did not create; left alone", name, shortID(holder.ID)), err)
		}
	}
}

// isCtxErr reports whether err is only the context ending.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
