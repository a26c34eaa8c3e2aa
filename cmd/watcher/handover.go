package main

// The daemon's side of a self-update (lifecycle/handover.go has the transaction and its rules).
// The predecessor gives up its schedule, listener and store when lifecycle asks (release), then
// only waits: its successor stops it when it has verified itself. If the successor stops
// running instead, the predecessor stops it for good and re-executes itself: the fresh process
// opens the store and its Recover rolls the self-update back.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/updater"
)

// storeWait is how long `watcher run` waits for the state file's lock: a predecessor handing
// over releases it moments after starting this process, and one stepping back may take a few
// seconds more. once fails at once instead.
const storeWait = 30 * time.Second

// successorGrace bounds the wait for a successor beyond its verify window and health timeout:
// one that neither fails nor stops this process by then is treated as failed.
const successorGrace = 2 * time.Minute

// handoff is what the daemon gives up when it hands over, and how it learns that it did.
type handoff struct {
	mu           sync.Mutex
	stopHTTP     func() // shuts the API down and waits until the listener is closed
	stopSchedule func() // stops the cron schedule and waits for a job in flight
	successor    chan string
	released     bool
	// wait is how long the successor verifies itself at most, from lifecycle (the journal
	// record's verify window and health timeout: the successor's own deadlines); 0 = unknown.
	wait time.Duration
}

func newHandoff() *handoff { return &handoff{successor: make(chan string, 1)} }

// done receives the successor's ID once the daemon has released everything; nil (never) for a
// process that cannot self-update.
func (h *handoff) done() <-chan string {
	if h == nil {
		return nil
	}
	return h.successor
}

// release gives the successor what it needs and this process must not touch again: the
// schedule stops, the API shuts down (requests waiting for a run answer 503 with its id), and
// the store is closed. It is lifecycle's release callback, and the step-back after Recover.
func (a *app) release(ctx context.Context, successor string) error {
	h := a.handoff
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return nil
	}
	h.released = true
	if d, ok := lifecycle.SuccessorWait(ctx); ok {
		h.wait = d
	}
	if h.stopSchedule != nil {
		h.stopSchedule()
	}
	if h.stopHTTP != nil {
		h.stopHTTP()
	}
	if err := a.store.Close(); err != nil {
		// The API and schedule are down already: the daemon exits after lifecycle's rollback
		// (see daemon), and its restart brings them back.
		h.successor <- ""
		return fmt.Errorf("closing the state file: %w", err)
	}
	a.log.Info("self-update: schedule, API and state file released for the successor", "successor", short(successor))
	h.successor <- successor
	return nil
}

// stepBack is the daemon's answer to a Recover that found its own self-update's successor
// running: give it the store and listener, and wait for it by its own deadlines.
func (a *app) stepBack(ctx context.Context, res lifecycle.Result) error {
	a.handoff.mu.Lock()
	a.handoff.wait = res.SuccessorWait
	a.handoff.mu.Unlock()
	if err := a.release(ctx, res.NewID); err != nil {
		return fail(exitFailed, "self-update: stepping back for the successor: %v", err)
	}
	return a.handedOver(ctx, <-a.handoff.done())
}

// handedOver is what the daemon does once release ran: wait for the successor, or, when the
// release failed half-way, let the rollback finish and exit for a restart.
func (a *app) handedOver(ctx context.Context, successor string) error {
	if successor == "" {
		a.upd.Wait()
		return fail(exitFailed, "self-update aborted after the API was shut down; exiting so that the restart policy brings the watcher back")
	}
	if updater.IsServiceSuccessor(successor) {
		return a.awaitSwarm(ctx)
	}
	return a.awaitSuccessor(ctx, successor)
}

