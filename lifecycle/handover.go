package lifecycle

// Self-update: the watcher replacing its own container. A plain Replace cannot do it (it would
// stop the process running it at step 4), so the transaction is handed over half-way. P is the
// running watcher (the predecessor), S its successor. Both read the same journal.
//
// P (Handover): snapshot, pull, create S (not started), set P aside, give S the name, journal
// "handover", then release (the caller closes the listener and the store: S needs both), then
// start S. From then on P only waits (the caller's job): S stops and removes P when it commits;
// if S exits or crash-loops instead, P stops it and starts afresh (re-exec), and its Recover
// rolls the record back.
//
// Recover's rules for a handover record at "handover", "verify" or "commit", by who reads it:
//
//	reader        S                      action
//	S itself      -                      verify itself (runs for the window, no restart, SelfCheck), commit: stop + remove P
//	P             running                step back: return OutcomeHandedOver (the caller releases and waits)
//	P             stopped, at commit     start S again (it verified itself), step back
//	P             not running / gone     roll back: remove S, P back under its name (it runs: it is this process)
//	anyone else   as P                   as P, but only P releases and waits (Recover's caller)
//
// Earlier steps are rolled back as for Replace (S never ran), and a rollback in progress is
// finished by whoever reads it. So after a crash of either process at any instant, exactly one
// watcher ends up running: S if it could verify itself, else P.

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// Handover starts the self-update of the watcher's own container s.ContainerID, the container
// this process runs in. release is called once the successor is created and named, after the
// last journal write: it must give up everything the successor needs — the HTTP listener and
// the store (this Manager's journal is not written again) — and return nil, or return an error
// with the store still open, to roll back. Handover then starts the successor and returns
// OutcomeHandedOver; the caller must then only wait for this process to be stopped, and
// restart itself from scratch if the successor stops running (see the package's rules). The
// context release gets carries the successor's verify deadline (SuccessorWait).
//
// A watcher run with AutoRemove (--rm) is not self-updated: once stopped it could not be
// brought back, so Handover refuses before changing anything.
func (m *Manager) Handover(ctx context.Context, s Spec, release func(ctx context.Context, successorID string) error) Result {
	return m.transact(ctx, s, nil, func(t *txn, ctx context.Context) Result { return t.handover(ctx, release) })
}

func (t *txn) handover(ctx context.Context, release func(context.Context, string) error) Result {
	r := t.r
	r.Handover = true
	old, done := t.prepare(ctx)
	if done != nil {
		return *done
	}
	if r.AutoRemove {
		return t.finish(newError(r.ContainerID, failure.StageCheck, failure.Unsupported,
			"the watcher runs with AutoRemove (--rm): a self-update could not bring it back if its successor failed; update it by hand or run it without --rm", nil), OutcomeFailed)
	}

	// 3. create the successor under a temporary name; 4. set this container aside (it keeps
	// running: it is this process) and give the successor the name
	if e := t.createNew(ctx, old); e != nil {
		return t.fail(ctx, e)
	}
	if e := t.setAside(ctx); e != nil {
		return t.fail(ctx, e)
	}
	if e := t.nameNew(ctx); e != nil {
		return t.fail(ctx, e)
	}

	// 5. hand over: the last journal write of this process for this transaction. The verify
	// window and health timeout this process would use are written into it, so the successor
	// verifies itself by exactly the deadlines this process waits by (SuccessorWait).
	r.Spec.Verify, r.Spec.HealthTimeout = t.verifyWindow(), t.healthTimeout()
	if err := t.journal(stepHandover); err != nil {
		return t.fail(ctx, newError(r.ContainerID, failure.StageStart, failure.StoreError, "writing the journal", err))
	}
	if err := release(context.WithValue(ctx, successorWaitKey{}, t.successorWait()), r.NewID); err != nil {
		return t.fail(ctx, newError(r.ContainerID, failure.StageStart, failure.Interrupted, "releasing the state file and listener for the successor", err))
	}
	res := r.result()
	res.Outcome = OutcomeHandedOver
	res.SuccessorWait = t.successorWait()
	if _, err := t.m.d.ContainerStart(ctx, r.NewID, client.ContainerStartOptions{}); err != nil {
		// Nothing can be journaled now: the caller sees the successor not running and starts
		// afresh, and its Recover rolls back.
		res.Err = newError(r.ContainerID, failure.StageStart, failure.RunContainerError, "starting the successor", err)
		t.log().Error("the successor did not start; this watcher restarts itself to roll back", "successor", shortID(r.NewID), "err", err)
		return res
	}
	t.log().Info("handed over to the successor; it verifies itself and finishes the update", "successor", shortID(r.NewID))
	return res
}

