package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// MaxHookOutput bounds the output of a hook kept for the report: its last bytes, where errors are.
const MaxHookOutput = 4 << 10

// hookKillWait bounds how long a killed hook may take to be gone, and how long its exit code
// may take to show once its output has ended.
const hookKillWait = 10 * time.Second

// HookResult is how one hook command went.
type HookResult struct {
	ExitCode  int           // the command's exit status (137 when killed at the timeout)
	Output    string        // stdout and stderr as they came, at most MaxHookOutput bytes: the end
	Truncated bool          // Output lost its beginning
	TimedOut  bool          // the timeout ended it: it was killed
	Duration  time.Duration // from start to exit
	Err       error         // it could not be run or its end not be seen; ExitCode is then -1
}

// OK reports whether the command ran and exited 0.
func (r HookResult) OK() bool { return r.Err == nil && !r.TimedOut && r.ExitCode == 0 }

// hookMarker is the first line the wrapper prints: its process id inside the container, which a
// timeout needs to kill it (the Engine API has no call to end an exec).
const hookMarker = "watcher-hook-pid "

// hookWrapper runs the command as `sh -c CMD` (as Watchtower did) after printing its PID. exec
// keeps that PID for the command's shell; runc starts every exec'd process in a session of its
// own, so the PID is also the process group of everything the command starts.
const hookWrapper = `echo "` + hookMarker + `$$"; exec sh -c "$1"`

// RunHook runs command with `sh -c` inside the running container id, as its default user, and
// waits for it. With timeout > 0, a command still running then is killed — its whole process
// group, so nothing it started is left running — and reported TimedOut. Cancelling ctx kills it
// the same way. Output is bounded (MaxHookOutput).
func RunHook(ctx context.Context, d Docker, id, command string, timeout time.Duration) HookResult {
	start := time.Now()
	res := HookResult{ExitCode: -1}
	ex, err := d.ExecCreate(ctx, id, client.ExecCreateOptions{
		Cmd: []string{"sh", "-c", hookWrapper, "sh", command}, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		res.Err = fmt.Errorf("cannot run the hook in container %s: %w", shortID(id), err)
		return res
	}
	att, err := d.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		res.Err = fmt.Errorf("cannot start the hook in container %s: %w", shortID(id), err)
		return res
	}
	out := &hookOutput{pid: make(chan int, 1)}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&hookStdout{out}, out, att.Reader)
		copied <- err
	}()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-copied:
		att.Close()
	case <-expired:
		res.TimedOut = true
		res.Err = killHook(ctx, d, id, out, att, copied)
	case <-ctx.Done():
		res.Err = killHook(ctx, d, id, out, att, copied)
		if res.Err == nil {
			res.Err = fmt.Errorf("hook stopped: %w", ctx.Err())
		}
	}
	res.Output, res.Truncated = out.text()
	code, err := hookExit(context.WithoutCancel(ctx), d, ex.ID)
	res.Duration = time.Since(start)
	switch {
	case err != nil && res.Err == nil:
		res.Err = err
	case err == nil:
		res.ExitCode = code
	}
	return res
}

// killHook kills the hook's process group in the container and waits for its output to end.
func killHook(ctx context.Context, d Docker, id string, out *hookOutput, att client.ExecAttachResult, copied <-chan error) error {
	defer att.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookKillWait)
	defer cancel()
	var pid int
	select {
	case pid = <-out.pid:
	case <-copied:
		return nil // it ended meanwhile
	case <-ctx.Done():
		return errors.New("the hook could not be killed: it never said its process id")
	}
	script := "kill -KILL -- -" + strconv.Itoa(pid) + " 2>/dev/null || kill -KILL " + strconv.Itoa(pid)
	k, err := d.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: []string{"sh", "-c", script}})
	if err == nil {
		_, err = d.ExecStart(ctx, k.ID, client.ExecStartOptions{Detach: true})
	}
	if err != nil {
		return fmt.Errorf("the hook could not be killed: %w", err)
	}
	select {
	case <-copied: // its output ended: the process is gone
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the hook was sent SIGKILL but its output did not end within %v", hookKillWait)
	}
}

// hookExit waits (bounded) for the engine to report the exec ended and returns its exit code.
func hookExit(ctx context.Context, d Docker, execID string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, hookKillWait)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		ins, err := d.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		switch {
		case err != nil:
			return -1, fmt.Errorf("reading the hook's exit code: %w", err)
		case !ins.Running:
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("the hook is still running %v after its output ended", hookKillWait)
		case <-time.After(delay):
		}
	}
}

// hookOutput keeps the last MaxHookOutput bytes written to it and takes the wrapper's PID line
// off the start of stdout.
type hookOutput struct {
	mu      sync.Mutex
	buf     []byte
	dropped int
	pid     chan int
	line    []byte // stdout until the marker line is complete
	started bool   // the marker line is done (or was not there)
}

func (o *hookOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	if over := len(o.buf) - MaxHookOutput; over > 0 {
		o.dropped += over
		o.buf = append(o.buf[:0], o.buf[over:]...)
	}
	return len(p), nil
}

func (o *hookOutput) text() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf), o.dropped > 0
}

// hookStdout is the stdout side: the first line is the wrapper's, the rest the command's.
type hookStdout struct{ o *hookOutput }

func (s *hookStdout) Write(p []byte) (int, error) {
	n := len(p)
	if !s.o.started {
		s.o.line = append(s.o.line, p...)
		i := strings.IndexByte(string(s.o.line), '\n')
		if i < 0 && len(s.o.line) < 64 {
			return n, nil
		}
		s.o.started = true
		first, rest := string(s.o.line), []byte(nil)
		if i >= 0 {
			first, rest = string(s.o.line[:i]), s.o.line[i+1:]
		}
		if v, ok := strings.CutPrefix(first, hookMarker); ok {
			if pid, err := strconv.Atoi(v); err == nil && pid > 0 {
				s.o.pid <- pid
			}
		} else {
			rest = s.o.line // not the wrapper's line after all: keep it all
		}
		s.o.line = nil
		p = rest
	}
	_, err := s.o.Write(p)
	return n, err
}

var _ io.Writer = (*hookStdout)(nil)

// RunHook runs a lifecycle hook in a container on the manager's engine (see the function RunHook).
func (m *Manager) RunHook(ctx context.Context, id, command string, timeout time.Duration) HookResult {
	return RunHook(ctx, m.d, id, command, timeout)
}
