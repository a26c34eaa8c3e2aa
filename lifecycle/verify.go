package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
)

// pollEvery is how often verify inspects the new container.
const pollEvery = 100 * time.Millisecond

// verify watches a started container until it has run for the verify window with no restart
// and, when it has a healthcheck, is healthy (waiting at most the health timeout). Failures are
// classified as DESIGN.md's table says: never ran (RunContainerError at stage start), exited
// (code and meaning), OOMKilled, CrashLoop, Unhealthy. exited, if not nil, yields the exit code
// of an AutoRemove container the engine may remove before it can be inspected.
func (t *txn) verify(ctx context.Context, id string, exited <-chan int) *Error {
	return verifyRunning(ctx, t, t.r.ContainerID, id, t.verifyWindow(), t.healthTimeout(), exited)
}

func verifyRunning(ctx context.Context, t *txn, oldID, id string, window, healthTimeout time.Duration, exited <-chan int) *Error {
	start := time.Now()
	for {
		ins, err := t.inspect(ctx, id)
		switch {
		case cerrdefs.IsNotFound(err):
			select {
			case code := <-exited:
				return newError(oldID, StageVerify, ReasonContainerExited, exitMessage(code)+"; removed by AutoRemove", nil)
			case <-time.After(2 * time.Second):
				return newError(oldID, StageVerify, ReasonContainerExited, "container is gone (removed during verify)", nil)
			}
		case err != nil:
			return newError(oldID, StageVerify, ReasonInterrupted, "inspecting the new container", err)
		}
		if e := classifyState(oldID, ins); e != nil {
			return e
		}
		h := ins.State.Health
		hasHealth := h != nil && h.Status != container.NoHealthcheck && h.Status != ""
		if hasHealth && h.Status == container.Unhealthy {
			return newError(oldID, StageVerify, ReasonUnhealthy, "healthcheck failed"+lastProbe(h), nil)
		}
		elapsed := time.Since(start)
		if elapsed >= window && (!hasHealth || h.Status == container.Healthy) {
			return nil
		}
		if hasHealth && elapsed >= healthTimeout {
			return newError(oldID, StageVerify, ReasonUnhealthy,
				fmt.Sprintf("not healthy after %s (health %s)%s", healthTimeout, h.Status, lastProbe(h)), nil)
		}
		wait := pollEvery
		if rest := window - elapsed; rest > 0 && rest < wait {
			wait = rest
		}
		select {
		case <-ctx.Done():
			return newError(oldID, StageVerify, ReasonInterrupted, "verify interrupted", ctx.Err())
		case <-time.After(wait):
		}
	}
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
		return newError(oldID, StageStart, ReasonRunContainerError, msg, nil)
	case st.Restarting || ins.RestartCount > 0:
		return newError(oldID, StageVerify, ReasonCrashLoop,
			fmt.Sprintf("restarted %d times; last %s", ins.RestartCount, exitMessage(st.ExitCode)), nil)
	case st.Running || st.Paused:
		return nil
	case st.OOMKilled && st.ExitCode == 137:
		return newError(oldID, StageVerify, ReasonOOMKilled, exitMessage(137)+" by the kernel OOM killer", nil)
	}
	msg := exitMessage(st.ExitCode)
	if st.OOMKilled {
		msg += "; an OOM kill was recorded"
	}
	return newError(oldID, StageVerify, ReasonContainerExited, msg, nil)
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
