package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// oomGrace is how long verify waits for the engine's oom event after a container died with 137
// and its state does not (yet) say OOMKilled. The engine learns of the OOM kill and of the exit
// from two independent notifications (cgroup v2's memory.events and the task exit); when the exit
// is handled first, State.OOMKilled stays false for good and only the oom event tells.
const oomGrace = 1500 * time.Millisecond

// verifyPoll is verify's fallback: how often it inspects the container when no event woke it
// and the event stream is gone (see watch). While the stream is up it inspects only every
// verifyStreamPoll: an event lost on a live stream only delays a verdict, never changes it,
// since the window ends with an inspect.
const (
	verifyPoll       = time.Second
	verifyStreamPoll = 5 * time.Second
)

// verifyEvents are the container events that can change verify's verdict. An event only wakes
// verify: the verdict always comes from an inspect, so a stray or replayed event costs one
// inspect and nothing else.
var verifyEvents = []string{string(events.ActionDie), string(events.ActionOOM), string(events.ActionHealthStatus), string(events.ActionRestart)}

// verify watches a started container until it has run for the verify window with no restart
// and, when it has a healthcheck, is healthy (waiting at most the health timeout). Failures are
// classified as docs/api.md's failure table says: never ran (RunContainerError at stage start), exited
// (code and meaning), OOMKilled, CrashLoop, Unhealthy. exited, if not nil, yields the exit code
// of an AutoRemove container the engine may remove before it can be inspected.
func (t *txn) verify(ctx context.Context, id string, exited <-chan int) *Error {
	return verifyRunning(ctx, t, t.r.ContainerID, id, t.verifyWindow(), t.healthTimeout(), exited)
}

// verifyRunning inspects container id whenever the engine reports an event that can change the
// verdict (die, oom, health_status, restart), on a fallback poll, and at the end of the window
// (or at the health timeout), and decides on each inspect. A container that dies is thus judged
// as soon as its die event arrives, not at the end of the window. The first inspect, too, waits
// for one of these: the subscription replays events from start on, so a container that died at
// once wakes it at once.
func verifyRunning(ctx context.Context, t *txn, oldID, id string, window, healthTimeout time.Duration, exited <-chan int) *Error {
	start := time.Now()
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	wake, oom, down := t.watch(wctx, id, start)
	hasHealth := false
	for {
		if e := t.verifySleep(ctx, oldID, wake, down, time.Since(start), window, healthTimeout, hasHealth); e != nil {
			return e
		}
		ins, err := t.inspect(ctx, id)
		switch {
		case cerrdefs.IsNotFound(err):
			select {
			case code := <-exited:
				return newError(oldID, failure.StageVerify, failure.ContainerExited, exitMessage(code)+"; removed by AutoRemove", nil)
			case <-time.After(2 * time.Second):
				return newError(oldID, failure.StageVerify, failure.ContainerExited, "container is gone (removed during verify)", nil)
			}
		case err != nil:
			return newError(oldID, failure.StageVerify, failure.Interrupted, "inspecting the new container", err)
		}
		if e := classifyState(oldID, ins); e != nil {
			return oomVerdict(oldID, ins, e, oom)
		}
		h := ins.State.Health
		hasHealth = h != nil && h.Status != container.NoHealthcheck && h.Status != ""
		if hasHealth && h.Status == container.Unhealthy {
			return newError(oldID, failure.StageVerify, failure.Unhealthy, "healthcheck failed"+lastProbe(h), nil)
		}
		elapsed := time.Since(start)
		if elapsed >= window && (!hasHealth || h.Status == container.Healthy) {
			return nil
		}
		if hasHealth && elapsed >= healthTimeout {
			return newError(oldID, failure.StageVerify, failure.Unhealthy,
				fmt.Sprintf("not healthy after %s (health %s)%s", healthTimeout, h.Status, lastProbe(h)), nil)
		}
	}
}

// verifySleep waits until an event, the end of the window, the health timeout (when the
// container has a healthcheck) or the fallback poll — every verifyStreamPoll while the event
// stream is up, every Manager.poll once it is down. It returns at once when the window is over.
func (t *txn) verifySleep(ctx context.Context, oldID string, wake, down <-chan struct{}, elapsed, window, healthTimeout time.Duration, hasHealth bool) *Error {
	wait := t.m.poll
	select {
	case <-down:
		down = nil // gone for good: poll, and do not wake on it again
	default:
		wait = max(wait, verifyStreamPoll)
	}
	if rest := window - elapsed; rest >= 0 && rest < wait {
		wait = rest
	}
	if rest := healthTimeout - elapsed; hasHealth && rest >= 0 && rest < wait {
		wait = rest
	}
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return newError(oldID, failure.StageVerify, failure.Interrupted, "verify interrupted", ctx.Err())
	case <-wake:
	case <-down:
	case <-timer.C:
	}
	return nil
}

