package lifecycle

import (
	"context"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// Restart restarts a container that depends on a replaced one (stopSignal "" and timeout nil
// mean the container's own), and checks that it runs afterwards. A failure says where: the
// restart request (start/RunContainerError) or the container after it (verify's reasons).
func (m *Manager) Restart(ctx context.Context, containerID string, stopSignal string, timeout *time.Duration) *Error {
	unlock, err := m.lock(ctx, containerID)
	if err != nil {
		return newError(containerID, failure.StageStart, failure.Interrupted, "waiting for another update of this container", err)
	}
	defer unlock()
	opts := client.ContainerRestartOptions{Signal: stopSignal}
	if timeout != nil {
		s := int((*timeout + time.Second - 1) / time.Second)
		opts.Timeout = &s
	}
	if _, err := m.d.ContainerRestart(ctx, containerID, opts); err != nil {
		return newError(containerID, failure.StageStart, failure.RunContainerError, "restarting", err)
	}
	t := &txn{m: m, r: &record{ContainerID: containerID}}
	if e := verifyRunning(ctx, t, containerID, containerID, restoreVerify, restoreVerify, nil); e != nil && e.Reason != failure.Unhealthy {
		return e
	}
	return nil
}
