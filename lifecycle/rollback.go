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

// restoreVerify is how long a restored old container must keep running.
const restoreVerify = 500 * time.Millisecond

// fail undoes the transaction after a failure in create..verify. If the caller's context has
// ended (graceful stop), the undo runs on a detached, bounded context so the service is not
// left down; if even that fails the journal keeps the transaction for Recover.
func (t *txn) fail(ctx context.Context, cause *Error) Result {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
		if cause.Reason != failure.Interrupted {
			cause = newError(cause.ContainerID, cause.Stage, failure.Interrupted, "update interrupted: "+oneLine(cause), cause.Err)
		}
	}
	t.log().Warn("update failed; rolling back", "err", cause)
	return t.rollback(ctx, cause)
}

// rollback puts the old container back: it removes every container this transaction created
// first (freeing the name and any static IP), renames the old container back and starts it, or
// recreates it from the snapshot on the old image when it is gone (AutoRemove), and sees it run.
// Each step re-reads the engine, so a rollback interrupted at any point can simply run again.
func (t *txn) rollback(ctx context.Context, cause *Error) Result {
	r := t.r
	if cause != nil && (r.Cause == nil || r.Step != stepRollback && r.Step != stepRollbackRemove && r.Step != stepRollbackRestore && r.Step != stepRollbackStart) {
		r.Cause = &errRecord{Stage: cause.Stage, Reason: cause.Reason, Message: oneLine(cause)}
	}
	t.journalOnRollback(stepRollback)
	if err := t.undo(ctx); err != nil {
		e := asError(err, r.ContainerID, failure.StageRollback, failure.RollbackFailed, "")
		if e.Reason != failure.RollbackFailed {
			e = newError(r.ContainerID, failure.StageRollback, failure.RollbackFailed, oneLine(e), e)
		}
		if r.Cause != nil {
			e.Message = fmt.Sprintf("%s (after %s/%s: %s)", e.Message, r.Cause.Stage, r.Cause.Reason, r.Cause.Message)
		}
		// The journal keeps the transaction unfinished: Recover tries again.
		t.log().Error("ROLLBACK FAILED: a human must look at this container", "err", e)
		res := r.result()
		res.Outcome = OutcomeFailed
		res.Err = e
		return res
	}
	r.Outcome = OutcomeRolledBack
	t.journalOnRollback(stepDone)
	res := r.result()
	t.log().Info("update rolled back", "err", errString(res.Err))
	return res
}

func (t *txn) undo(ctx context.Context) error {
	r := t.r
	stop := t.stopTimeoutSeconds()

	// 1. remove what this transaction created (the new container)
	t.journalOnRollback(stepRollbackRemove)
	mine, err := t.byLabel(ctx, r.TxID)
	if err != nil {
		return err
	}
	if r.NewID != "" && !containsID(mine, r.NewID) {
		mine = append(mine, container.Summary{ID: r.NewID})
	}
	for _, c := range mine {
		if err := t.goAway(ctx, c.ID, r.TxID, stop); err != nil {
			return fmt.Errorf("removing new container %s: %w", shortID(c.ID), err)
		}
	}
	r.NewID = ""

	// 2. the old container back under its name, or recreated from the snapshot
	t.journalOnRollback(stepRollbackRestore)
	target := r.ContainerID
	var nameErr error // the old container runs even if a foreign container took its name
	ins, err := t.inspect(ctx, r.ContainerID)
	if err == nil && goingAway(ins) {
		// An AutoRemove container stopped by an interrupted run: let it go, then recreate it.
		if err := t.goAway(ctx, r.ContainerID, "", stop); err != nil {
			return err
		}
		_, err = t.inspect(ctx, r.ContainerID)
	}
	switch {
	case err == nil:
		if err := t.claimName(ctx, r.ContainerID, r.Name, failure.StageRollback); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				return err
			}
			nameErr = e
		}
	case cerrdefs.IsNotFound(err):
		id, err := t.restore(ctx)
		if err != nil {
			return err
		}
		target = id
	default:
		return err
	}

	// 3. start it and see it run
	t.journalOnRollback(stepRollbackStart)
	if !r.WasRunning {
		return nameErr
	}
	for attempt := 1; ; attempt++ {
		if _, err := t.m.d.ContainerStart(ctx, target, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("starting the old container: %w", err)
		}
		e := verifyRunning(ctx, t, r.ContainerID, target, restoreVerify, restoreVerify, nil)
		if e == nil || e.Reason == failure.Unhealthy {
			// An old container that was unhealthy before may stay so; one that runs is back.
			return nameErr
		}
		// A stop still in flight from an interrupted run (a crashed watcher's request the
		// engine carried on with) can stop it again right after the start: try again.
		if attempt >= 3 || e.Reason != failure.ContainerExited {
			return fmt.Errorf("old container does not run after rollback: %s", oneLine(e))
		}
	}
}