// awaitSwarm is the wait of a watcher that updated its own Swarm service: Swarm replaces this
// task with one of the new version (whose Recover waits for the update and reports it), and stops
// this one — the daemon's context ends. Should Swarm not stop it within update.service_timeout
// (and a grace), the update went elsewhere or stalled: the process re-executes itself, and the
// fresh process's Recover finds out how the update ended.
func (a *app) awaitSwarm(ctx context.Context) error {
	a.upd.Wait()
	wait := a.cfg.Update.ServiceTimeout + successorGrace
	a.log.Info("self-update: Swarm rolls the watcher's service out; waiting to be replaced", "up_to", wait)
	select {
	case <-ctx.Done():
		a.log.Info("self-update: stopped by Swarm; exiting")
		return nil
	case <-time.After(wait):
		a.log.Error("self-update: Swarm did not replace this task in time; restarting this watcher to find out how the update ended")
		return errReexec
	}
}

// errReexec asks run to replace this process with a fresh copy of itself.
var errReexec = errors.New("re-executing to roll back a failed self-update")

// reexec replaces the process image with the watcher binary, same arguments and environment.
// The container lives on (its PID 1 is the same process), so nothing restarts it.
var reexec = func() error {
	return syscall.Exec("/proc/self/exe", os.Args, os.Environ())
}

// awaitSuccessor waits, holding nothing, until the successor stops this process (ctx ends:
// the self-update is committed) or stops running, restarts, disappears or takes too long. In
// that case it stops the successor through the API (so its restart policy cannot bring it
// back) and returns errReexec: the fresh process rolls the self-update back.
func (a *app) awaitSuccessor(ctx context.Context, id string) error {
	a.upd.Wait() // the run that handed over ends once the successor was started
	deadline := time.Now().Add(a.successorWait() + successorGrace)
	log := a.log.With("successor", short(id))
	log.Info("self-update: waiting for the successor to verify itself and take over")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("self-update: stopped by the successor; exiting")
			return nil
		case <-tick.C:
		}
		res, err := a.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if ctx.Err() != nil {
			continue
		}
		why := ""
		switch st := res.Container.State; {
		case cerrdefs.IsNotFound(err):
			why = "the successor is gone"
		case err != nil:
			log.Warn("self-update: cannot inspect the successor; still waiting", "err", err)
		case st == nil || !st.Running || st.Restarting:
			why = "the successor is not running"
			if st != nil {
				why = fmt.Sprintf("the successor is %s (exit code %d)", st.Status, st.ExitCode)
			}
		case res.Container.RestartCount > 0:
			why = fmt.Sprintf("the successor restarted %d times", res.Container.RestartCount)
		case time.Now().After(deadline):
			why = "the successor did not take over in time"
		}
		if why == "" {
			continue
		}
		log.Error("self-update failed: " + why + "; stopping it and restarting this watcher, which rolls back")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		timeout := 10
		if _, err := a.docker.ContainerStop(sctx, id, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			log.Error("self-update: stopping the successor failed", "err", err)
		}
		cancel()
		return errReexec
	}
}

// successorWait is how long the successor verifies itself at most: what lifecycle said when it
// handed over (or when Recover stepped back), from the journal record the successor reads too;
// this configuration's verify and health_timeout only when lifecycle said nothing.
func (a *app) successorWait() time.Duration {
	a.handoff.mu.Lock()
	defer a.handoff.mu.Unlock()
	if a.handoff.wait > 0 {
		return a.handoff.wait
	}
	return a.cfg.Update.Verify + a.cfg.Update.HealthTimeout
}

// openStore opens the state file, waiting up to wait for another process to let go of it.
func openStore(ctx context.Context, path string, wait time.Duration, log *slog.Logger) (*store.Store, error) {
	deadline := time.Now().Add(wait)
	for logged := false; ; logged = true {
		s, err := store.Open(path)
		if err == nil || !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) || ctx.Err() != nil {
			return s, err
		}
		if !logged {
			log.Info("state file locked by another process (a watcher handing over?); waiting", "path", path, "up_to", wait)
		}
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