// oomVerdict turns a ContainerExited verdict for exit code 137 into OOMKilled when the engine
// reported an oom event for the container, waiting up to oomGrace for that event to arrive.
func oomVerdict(oldID string, ins container.InspectResponse, e *Error, oom <-chan struct{}) *Error {
	if e.Reason != failure.ContainerExited || ins.State == nil || ins.State.ExitCode != 137 {
		return e
	}
	select {
	case <-oom:
		return newError(oldID, failure.StageVerify, failure.OOMKilled, exitMessage(137)+" by the kernel OOM killer (engine oom event)", nil)
	case <-time.After(oomGrace):
		return e
	}
}

// watch subscribes to the engine's events of container id that verify cares about, from since
// on, and returns a channel that receives a value after each (coalesced: one value stands for any
// number of events not yet taken), one that is closed once an oom event was seen, and one that
// is closed when the stream ended (verify then polls). The subscription runs in the background until ctx ends; if it
// cannot be opened or drops, the channel simply stays quiet and verify's fallback poll decides.
//
// The engine answers a subscription before it registers it, so an event in between would be
// missed: since makes the engine replay what it logged from that instant on.
func (t *txn) watch(ctx context.Context, id string, since time.Time) (wake, oom, down <-chan struct{}) {
	wakeC, oomC, downC := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	sawOOM := false
	txid, name := t.r.TxID, t.r.Name
	go func() {
		res := t.eventSource().Events(ctx, client.EventsListOptions{
			Since: since.UTC().Format(time.RFC3339Nano),
			Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).
				Add("container", id).Add("event", verifyEvents...),
		})
		for {
			select {
			case m := <-res.Messages:
				if m.Actor.ID != "" && m.Actor.ID != id {
					continue
				}
				if m.Action == events.ActionOOM && !sawOOM {
					sawOOM = true
					close(oomC)
				}
				select {
				case wakeC <- struct{}{}:
				default:
				}
			case err := <-res.Err:
				close(downC)
				if ctx.Err() == nil && t.m.log.Enabled(ctx, slog.LevelDebug) {
					if name == "" { // Restart knows only the ID
						name = t.m.nameOf(ctx, id)
					}
					t.m.log.Debug("event stream ended during verify; polling every "+t.m.poll.String(),
						"tx", txid, "container", name, "id", shortID(id), "err", err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return wakeC, oomC, downC
}

// eventSource is where verify hears of events: the caller's stream (Spec.Events), else the
// engine's own.
func (t *txn) eventSource() EventSource {
	if t.events != nil {
		return t.events
	}
	return t.m.d
}

// classifyState says what is wrong with a container that should be running, or nil.
func classifyState(oldID string, ins container.InspectResponse) *Error {
	st := ins.State
	if st == nil {
		return nil
	}
	switch {
	case st.Status == container.StateCreated || (!st.Running && st.Error != "" && neverStarted(st)):
		// It never ran: the engine could not start the process (e.g. an unknown USER, a missing
		// or non-executable entrypoint). Not an exit of the application.
		msg := st.Error
		if st.ExitCode != 0 {
			msg = exitMessage(st.ExitCode) + ": " + st.Error
		}
		return newError(oldID, failure.StageStart, failure.RunContainerError, msg, nil)
	case st.Restarting || ins.RestartCount > 0:
		return newError(oldID, failure.StageVerify, failure.CrashLoop,
			fmt.Sprintf("restarted %d times; last %s", ins.RestartCount, exitMessage(st.ExitCode)), nil)
	case st.Running || st.Paused:
		return nil
	case st.OOMKilled && st.ExitCode == 137:
		return newError(oldID, failure.StageVerify, failure.OOMKilled, exitMessage(137)+" by the kernel OOM killer", nil)
	}
	msg := exitMessage(st.ExitCode)
	switch {
	case st.OOMKilled:
		msg += "; an OOM kill was recorded"
	case st.ExitCode == 137 && ins.HostConfig != nil && ins.HostConfig.Memory > 0:
		// The engine can lose an OOM kill (its oom notification races the cgroup's removal),
		// so a SIGKILL under a memory limit is worth naming, though not as a fact.
		msg += fmt.Sprintf("; the container has a memory limit of %d MiB, so this may be an OOM kill the engine did not record",
			ins.HostConfig.Memory>>20)
	}
	return newError(oldID, failure.StageVerify, failure.ContainerExited, msg, nil)
}

// neverStarted: the engine records no start time for a process that never ran.
func neverStarted(st *container.State) bool {
	return st.StartedAt == "" || strings.HasPrefix(st.StartedAt, "0001-01-01")
}

func lastProbe(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	l := h.Log[len(h.Log)-1]
	out := strings.Join(strings.Fields(l.Output), " ")
	if len(out) > 200 {
		out = out[:200] + "…"
	}
	return fmt.Sprintf(" (last probe: exit %d %q)", l.ExitCode, out)
}