// journalOnRollback journals a rollback step. A rollback goes on when the write fails: putting
// the old container back matters more than the record, and an unfinished record only makes the
// next start run the (idempotent) rollback again. The failure is logged.
func (t *txn) journalOnRollback(step string) {
	if err := t.journal(step); err != nil {
		t.log().Error("journal write failed during rollback; rolling back all the same", "step", step, "err", err)
	}
}

// restore recreates the old container from the snapshot on the old image, under its name. The
// old image is tagged back as the container's reference so the container keeps it.
func (t *txn) restore(ctx context.Context) (string, error) {
	r := t.r
	if mine, err := t.byLabel(ctx, restoredLabel(r.TxID)); err == nil && len(mine) > 0 {
		r.RestoredID = mine[0].ID
		return r.RestoredID, t.claimName(ctx, r.RestoredID, r.Name, failure.StageRollback)
	}
	old, err := r.snapshot()
	if err != nil || old.Config == nil {
		return "", fmt.Errorf("old container is gone and its snapshot is unreadable: %v", err)
	}
	image := old.Config.Image
	if img, err := t.m.d.ImageInspect(ctx, image); err != nil || img.ID != r.OldImageID {
		if _, err := t.m.d.ImageTag(ctx, client.ImageTagOptions{Source: r.OldImageID, Target: image}); err != nil {
			image = r.OldImageID // the reference cannot point at the old image: use its ID
		}
	}
	plan, err := buildCreate(old, r.configuredMAC(), r.OldImage, image, nil, t.m.d.ClientVersion(), restoredLabel(r.TxID))
	if err != nil {
		return "", err
	}
	opts := client.ContainerCreateOptions{Name: r.Name, Config: plan.Config, HostConfig: plan.Host, NetworkingConfig: plan.Network}
	res, err := t.m.d.ContainerCreate(ctx, opts)
	if isNameInUse(err) {
		// Only a container of this transaction may be moved out of the way.
		holder, herr := t.inspect(ctx, r.Name)
		if herr == nil && holder.Config != nil && strings.HasPrefix(holder.Config.Labels[LabelTxID], r.TxID) {
			if gerr := t.goAway(ctx, holder.ID, holder.Config.Labels[LabelTxID], t.stopTimeoutSeconds()); gerr != nil {
				return "", gerr
			}
			res, err = t.m.d.ContainerCreate(ctx, opts)
		} else if herr == nil {
			return "", newError(r.ContainerID, failure.StageRollback, failure.RollbackFailed,
				fmt.Sprintf("name %q is held by container %s, which this update did not create; left alone", r.Name, shortID(holder.ID)), err)
		}
	}
	if err != nil {
		return "", fmt.Errorf("recreating the old container from its snapshot: %w", err)
	}
	r.RestoredID = res.ID
	for n, ep := range plan.Connect {
		if _, err := t.m.d.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: ep}); err != nil {
			return "", fmt.Errorf("connecting network %s: %w", n, err)
		}
	}
	t.journalOnRollback(stepRollbackRestore)
	return res.ID, nil
}

// goingAway: the engine is removing the container, or will (a stopped AutoRemove container).
func goingAway(ins container.InspectResponse) bool {
	if ins.State == nil {
		return false
	}
	if ins.State.Status == container.StateRemoving {
		return true
	}
	autoRemove := ins.HostConfig != nil && ins.HostConfig.AutoRemove
	return autoRemove && (ins.State.Status == container.StateExited || ins.State.Status == container.StateDead)
}

func containsID(cs []container.Summary, id string) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}
