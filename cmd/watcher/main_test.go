package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

func runCmd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageAndConfigErrors(t *testing.T) {
	state := "WATCHER_STATE_DIR=" + t.TempDir()
	tests := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantErr  string
	}{
		{"version", []string{"version"}, nil, 0, ""},
		{"unknown command", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"once", "--nope"}, nil, 2, "flag provided but not defined"},
		{"bad cron in file", []string{"once", "--config", writeFile(t, "schedule: \"* * *\"\n")}, []string{state}, 2, "schedule"},
		{"bad cron in env", []string{"once"}, []string{state, "WATCHER_SCHEDULE=every day"}, 2, "WATCHER_SCHEDULE"},
		{"unknown key", []string{"check", "--config", writeFile(t, "update:\n  verfy: 1s\n")}, nil, 2, "update.verfy"},
		{"missing config file", []string{"once", "--config", "/nonexistent/watcher.yaml"}, nil, 2, "/nonexistent/watcher.yaml"},
		{"short token", []string{"check"}, []string{"WATCHER_HTTP_TOKEN=hunter2"}, 2, "config: http.token: the token has 7 characters, at least 16 are needed"},
		{"token with a space", []string{"run"}, []string{state, "WATCHER_HTTP_TOKEN=0123456789 abcdef"}, 2, "config: http.token: the token holds whitespace"},
		{"newline in a value", []string{"check"}, []string{"WATCHER_WATCH_SCOPE=prod\nx"}, 2, `config: watch.scope: the value "prod\nx" holds a control character '\n'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.env, tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("watcher %v = exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}

// TestSecretFileWarning: a token file every user may read is named in one warning at start.
func TestSecretFileWarning(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // the warning comes before the engine is asked
	dir := t.TempDir()
	for mode, want := range map[os.FileMode]int{0o444: 1, 0o440: 0} {
		tok := filepath.Join(dir, fmt.Sprintf("token-%o", mode))
		if err := os.WriteFile(tok, []byte("0123456789abcdef\n"), mode); err != nil {
			t.Fatal(err)
		}
		_, _, stderr := runCmd(t, []string{"WATCHER_HTTP_TOKEN_FILE=" + tok, "WATCHER_STATE_DIR=" + dir}, "check")
		if got := strings.Count(stderr, "is readable by every user"); got != want || (want == 1 && !strings.Contains(stderr, tok)) {
			t.Errorf("token file mode %04o: %d warnings, want %d naming %s; stderr:\n%s", mode, got, want, tok, stderr)
		}
	}
}

func TestEngineUnreachableExits3(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	for _, cmd := range []string{"once", "check"} {
		code, _, stderr := runCmd(t, []string{"WATCHER_STATE_DIR=" + t.TempDir()}, cmd)
		if code != 3 || !strings.Contains(stderr, "docker engine unreachable") || !strings.Contains(stderr, "nothing was changed") {
			t.Errorf("watcher %s with no engine = exit %d, stderr %q; want exit 3 saying the engine is unreachable", cmd, code, stderr)
		}
	}
}

func TestOnceAndCheckAgainstRealEngine(t *testing.T) {
	e := testenv.New(t)
	// A scope of this test's own, so the command never touches other tests' containers.
	labels := map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}
	env := []string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_WATCH_SCOPE=" + e.Owner, "WATCHER_UPDATE_VERIFY=1s", "WATCHER_LOG_LEVEL=warn"}
	okRef, _ := e.Registry.PushImage(t, "ok", "latest", testenv.ImageSpec{Version: "v1"})
	badRef, _ := e.Registry.PushImage(t, "bad", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(okRef)
	e.Pull(badRef)
	e.Run(e.Name("ok"), &container.Config{Image: okRef, Labels: labels}, nil, nil)
	e.Run(e.Name("bad"), &container.Config{Image: badRef, Labels: labels}, nil, nil)

	code, out, stderr := runCmd(t, env, "once")
	if code != 0 || !strings.Contains(out, e.Name("ok")) || !strings.Contains(out, "up_to_date") {
		t.Fatalf("once with nothing new = exit %d\n%s%s\nwant exit 0 and an up_to_date table", code, out, stderr)
	}

	e.Registry.PushImage(t, "ok", "latest", testenv.ImageSpec{Version: "v2"})
	e.Registry.PushImage(t, "bad", "latest", testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=1"}})

	code, out, _ = runCmd(t, env, "check", "--json")
	var rep updater.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	if code != 0 || rep.Count(updater.OutcomeUpdateAvailable) != 2 {
		t.Fatalf("check = exit %d, report %+v; want exit 0 and 2 update_available", code, rep.Containers)
	}
	if rep.Plan == nil || !rep.Plan.DryRun || len(rep.Plan.Groups) != 2 || rep.Plan.Groups[0][0].Op != updater.OpUpdate {
		t.Errorf("check --json plan = %+v, want a dry-run plan of two independent updates", rep.Plan)
	}
	// The table is followed by the plan, printed as the plan tests print it.
	code, out, _ = runCmd(t, env, "check")
	t.Logf("watcher check:\n%s", out)
	for _, want := range []string{"plan (nothing was changed):\ngroup 1:\n  update " + e.Name("bad") + " (digest sha256:", "group 2:\n  update " + e.Name("ok")} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("check = exit %d\n%s\nwant exit 0 and %q", code, out, want)
		}
	}
	if e.Inspect(e.Name("ok")).Config.Env[len(e.Inspect(e.Name("ok")).Config.Env)-1] == "APP_VERSION=v2" {
		t.Fatal("check changed a container")
	}

	code, out, stderr = runCmd(t, env, "once")
	if code != 1 || !strings.Contains(out, "rolled_back") || !strings.Contains(out, "updated") {
		t.Fatalf("once with one bad update = exit %d\n%s%s\nwant exit 1, one updated and one rolled_back", code, out, stderr)
	}
	if st := e.Inspect(e.Name("bad")).State; !st.Running {
		t.Errorf("bad container not running after rollback: %+v", st)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDaemon runs the real daemon in-process: it answers the health check, takes an HTTP trigger,
// updates a container, and stops cleanly when its context ends (what SIGTERM does).
func TestDaemon(t *testing.T) {
	e := testenv.New(t)
	addr := freePort(t)
	env := []string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_WATCH_SCOPE=" + e.Owner, "WATCHER_UPDATE_VERIFY=1s",
		"WATCHER_LOG_LEVEL=warn", "WATCHER_SCHEDULE=", "WATCHER_HTTP_LISTEN=" + addr, "WATCHER_HTTP_TOKEN=s3cret-token-0123456789"}
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	oldID := e.Run(e.Name("app"), &container.Config{Image: ref, Labels: map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}}, nil, nil)
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	stop := startDaemon(t, env)
	defer stop()

	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/update?wait=true", nil)
	req.Header.Set("Authorization", "Bearer s3cret-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep updater.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/update?wait=true: %s, %v", resp.Status, err)
	}
	if rep.Count(updater.OutcomeUpdated) != 1 || rep.Trigger != "http" {
		t.Fatalf("report %+v, want one container updated by an http trigger", rep)
	}
	if now := e.Inspect(e.Name("app")); now.ID == oldID || !now.State.Running {
		t.Errorf("app after the triggered run: id %s (was %s), running %v", now.ID, oldID, now.State.Running)
	}

	stop() // exits 0 when its context ends (what SIGTERM does)
}

// TestDamagedStateFile: a state file that is not one (or is damaged) stops run and once with
// one line naming the file and exit 2, never a panic; the file is left for the user.
func TestDamagedStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "watcher.db")
	if err := os.WriteFile(path, []byte("this is not a state file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"once", "run"} {
		code, _, stderr := runCmd(t, []string{"WATCHER_STATE_DIR=" + dir, "DOCKER_HOST=unix:///nonexistent.sock"}, cmd)
		if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, path) ||
			!strings.Contains(stderr, "move it aside") || strings.Contains(stderr, "goroutine") {
			t.Errorf("watcher %s on a damaged state file = exit %d, stderr %q; want exit 2 and one line naming %s", cmd, code, stderr, path)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "this is not a state file" {
		t.Error("the damaged file was changed")
	}
}
