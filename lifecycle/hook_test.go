package lifecycle

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// hookContainer runs a container whose image has a shell (testapp's, see ImageSpec.Shell).
func hookContainer(t *testing.T, f *fixture) string {
	t.Helper()
	ref, _ := f.push("hooks", "v1", testenv.ImageSpec{Version: "v1", Shell: true})
	id, _ := f.run("hooks", ref, nil, nil)
	return id
}

// TestRunHook runs hook commands in a real container: exit codes, output (stdout and stderr,
// bounded, the wrapper's own line not in it), and the container's environment.
func TestRunHook(t *testing.T) {
	f := newFixture(t)
	id := hookContainer(t, f)
	ctx := context.Background()
	tests := []struct {
		cmd      string
		exit     int
		output   string
		truncate bool
	}{
		// stderr too: checked below. The two streams arrive as separate chunks in any order, and
		// the shell may write a line's newline apart from its text, so no line is whole for sure.
		{"echo hello; echo oops >&2", 0, "hello", false},
		{"exit 75", 75, "", false},
		{`echo "version $APP_VERSION, args [$1]"; exit 3`, 3, "version v1, args []\n", false},
		{"i=0; while [ $i -lt 700 ]; do echo line-$i-padding; i=$((i+1)); done", 0, "line-699-padding\n", true},
		{"nosuchcommand", 127, "nosuchcommand", false},
	}
	for _, tc := range tests {
		r := RunHook(ctx, f.Docker, id, tc.cmd, time.Minute)
		if r.Err != nil || r.ExitCode != tc.exit || r.TimedOut || r.Truncated != tc.truncate {
			t.Errorf("RunHook(%q) = exit %d, err %v, timed out %v, truncated %v; want exit %d, truncated %v", tc.cmd, r.ExitCode, r.Err, r.TimedOut, r.Truncated, tc.exit, tc.truncate)
		}
		if !strings.Contains(r.Output, tc.output) || strings.Contains(r.Output, hookMarker) || len(r.Output) > MaxHookOutput {
			t.Errorf("RunHook(%q) output %q (%d bytes); want it to hold %q, at most %d bytes, without the wrapper's line", tc.cmd, r.Output, len(r.Output), tc.output, MaxHookOutput)
		}
		if strings.Contains(tc.cmd, ">&2") && (!strings.Contains(r.Output, "oops") || strings.Count(r.Output, "\n") != 2) {
			t.Errorf("RunHook(%q) output %q lacks stderr", tc.cmd, r.Output)
		}
		if r.OK() != (tc.exit == 0) {
			t.Errorf("RunHook(%q).OK() = %v", tc.cmd, r.OK())
		}
	}
}

// TestRunHookTimeoutKills: a hook still running at its timeout is killed with everything it
// started (a child process here), so nothing of it is left in the container.
func TestRunHookTimeoutKills(t *testing.T) {
	f := newFixture(t)
	id := hookContainer(t, f)
	before := processes(t, f, id)
	// `app sleep` is a child process of the hook's shell that runs until killed.
	r := RunHook(context.Background(), f.Docker, id, "echo started; app sleep; echo never", time.Second)
	if !r.TimedOut || r.Err != nil || r.ExitCode != 137 || r.OK() {
		t.Fatalf("RunHook(forever, 1s) = %+v; want timed out, killed (137), no error", r)
	}
	if !strings.Contains(r.Output, "started") || strings.Contains(r.Output, "never") {
		t.Errorf("output %q", r.Output)
	}
	if after := processes(t, f, id); after != before {
		t.Errorf("processes in the container after the kill: %d, before the hook: %d", after, before)
	}

	// Cancelling the context kills it the same way.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	r = RunHook(ctx, f.Docker, id, "app sleep", 0)
	if r.TimedOut || !errors.Is(r.Err, context.Canceled) || r.ExitCode != 137 {
		t.Errorf("RunHook(forever) cancelled = %+v; want killed (137) with context.Canceled", r)
	}
	if after := processes(t, f, id); after != before {
		t.Errorf("processes after the cancelled hook: %d, before: %d", after, before)
	}
}

// processes counts the container's processes, as `docker top` lists them.
func processes(t *testing.T, f *fixture, id string) int {
	t.Helper()
	top, err := f.Docker.ContainerTop(context.Background(), id, client.ContainerTopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(top.Processes)
}

// TestRunHookCannotRun: no shell in the image, or a container that is not running, is an error
// with exit code -1, never a success.
func TestRunHookCannotRun(t *testing.T) {
	f := newFixture(t)
	ref, _ := f.push("noshell", "v1", testenv.ImageSpec{Version: "v1"})
	id, _ := f.run("noshell", ref, nil, nil)
	r := RunHook(context.Background(), f.Docker, id, "true", time.Minute)
	if r.OK() || (r.Err == nil && r.ExitCode == 0) {
		t.Errorf("RunHook in an image without sh = %+v; want a failure", r)
	}
	if _, err := f.Docker.ContainerStop(context.Background(), id, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	r = RunHook(context.Background(), f.Docker, id, "true", time.Minute)
	if r.Err == nil || r.ExitCode != -1 || !strings.Contains(r.Err.Error(), "cannot run the hook") {
		t.Errorf("RunHook in a stopped container = %+v; want an error and exit -1", r)
	}
}
