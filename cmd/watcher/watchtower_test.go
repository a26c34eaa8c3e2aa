package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
)

func TestParseWatchtower(t *testing.T) {
	wt, err := parseWatchtower([]string{"--interval", "30", "-cS", "nginx", "--notification-url", "slack://a@b",
		"--notification-url=generic://x", "-n", "email,slack", "--scope=prod", "/redis", "--run-once=false", "--config", "/c.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range wt.flags {
		got[f.Name+" "+f.Var] = f.Value
	}
	want := map[string]string{
		"--interval WATCHTOWER_POLL_INTERVAL":            "30",
		"--cleanup WATCHTOWER_CLEANUP":                   "true",
		"--include-stopped WATCHTOWER_INCLUDE_STOPPED":   "true",
		"--notification-url WATCHTOWER_NOTIFICATION_URL": "slack://a@b generic://x",
		"--notifications WATCHTOWER_NOTIFICATIONS":       "email,slack",
		"--scope WATCHTOWER_SCOPE":                       "prod",
		"--run-once WATCHTOWER_RUN_ONCE":                 "false",
	}
	if len(got) != len(want) {
		t.Errorf("flags = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("flag %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if !slices.Equal(wt.names, []string{"nginx", "redis"}) || wt.configPath != "/c.yaml" {
		t.Errorf("names %v, config %q; want [nginx redis] and /c.yaml", wt.names, wt.configPath)
	}
}

// TestWatchtowerCommandLineErrors: everything refused is exit 2 with one line naming the flag or
// variable, before any engine is contacted.
func TestWatchtowerCommandLineErrors(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	state := "WATCHER_STATE_DIR=" + t.TempDir()
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--interval", "30", "--frobnicate"}, nil, "unknown flag: --frobnicate: neither a watcher flag"},
		{[]string{"-Z"}, nil, "unknown shorthand flag: 'Z'"},
		{[]string{"--scope"}, nil, "flag needs an argument: --scope"},
		{[]string{"--cleanup=maybe"}, nil, `invalid argument "maybe"`},
		{[]string{"--no-pull"}, nil, "--no-pull: not supported by watcher"},
		{[]string{"--no-restart", "--run-once"}, nil, "--no-restart: not supported by watcher"},
		{[]string{"--remove-volumes"}, nil, "never removes volumes"},
		{[]string{"--revive-stopped", "-S"}, nil, "--revive-stopped: not supported"},
		{[]string{"--porcelain", "v1"}, nil, "watcher once --json"},
		{[]string{"-i", "30", "-s", "0 0 4 * * *"}, nil, "set only one of --interval and --schedule"},
		{[]string{"--interval", "5m"}, nil, "--interval: want a whole number"},
		{[]string{"--stop-timeout", "30"}, nil, "--stop-timeout: want a duration with a unit"},
		{[]string{"--http-api-update"}, nil, "--http-api-update: needs a token"},
		{[]string{"--cleanup"}, []string{"WATCHTOWER_NOTIFICATION_TEMPLATE={{.}}"}, "WATCHTOWER_NOTIFICATION_TEMPLATE: not supported"},
		{[]string{"--cleanup"}, []string{"WATCHTOWER_NOTIFICATIONS=slack"}, "slack notifications need WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL"},
		{[]string{"--tlsverify", "-H", "tcp://127.0.0.1:9", "--run-once"}, nil, "--tlsverify: TLS verification needs DOCKER_CERT_PATH"},
		{[]string{"run"}, []string{"WATCHTOWER_POLL_INTERVALL=30"}, "did you mean WATCHTOWER_POLL_INTERVAL?"},
	}
	for _, tc := range tests {
		code, _, stderr := runCmd(t, append([]string{state}, tc.env...), tc.args...)
		// One line says what is wrong; the notices the start logs may come before it.
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			if !strings.Contains(l, "level=INFO") {
				last = "" // another line that is not a notice
			}
		}
		if code != exitUsage || !strings.Contains(last, tc.want) {
			t.Errorf("watcher %q (env %v) = exit %d, stderr %q; want exit 2 and one line saying %q", tc.args, tc.env, code, stderr, tc.want)
		}
	}
}

// TestWatchtowerRunOnceIsOnce: --run-once and WATCHTOWER_RUN_ONCE run `once`, with its exit
// codes; -H is the engine it talks to.
func TestWatchtowerRunOnceIsOnce(t *testing.T) {
	state := "WATCHER_STATE_DIR=" + t.TempDir()
	for _, tc := range []struct {
		args []string
		env  []string
	}{
		{[]string{"--run-once", "-H", "unix:///nonexistent/flag.sock"}, nil},
		{[]string{"-R", "--host=unix:///nonexistent/flag.sock"}, nil},
		{[]string{"run"}, []string{"WATCHTOWER_RUN_ONCE=true", "DOCKER_HOST=unix:///nonexistent/flag.sock"}},
	} {
		if tc.env == nil {
			t.Setenv("DOCKER_HOST", "unix:///nonexistent/env.sock")
		} else {
			t.Setenv("DOCKER_HOST", "unix:///nonexistent/flag.sock")
		}
		code, _, stderr := runCmd(t, append([]string{state}, tc.env...), tc.args...)
		if code != exitUnreachable || !strings.Contains(stderr, "watcher once: docker engine unreachable at unix:///nonexistent/flag.sock") {
			t.Errorf("watcher %q (env %v) = exit %d, stderr %q; want once's exit 3 for the engine at flag.sock", tc.args, tc.env, code, stderr)
		}
	}
	if code, _, _ := runCmd(t, []string{state}, "--health-check"); code != exitFailed {
		t.Errorf("--health-check with no daemon = exit %d, want 1 (healthcheck's)", code)
	}
	// The image's HEALTHCHECK has the daemon's environment but not its command line: a setting
	// that needs a flag to be complete must not make it exit 2.
	if code, _, stderr := runCmd(t, []string{state, "WATCHTOWER_HTTP_API_UPDATE=true"}, "healthcheck"); code != exitFailed {
		t.Errorf("healthcheck with WATCHTOWER_HTTP_API_UPDATE and no token = exit %d (%s), want 1: no daemon", code, stderr)
	}
	if code, _, stderr := runCmd(t, nil, "--help"); code != exitOK || !strings.Contains(stderr, "--interval") {
		t.Errorf("--help = exit %d, stderr %q", code, stderr)
	}
}

// TestWatchtowerRunOnceUpdates: Watchtower's documented run-once line with container names
// updates only those containers on the real engine (minus --disable-containers), notifies, and
// WATCHER_* settings still win.
func TestWatchtowerRunOnceUpdates(t *testing.T) {
	e := testenv.New(t)
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	scope := map[string]string{"com.centurylinklabs.watchtower.scope": e.Owner}
	ids := map[string]string{}
	for _, n := range []string{"named", "excluded", "unnamed"} {
		ids[n] = e.Run(e.Name(n), &container.Config{Image: ref, Labels: scope}, nil, nil)
	}
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	got := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer hook.Close()

	env := []string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_UPDATE_VERIFY=1s", "WATCHTOWER_DEBUG=false", "WATCHER_LOG_LEVEL=info"}
	code, out, stderr := runCmd(t, env, "--run-once", "--cleanup", "--scope", e.Owner, "--notification-url", "generic+"+hook.URL,
		e.Name("named"), "/"+e.Name("excluded"), "-x", e.Name("excluded"))
	if code != 0 || !strings.Contains(out, "1 containers, 1 updated") {
		t.Fatalf("watcher --run-once NAMES = exit %d\n%s%s\nwant exit 0 and only the named container updated", code, out, stderr)
	}
	for n, id := range ids {
		now := e.Inspect(e.Name(n))
		if replaced := now.ID != id; replaced != (n == "named") || !now.State.Running {
			t.Errorf("%s: replaced %v, running %v; want only the named one replaced", n, replaced, now.State.Running)
		}
	}
	select {
	case msg := <-got:
		if !strings.Contains(msg, e.Name("named")) {
			t.Errorf("notification %q does not name the updated container", msg)
		}
	case <-time.After(30 * time.Second):
		t.Error("--run-once sent no notification")
	}
	if !strings.Contains(stderr, "Watchtower's defaults apply") {
		t.Errorf("stderr does not log Watchtower's defaults in use:\n%s", stderr)
	}
}