// resumeHandover applies the rules at the top of this file to a handover record at step
// handover, verify or commit.
func (t *txn) resumeHandover(ctx context.Context) Result {
	r := t.r
	me := t.m.o.SelfID
	succ, err := t.inspect(ctx, r.NewID)
	runs := err == nil && succ.State != nil && succ.State.Running && !succ.State.Restarting
	notRunning := func() *Error {
		msg := "the successor is gone"
		switch {
		case err == nil && succ.State != nil && succ.State.Restarting:
			msg = fmt.Sprintf("the successor is restarting (restarted %d times; last %s)", succ.RestartCount, exitMessage(succ.State.ExitCode))
		case err == nil && succ.State != nil:
			msg = "the successor is not running (" + string(succ.State.Status) + ", " + exitMessage(succ.State.ExitCode) + ")"
		}
		return newError(r.ContainerID, failure.StageVerify, failure.ContainerExited, msg, nil)
	}
	if me != "" && me == r.NewID { // the successor
		if r.Step != stepCommit {
			if err := t.journal(stepVerify); err != nil {
				t.log().Error("journal write failed at verify; continuing", "err", err)
			}
			if e := t.verifySelf(ctx); e != nil {
				// Rolling back removes this very container: the predecessor, waking up when
				// this process stops, finishes the rollback from the journal.
				t.log().Error("self-update failed its own verification; rolling back to the predecessor", "err", e)
				return t.rollback(ctx, e)
			}
		}
		t.log().Info("self-update verified; removing the predecessor", "predecessor", shortID(r.ContainerID))
		return t.commit(ctx, nil)
	}
	// The predecessor (restarted or re-executed), or neither (`watcher once` on the same state).
	if !runs && r.Step == stepCommit && err == nil {
		// S verified itself and then stopped (a crash, a reboot) before removing P: the update
		// stands, so start S again and let it finish.
		if _, serr := t.m.d.ContainerStart(ctx, r.NewID, client.ContainerStartOptions{}); serr == nil {
			runs = true
		}
	}
	if !runs {
		return t.rollback(ctx, notRunning())
	}
	return t.stepBack()
}

// stepBack is the answer when the successor runs: leave the transaction to it (the predecessor
// must also release the journal and wait: Recover returns at once).
func (t *txn) stepBack() Result {
	t.log().Info("the successor runs; leaving the self-update to it", "successor", shortID(t.r.NewID))
	res := t.r.result()
	res.Outcome = OutcomeHandedOver
	res.SuccessorWait = t.successorWait()
	return res
}

// successorWait is the longest the successor verifies itself (verifySelf) once it runs: its
// verify window and then its health timeout at most, both from the journal record.
func (t *txn) successorWait() time.Duration { return t.verifyWindow() + t.healthTimeout() }

type successorWaitKey struct{}

// SuccessorWait returns, from the context Handover passes to its release callback, the longest
// the successor will verify itself (Result.SuccessorWait): the predecessor's wait must be
// bounded by it, not by a configuration of its own that may differ from the successor's.
func SuccessorWait(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Value(successorWaitKey{}).(time.Duration)
	return d, ok
}

// verifySelf is the successor's verify of itself: it runs for the verify window without a
// restart (a crash-looping successor would have RestartCount > 0), and SelfCheck answers
// (retried until the health timeout, as the process may still be starting its listener).
func (t *txn) verifySelf(ctx context.Context) *Error {
	r := t.r
	start := time.Now()
	window, healthTimeout := t.verifyWindow(), t.healthTimeout()
	for {
		ins, err := t.inspect(ctx, r.NewID)
		if err != nil {
			return newError(r.ContainerID, failure.StageVerify, failure.Interrupted, "inspecting itself", err)
		}
		if ins.RestartCount > 0 {
			return newError(r.ContainerID, failure.StageVerify, failure.CrashLoop, fmt.Sprintf("the successor restarted %d times", ins.RestartCount), nil)
		}
		rest := window - time.Since(start)
		if rest <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return newError(r.ContainerID, failure.StageVerify, failure.Interrupted, "verify interrupted", ctx.Err())
		case <-time.After(min(rest, t.m.poll)):
		}
	}
	if t.m.o.SelfCheck == nil {
		return nil
	}
	for {
		err := t.m.o.SelfCheck(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Since(start) > healthTimeout {
			return newError(r.ContainerID, failure.StageVerify, failure.Unhealthy, "the successor's own health check failed", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
