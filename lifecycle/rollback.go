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
//
// Two cases end otherwise. When the old container cannot run again because the container whose
// namespaces it shares is gone (replaced earlier in the run) and the failure says nothing
// against the new container, the update is rolled forward instead (rollForward). When a
// container the watcher did not create holds the name, none of ours is started beside it: what
// is left of ours stays stopped and aside, and the transaction ends failed, reported once
// (keptAside).
func (t *txn) rollback(ctx context.Context, cause *Error) Result {
	r := t.r
	if cause != nil && (r.Cause == nil || r.Step != stepRollback && r.Step != stepRollbackRemove && r.Step != stepRollbackRestore && r.Step != stepRollbackStart) {
		r.Cause = causeOf(cause)
	}
	if why := t.cannotGoBack(ctx); why != "" {
		return t.rollForward(ctx, why)
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
		var held *heldName
		if errors.As(err, &held) {
			return t.keptAside(e, held)
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

// keptAside ends a rollback that found the name held by a container the watcher did not create.
// Trying again on every start would change nothing and could start ours beside it, so the
// transaction is finished (failed, RollbackFailed) and reported this once, saying what was kept
// where and what the user can do.
func (t *txn) keptAside(e *Error, held *heldName) Result {
	kept := held.kept
	if kept == "" {
		kept = "nothing of the old container is left to start (its configuration is in the journal record of transaction " + t.r.TxID + ")"
	}
	e.Message = fmt.Sprintf("%s; %s; nothing of ours was started beside it, as both would use the same volumes: remove or rename %s, then rename and start ours by hand",
		e.Message, kept, shortID(held.holder))
	t.log().Error("ROLLBACK FAILED: the name is held by a container the watcher did not create; reported once, not retried", "err", e)
	return t.finish(e, OutcomeFailed)
}

// cannotGoBack says why the old container cannot run again while the new one can take its
// place, or "": the old container shares the network, IPC or PID namespace of a container that
// is gone (replaced earlier in this run: Spec.Replaced maps it, so the new container joins the
// replacement's), and the failure says nothing against the new container (an interruption, a
// fault of the engine, the connection or the journal — not a verdict: errRecord.Verdict).
// Rolled forward once only.
func (t *txn) cannotGoBack(ctx context.Context) string {
	r := t.r
	if t.forwarded || len(r.Spec.Replaced) == 0 || (r.Cause != nil && r.Cause.Verdict) {
		return ""
	}
	old, err := r.snapshot()
	if err != nil || old.HostConfig == nil {
		return ""
	}
	hc := old.HostConfig
	for _, mode := range []string{string(hc.NetworkMode), string(hc.IpcMode), string(hc.PidMode)} {
		ref, ok := strings.CutPrefix(mode, "container:")
		if !ok || lookupReplaced(ref, r.Spec.Replaced) == "" {
			continue
		}
		if _, err := t.inspect(ctx, ref); cerrdefs.IsNotFound(err) {
			return "the old container shares the namespaces of container " + shortID(ref) + ", which was replaced and is gone: it cannot run again"
		}
	}
	return ""
}

// isVerdict: a failure of this reason is the new container's own (it did not run, exited, was
// killed for memory, is unhealthy or crash-loops) — unless the start was never tried
// (Error.notTried).
func isVerdict(reason failure.Reason) bool {
	switch reason {
	case failure.RunContainerError, failure.ContainerExited, failure.OOMKilled, failure.Unhealthy, failure.CrashLoop:
		return true
	}
	return false
}

// rollForward finishes the update instead of undoing it (see advance): the new container takes
// the name, runs and is verified; if that fails, the rollback that follows does not roll
// forward again.
func (t *txn) rollForward(ctx context.Context, why string) Result {
	t.forwarded = true
	t.log().Warn("rolling the update forward instead of back: " + why)
	old, err := t.r.snapshot()
	if err != nil {
		return t.rollback(ctx, newError(t.r.ContainerID, failure.StageRollback, failure.RollbackFailed, "the journal's snapshot is unreadable", err))
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
	}
	return t.advance(ctx, old)
}

func (t *txn) undo(ctx context.Context) error {
	r := t.r
	stop := t.stopTimeoutSeconds()
	oldGone, err := t.oldGone(ctx)
	if err != nil {
		return err
	}
	if oldGone {
		// Nothing to put back but the snapshot: if a container the watcher did not create took
		// the name, ours (the new one, which holds the volumes) is kept where it is, not started
		// — and stopped, if a start-first update had started it: never two writers.
		if held, err := t.nameHeld(ctx); err != nil || held != nil {
			if held != nil {
				t.stopOurs(ctx, r.NewID)
				held.kept = t.describeKept(ctx, r.NewID, "the new container")
				return newError(r.ContainerID, failure.StageRollback, failure.RollbackFailed, "", held)
			}
			return err
		}
	}

	// 1. remove what this transaction created (the new container) — a start-first update's old
	// container, still running, first back on its networks, so its aliases never go unanswered
	t.journalOnRollback(stepRollbackRemove)
	if r.Disconnected && !oldGone {
		if err := t.reconnectOld(ctx); err != nil {
			return err
		}
	}
	mine, err := t.mine(ctx, r.TxID)
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
	if !oldGone {
		if err := t.claimName(ctx, r.ContainerID, r.Name, failure.StageRollback); err != nil {
			var held *heldName
			if errors.As(err, &held) {
				if r.Spec.StartFirst {
					// A start-first update never stopped it, or not yet: two writers otherwise.
					t.stopOurs(ctx, r.ContainerID)
				}
				held.kept = t.describeKept(ctx, r.ContainerID, "the old container")
			}
			return err
		}
	} else {
		id, err := t.restore(ctx)
		if err != nil {
			return err
		}
		target = id
	}

	// 3. start it and see it run
	t.journalOnRollback(stepRollbackStart)
	if !r.WasRunning {
		return nil
	}
	for attempt := 1; ; attempt++ {
		if _, err := t.m.d.ContainerStart(ctx, target, client.ContainerStartOptions{}); err != nil && !t.running(ctx, target) {
			return fmt.Errorf("starting the old container: %w", err) // (a lost answer to a start that happened is not a failure)
		}
		e := verifyRunning(ctx, t, r.ContainerID, target, restoreVerify, restoreVerify, nil)
		if e == nil || e.Reason == failure.Unhealthy {
			// An old container that was unhealthy before may stay so; one that runs is back.
			return nil
		}
		// A stop still in flight from an interrupted run (a crashed watcher's request the
		// engine carried on with) can stop it again right after the start: try again.
		if attempt >= 3 || e.Reason != failure.ContainerExited {
			return fmt.Errorf("old container does not run after rollback: %s", oneLine(e))
		}
	}
}

// oldGone reports whether the replaced container is gone, waiting for an AutoRemove container
// the engine is removing (or about to). Gone is asked twice before it is believed: recreating a
// container that is in fact still there would give the service two.
func (t *txn) oldGone(ctx context.Context) (bool, error) {
	r := t.r
	ins, err := t.inspect(ctx, r.ContainerID)
	if err == nil && goingAway(ins) {
		// An AutoRemove container stopped by an interrupted run: let it go, then recreate it.
		if err := t.goAway(ctx, r.ContainerID, "", t.stopTimeoutSeconds()); err != nil {
			return false, err
		}
		_, err = t.inspect(ctx, r.ContainerID)
	}
	if cerrdefs.IsNotFound(err) {
		_, err = t.inspect(ctx, r.ContainerID)
	}
	switch {
	case err == nil:
		return false, nil
	case cerrdefs.IsNotFound(err):
		return true, nil
	}
	return false, err
}

// nameHeld returns the name's holder when it is neither the old container nor one of this
// transaction's, else nil.
func (t *txn) nameHeld(ctx context.Context) (*heldName, error) {
	r := t.r
	holder, err := t.inspect(ctx, r.Name)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case holder.ID == r.ContainerID || t.oursInspect(holder):
		return nil, nil
	}
	return &heldName{name: r.Name, holder: holder.ID}, nil
}

// stopOurs stops container id, this transaction's new one or the one it replaces, if it runs
// (a failure is logged: describeKept then says it runs).
func (t *txn) stopOurs(ctx context.Context, id string) {
	if id == "" || !t.running(ctx, id) {
		return
	}
	timeout := t.stopTimeoutSeconds()
	if _, err := t.m.d.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout}); err != nil && t.running(ctx, id) {
		t.log().Error("stopping our container beside a container that took the name failed", "stopped", shortID(id), "err", err)
	}
}

