package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// opsEnv is a test's engine and registry with the environment of a watcher that watches only
// this test's containers (a scope of its own) and keeps its state in a fresh directory.
func opsEnv(t *testing.T, extra ...string) (*testenv.Env, []string, map[string]string) {
	e := testenv.New(t)
	labels := map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}
	env := append([]string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_WATCH_SCOPE=" + e.Owner, "WATCHER_UPDATE_VERIFY=1s",
		"WATCHER_LOG_LEVEL=warn", "WATCHER_SCHEDULE="}, extra...)
	return e, env, labels
}

func appVersion(e *testenv.Env, name string) string {
	for _, kv := range e.Inspect(name).Config.Env {
		if v, ok := strings.CutPrefix(kv, "APP_VERSION="); ok {
			return v
		}
	}
	return ""
}

func with(labels map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// hookReceiver counts the posts of shoutrrr's generic webhook service.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) posts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// TestOnceNotifiesOnce: `watcher once` in monitor mode notifies an available update once; the
// next once (a new process on the same state file) stays quiet; after a newer push it notifies
// again.
func TestOnceNotifiesOnce(t *testing.T) {
	hook := newHookReceiver(t)
	e, env, labels := opsEnv(t, "WATCHER_UPDATE_MODE=monitor", "WATCHER_NOTIFY_URLS=generic+"+hook.URL+"/hook")
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Run(e.Name("app"), &container.Config{Image: ref, Labels: labels}, nil, nil)
	_, d2 := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	for i, want := range []int{1, 1} {
		code, out, stderr := runCmd(t, env, "once")
		if code != 0 || !strings.Contains(out, "update_available") {
			t.Fatalf("once %d = exit %d\n%s%s", i+1, code, out, stderr)
		}
		if got := len(hook.posts()); got != want {
			t.Fatalf("after once %d: %d notifications, want %d: %q", i+1, got, want, hook.posts())
		}
	}
	if p := hook.posts()[0]; !strings.Contains(p, e.Name("app")) || !strings.Contains(p, "update available") || !strings.Contains(p, d2.String()[:19]) {
		t.Errorf("the notification does not tell of the update to %s:\n%s", d2, p)
	}
	_, d3 := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3"})
	if code, out, stderr := runCmd(t, env, "once"); code != 0 {
		t.Fatalf("third once = exit %d\n%s%s", code, out, stderr)
	}
	posts := hook.posts()
	if len(posts) != 2 || !strings.Contains(posts[1], d3.String()[:19]) {
		t.Errorf("after a newer push: %d notifications (%q), want a second one telling of %s", len(posts), posts, d3)
	}
	if v := appVersion(e, e.Name("app")); v != "v1" {
		t.Errorf("monitor mode changed the container: it runs %s", v)
	}
}

// TestRollbackCommand: `watcher rollback NAME` after an update puts the previous image back
// (exit 0); again there is nothing to roll back (exit 1), as for a container not watched; bad
// usage is exit 2.
func TestRollbackCommand(t *testing.T) {
	e, env, labels := opsEnv(t)
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Run(e.Name("app"), &container.Config{Image: ref, Labels: labels}, nil, nil)
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	if code, out, stderr := runCmd(t, env, "once"); code != 0 || appVersion(e, e.Name("app")) != "v2" {
		t.Fatalf("once = exit %d, version %s\n%s%s", code, appVersion(e, e.Name("app")), out, stderr)
	}

	code, out, stderr := runCmd(t, env, "rollback", e.Name("app"))
	t.Logf("watcher rollback:\n%s%s", out, stderr)
	if code != 0 || !strings.Contains(out, "rolled back by hand") || appVersion(e, e.Name("app")) != "v1" || !e.Inspect(e.Name("app")).State.Running {
		t.Fatalf("rollback = exit %d, version %s\n%s%s\nwant exit 0 and v1 running", code, appVersion(e, e.Name("app")), out, stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rollback", e.Name("app")}, 1, "nothing to roll back: its last update (to sha256:"},
		{[]string{"rollback", "nope-" + e.Owner}, 1, "is not a container this watcher watches"},
		{[]string{"rollback", e.Name("app"), "--host", "edge-1"}, 2, `--host "edge-1": no hosts are configured`},
		{[]string{"rollback"}, 2, "which container?"},
		{[]string{"once", "--host", "edge-1"}, 2, "--host is a flag of rollback only"},
	} {
		code, out, stderr := runCmd(t, env, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("watcher %v = exit %d\n%s%s\nwant exit %d saying %q", tc.args, code, out, stderr, tc.code, tc.msg)
		}
	}
	// The next once does not apply v2 again: the rollback undid it.
	if code, out, _ := runCmd(t, env, "once"); code != 0 || !strings.Contains(out, "a manual rollback undid") || appVersion(e, e.Name("app")) != "v1" {
		t.Errorf("once after the rollback = exit %d, version %s\n%s\nwant v2 held", code, appVersion(e, e.Name("app")), out)
	}
}

// clock is a time of day "HH:MM" d from now, in the process's zone (the zone windows are read in
// without a CRON_TZ prefix).
func clock(d time.Duration) string { return time.Now().Add(d).Format("15:04") }

// TestWindowsOnce: on the real clock, `watcher once` holds an update outside update.window
// (skipped, OutsideWindow) and applies it inside a window that wraps midnight; a container with
// a malformed watcher.window is reported alone.
func TestWindowsOnce(t *testing.T) {
	e, env, labels := opsEnv(t)
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Run(e.Name("app"), &container.Config{Image: ref, Labels: labels}, nil, nil)
	e.Run(e.Name("bad"), &container.Config{Image: ref, Labels: with(labels, "watcher.window", "Mon 25:00-26:00")}, nil, nil)
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	excluding := "WATCHER_UPDATE_WINDOW=" + clock(2*time.Hour) + "-" + clock(3*time.Hour)
	code, out, stderr := runCmd(t, append(env, excluding), "once", "--json")
	var rep updater.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("once --json: %v\n%s%s", err, out, stderr)
	}
	for _, l := range rep.Containers {
		switch l.Name {
		case e.Name("app"):
			if l.Outcome != updater.OutcomeSkipped || l.Failure == nil || l.Failure.Reason != "OutsideWindow" || !strings.Contains(l.Message, "the next one starts") {
				t.Errorf("app outside the window (%s): %s %q %+v; want skipped, OutsideWindow", excluding, l.Outcome, l.Message, l.Failure)
			}
		case e.Name("bad"):
			if l.Outcome != updater.OutcomeFailed || l.Failure == nil || l.Failure.Reason != "InvalidLabel" || !strings.Contains(l.Failure.Message, "watcher.window") {
				t.Errorf("bad: %s %+v; want failed, InvalidLabel naming watcher.window", l.Outcome, l.Failure)
			}
		}
	}
	if code != 1 || appVersion(e, e.Name("app")) != "v1" {
		t.Errorf("once outside the window = exit %d (want 1: the bad label), app runs %s (want v1)", code, appVersion(e, e.Name("app")))
	}

	// From an hour ago to two hours ago: open now, across midnight (nearly all day).
	including := "WATCHER_UPDATE_WINDOW=" + clock(-time.Hour) + "-" + clock(-2*time.Hour)
	code, out, stderr = runCmd(t, append(env, including), "once")
	if !strings.Contains(out, e.Name("app")) || appVersion(e, e.Name("app")) != "v2" {
		t.Errorf("once inside the window (%s) = exit %d, app runs %s\n%s%s\nwant it updated", including, code, appVersion(e, e.Name("app")), out, stderr)
	}

	if code, _, stderr := runCmd(t, append(env, "WATCHER_UPDATE_WINDOW=Mon-Fri 22:00"), "once"); code != 2 || !strings.Contains(stderr, "config: update.window: bad maintenance window") {
		t.Errorf("a bad update.window = exit %d %q, want 2 naming the key", code, stderr)
	}
}

// TestDaemonWebhookAndRollback: with the schedule off, a distribution push notification makes
// the daemon update the container that runs the pushed tag (a push of another repository starts
// nothing); POST /v1/rollback then puts the previous image back, and a second one is 409.
func TestDaemonWebhookAndRollback(t *testing.T) {
	const token, secret = "s3cret-token-0123456789", "hook-secret-0123456789"
	addr := freePort(t)
	e, env, labels := opsEnv(t, "WATCHER_HTTP_LISTEN="+addr, "WATCHER_HTTP_TOKEN="+token, "WATCHER_HTTP_WEBHOOK_SECRET="+secret)
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Run(e.Name("app"), &container.Config{Image: ref, Labels: labels}, nil, nil)
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	stop := startDaemon(t, env)
	defer stop()

	post := func(path, auth, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	envelope := func(repo string) string {
		return fmt.Sprintf(`{"events":[{"action":"push","target":{"repository":%q,"tag":"latest","digest":"sha256:%s"},"request":{"host":%q}}]}`,
			repo, strings.Repeat("0", 64), e.Registry.Host)
	}
	if code, v := post("/v1/webhooks/registry", "Bearer "+secret, envelope("unrelated")); code != http.StatusOK || v["run_id"] != nil {
		t.Errorf("push of an unwatched repository = %d %v, want 200 without a run", code, v)
	}
	code, v := post("/v1/webhooks/registry", "Bearer "+secret, envelope("app"))
	id, _ := v["run_id"].(string)
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("push of app:latest = %d %v, want 202 with a run id", code, v)
	}
	rep := waitRun(t, addr, token, id)
	if rep.Trigger != updater.TriggerWebhook || rep.Count(updater.OutcomeUpdated) != 1 || appVersion(e, e.Name("app")) != "v2" {
		t.Fatalf("webhook run %+v, app runs %s; want it updated to v2", rep, appVersion(e, e.Name("app")))
	}

	code, v = post("/v1/rollback?container="+e.Name("app")+"&wait=true", "Bearer "+token, "")
	if code != http.StatusOK || v["trigger"] != "rollback" || appVersion(e, e.Name("app")) != "v1" {
		t.Errorf("POST /v1/rollback?wait=true = %d %v, app runs %s; want 200 and v1", code, v, appVersion(e, e.Name("app")))
	}
	if code, v = post("/v1/rollback?container="+e.Name("app"), "Bearer "+token, ""); code != http.StatusConflict || v["reason"] != "NoPreviousUpdate" {
		t.Errorf("second POST /v1/rollback = %d %v, want 409 NoPreviousUpdate", code, v)
	}
}

// startDaemon runs `watcher run` in-process until the returned func stops it.
func startDaemon(t *testing.T, env []string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	stderr := &testenv.SyncBuffer{}
	go func() { exited <- run(ctx, []string{"run"}, env, io.Discard, stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _, _ := runCmd(t, env, "healthcheck"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("daemon never became healthy; stderr:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Stopping it is what SIGTERM does: it ends the context; the daemon exits 0.
	return sync.OnceFunc(func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("daemon exit code %d, want 0; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop within 30s of its context ending")
		}
	})
}

// waitRun polls GET /v1/runs/{id} until the run has finished.
func waitRun(t *testing.T, addr, token, id string) updater.Report {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/runs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rep updater.Report
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(b, &rep) == nil && !rep.FinishedAt.IsZero() {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not finish: %s", id, bytes.TrimSpace(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