// describeKept says where container id (what) is and whether it runs, for keptAside.
func (t *txn) describeKept(ctx context.Context, id, what string) string {
	if id == "" {
		return ""
	}
	ins, err := t.inspect(ctx, id)
	if err != nil || ins.State == nil {
		return ""
	}
	state := "kept stopped"
	if ins.State.Running {
		state = "left running (it was not stopped by this update)"
	}
	return fmt.Sprintf("%s %s is %s as %q", what, shortID(id), state, strings.TrimPrefix(ins.Name, "/"))
}

// journalOnRollback journals a rollback step. A rollback goes on when the write fails: putting
// the old container back matters more than the record, and an unfinished record only makes the
// next start run the (idempotent) rollback again. The failure is logged.
func (t *txn) journalOnRollback(step string) {
	if err := t.journal(step); err != nil {
		t.log().Error("journal write failed during rollback; rolling back all the same", "step", step, "err", err)
	}
}

// restore recreates the old container from the snapshot on the old image, under a temporary
// name and then its own, or finds the one this rollback recreated already. The old image is
// tagged back as the container's reference so the container keeps it.
func (t *txn) restore(ctx context.Context) (string, error) {
	r := t.r
	if mine, err := t.mine(ctx, restoredLabel(r.TxID)); err == nil && len(mine) > 0 {
		r.RestoredID = mine[0].ID
	} else {
		if held, err := t.nameHeld(ctx); err != nil || held != nil {
			if held != nil {
				return "", newError(r.ContainerID, failure.StageRollback, failure.RollbackFailed, "", held)
			}
			return "", err
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
		plan, err := t.plan(ctx, old, image, nil, restoredLabel(r.TxID))
		if err != nil {
			return "", err
		}
		id, err := t.createFrom(ctx, restoreName(r.Name, r.TxID), plan)
		if id != "" {
			r.RestoredID = id
			t.journalOnRollback(stepRollbackRestore)
		}
		if err != nil {
			return "", fmt.Errorf("recreating the old container from its snapshot: %w", err)
		}
	}
	if err := t.claimName(ctx, r.RestoredID, r.Name, failure.StageRollback); err != nil {
		var held *heldName
		if errors.As(err, &held) {
			held.kept = t.describeKept(ctx, r.RestoredID, "the old container, recreated from its snapshot,")
		}
		return "", err
	}
	return r.RestoredID, nil
}

// goingAway: the engine is removing the container, or will (a stopped AutoRemove container), or
// tried and failed (dead: it can never run again, only be removed). Volumes are never removed
// with it, and the snapshot brings it back.
func goingAway(ins container.InspectResponse) bool {
	if ins.State == nil {
		return false
	}
	switch ins.State.Status {
	case container.StateRemoving, container.StateDead:
		return true
	}
	autoRemove := ins.HostConfig != nil && ins.HostConfig.AutoRemove
	return autoRemove && ins.State.Status == container.StateExited
}

func containsID(cs []container.Summary, id string) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}
