package e2e

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.yaml.in/yaml/v3"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestWatchtowerDropIn runs Watchtower's documented setups (its README and docs: run once,
// label-enable, interval with cleanup, monitor-only, scope, the HTTP API with a token and
// periodic polls, notification URLs) against the image built from this repository, with the
// same flags, variables and labels, and checks each does what Watchtower's docs say.
//
// Every watcher here is scoped to this test's containers (--scope, or WATCHER_WATCH_SCOPE where
// a setup has none of its own): Watchtower watches every container by default, and the engine
// is shared with the other tests. It runs on the host network to reach the test registry and
// the notification receivers on 127.0.0.1, with the socket's group (the image is not root).
func TestWatchtowerDropIn(t *testing.T) {
	e := testenv.New(t)
	dumpLogsOnFailure(t, e)
	w := buildWatchtowerHarness(t, e)

	t.Run("run once", func(t *testing.T) { wtRunOnce(t, w) })
	t.Run("label-enable and monitor-only from the environment", func(t *testing.T) { wtLabelMonitor(t, w) })
	t.Run("lifecycle hooks, exit 75 included", func(t *testing.T) { wtHooks(t, w) })
	t.Run("interval with cleanup and the HTTP API's periodic polls", func(t *testing.T) { wtInterval(t, w) })
	t.Run("the migration guide's compose file", func(t *testing.T) { runAfterCompose(t, e, w) })
	t.Run("HTTP API, metrics and notifications", func(t *testing.T) { wtHTTPAPI(t, w) })
}

// wtRunOnce: Watchtower's run-once line, with --cleanup and a scope; enable=false opts out.
func wtRunOnce(t *testing.T, w *wtHarness) {
	e := w.e
	// docker run --rm -v /var/run/docker.sock:/var/run/docker.sock containrrr/watchtower --run-once
	scope := e.Owner + "-once"
	a := w.app(t, "once-a", map[string]string{"com.centurylinklabs.watchtower.scope": scope})
	b := w.app(t, "once-b", map[string]string{"com.centurylinklabs.watchtower.scope": scope, "com.centurylinklabs.watchtower.enable": "false"})
	c := w.app(t, "once-c", map[string]string{"com.centurylinklabs.watchtower.scope": scope + "-other"})
	for _, x := range []*wtApp{a, b, c} {
		x.release(t, "v2")
	}
	code, logs := w.runOnce(t, "once", nil, "--run-once", "--cleanup", "--scope", scope)
	if code != 0 {
		t.Fatalf("--run-once exit code %d, want 0\n%s", code, logs)
	}
	a.wantUpdated(t, "v2")
	b.wantUntouched(t) // enable=false always opts out
	c.wantUntouched(t) // another scope
	if _, err := e.Docker.ImageInspect(context.Background(), a.oldImage); !cerrdefs.IsNotFound(err) {
		t.Errorf("--cleanup: the old image %s is still there (%v)", a.oldImage, err)
	}
	if !strings.Contains(logs, "1 updated") {
		t.Errorf("the run's report does not say 1 updated:\n%s", logs)
	}
}

// wtLabelMonitor: label-enable and monitor-only from the environment alone (the image's own command).
func wtLabelMonitor(t *testing.T, w *wtHarness) {
	e := w.e
	// environment: WATCHTOWER_LABEL_ENABLE, WATCHTOWER_MONITOR_ONLY, WATCHTOWER_RUN_ONCE; no command
	scope := e.Owner + "-label"
	on := w.app(t, "label-on", map[string]string{"com.centurylinklabs.watchtower.scope": scope, "com.centurylinklabs.watchtower.enable": "true"})
	off := w.app(t, "label-off", map[string]string{"com.centurylinklabs.watchtower.scope": scope})
	on.release(t, "v2")
	off.release(t, "v2")
	env := []string{"WATCHTOWER_LABEL_ENABLE=true", "WATCHTOWER_RUN_ONCE=true", "WATCHTOWER_SCOPE=" + scope}
	code, logs := w.runOnce(t, "label-monitor", append(env, "WATCHTOWER_MONITOR_ONLY=true"))
	if code != 0 || !strings.Contains(logs, "update_available") {
		t.Fatalf("monitor-only run: exit %d, want 0 and the update reported available\n%s", code, logs)
	}
	on.wantUntouched(t)
	off.wantUntouched(t)
	code, logs = w.runOnce(t, "label", env)
	if code != 0 {
		t.Fatalf("label-enable run: exit %d\n%s", code, logs)
	}
	on.wantUpdated(t, "v2")
	off.wantUntouched(t)
}

// wtHooks: lifecycle hooks around a run once: exit 75 skips, another exit code fails, neither touches the container.
func wtHooks(t *testing.T, w *wtHarness) {
	e := w.e
	// docker run … --run-once --enable-lifecycle-hooks, with lifecycle labels on the containers
	scope := e.Owner + "-hooks"
	hook := func(kv ...string) map[string]string {
		l := map[string]string{"com.centurylinklabs.watchtower.scope": scope}
		for i := 0; i+1 < len(kv); i += 2 {
			l["com.centurylinklabs.watchtower.lifecycle."+kv[i]] = kv[i+1]
		}
		return l
	}
	ok := w.app(t, "hook-ok", hook("pre-update", "echo draining $APP_VERSION", "post-update", "echo warmed $APP_VERSION"))
	skip := w.app(t, "hook-skip", hook("pre-update", "echo busy; exit 75"))
	fail := w.app(t, "hook-fail", hook("pre-update", "exit 2"))
	for _, a := range []*wtApp{ok, skip, fail} {
		a.release(t, "v2")
	}
	code, logs := w.runOnce(t, "hooks", nil, "--run-once", "--enable-lifecycle-hooks", "--scope", scope)
	if code != 1 { // the failed pre-update hook: once's "something could not be updated"
		t.Errorf("--run-once with a failing pre-update hook: exit %d, want 1\n%s", code, logs)
	}
	ok.wantUpdated(t, "v2")
	skip.wantUntouched(t)
	fail.wantUntouched(t)
	for _, want := range []string{"plan/HookSkipped: pre-update hook exited 75", "plan/HookFailed: pre-update hook exited 2",
		`hook=pre-update exit_code=0`, `hook=post-update exit_code=0`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run's output does not say %q:\n%s", want, logs)
		}
	}
}

// wtInterval: a daemon with --interval and --cleanup, whose API keeps the schedule (periodic polls).
func wtInterval(t *testing.T, w *wtHarness) {
	e := w.e
	// command: --interval 1 --cleanup --http-api-update --http-api-token … --http-api-periodic-polls
	scope := e.Owner + "-interval"
	a := w.app(t, "interval", map[string]string{"com.centurylinklabs.watchtower.scope": scope})
	d := w.daemon(t, "interval", nil, "--interval", "1", "--cleanup", "--scope", scope,
		"--http-api-update", "--http-api-token", w.token, "--http-api-periodic-polls")
	a.release(t, "v2")
	a.waitUpdated(t, "v2", 2*time.Minute)
	waitFor(t, "the old image removed by --cleanup", time.Minute, func() bool {
		_, err := e.Docker.ImageInspect(context.Background(), a.oldImage)
		return cerrdefs.IsNotFound(err)
	})
	d.stop(t)
}

// wtHTTPAPI: the HTTP API without periodic polls: token, comma list of images, /v1/metrics, notifications.
func wtHTTPAPI(t *testing.T, w *wtHarness) {
	e := w.e
	// command: --http-api-update --http-api-token … --http-api-metrics --notification-url …
	// environment: the legacy WATCHTOWER_NOTIFICATIONS=gotify with its URL and token
	scope := e.Owner + "-api"
	a := w.app(t, "api-a", map[string]string{"com.centurylinklabs.watchtower.scope": scope})
	b := w.app(t, "api-b", map[string]string{"com.centurylinklabs.watchtower.scope": scope})
	hook, gotify := newHookReceiver(t, false), newHookReceiver(t, true)
	env := []string{"WATCHTOWER_NOTIFICATIONS=gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_URL=" + gotify.url,
		"WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN=AbCdEfGhIjKlMnO", "WATCHTOWER_NO_STARTUP_MESSAGE=true"}
	d := w.daemon(t, "api", env, "--http-api-update", "--http-api-token", w.token, "--http-api-metrics",
		"--scope", scope, "--notification-url", "generic+"+hook.url+"/watchtower")
	if logs := containerLogs(e, d.id); !strings.Contains(logs, "no schedule: containers without a watcher.schedule label run only when triggered over HTTP") {
		t.Errorf("--http-api-update without --http-api-periodic-polls still schedules runs:\n%s", logs)
	}
	a.release(t, "v2")
	b.release(t, "v2")
	if status, body := d.post(t, "/v1/update?image="+a.repo()+","+b.repo(), "wrong-token-0123456789"); status != http.StatusUnauthorized {
		t.Errorf("POST /v1/update with a wrong token = %d %s, want 401", status, body)
	}
	// Watchtower's call: a bearer token and its comma list of images.
	if status, body := d.post(t, "/v1/update?image="+a.repo()+","+b.repo(), w.token); status != http.StatusAccepted {
		t.Fatalf("POST /v1/update?image=a,b = %d %s, want 202", status, body)
	}
	a.waitUpdated(t, "v2", 2*time.Minute)
	b.waitUpdated(t, "v2", time.Minute)
	for _, rc := range []*hookReceiver{hook, gotify} {
		if msg := rc.waitFor(t, a.name); !strings.Contains(msg, "updated") {
			t.Errorf("notification %q does not say %s was updated", msg, a.name)
		}
	}
	metrics := d.get(t, "/v1/metrics", w.token)
	for _, want := range []string{"watchtower_containers_updated 2", "watchtower_scans_total ", "watchtower_scans_skipped 0", "watcher_updates_total{result=\"updated\"} 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("GET /v1/metrics lacks %q", want)
		}
	}
	d.stop(t)
}

// runAfterCompose runs examples/watchtower/after.compose.yaml: its watcher service with the
// file's command, environment, volumes and group, its apps with the file's labels. What the test
// adds is watcher's own variables, which beat the file's Watchtower settings: this test's scope,
// a port of its own (host network), and a local notification receiver.
func runAfterCompose(t *testing.T, e *testenv.Env, w *wtHarness) {
	after, _ := readCompose(t, "after.compose.yaml")
	svc := after.Services["watchtower"]
	scope := e.Owner + "-compose"
	withScope := func(labels map[string]string) map[string]string {
		l := maps.Clone(labels)
		l["watcher.scope"] = scope
		return l
	}
	web := w.app(t, "web", withScope(after.Services["web"].Labels))
	db := w.app(t, "db", withScope(after.Services["db"].Labels))
	rc := newHookReceiver(t, false)
	var env []string
	for k, v := range svc.Environment {
		env = append(env, k+"="+v)
	}
	env = append(env, "WATCHER_WATCH_SCOPE="+scope, "WATCHER_NOTIFY_URLS=generic+"+rc.url+"/compose")
	var binds []string
	for _, v := range svc.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); src == "watcher-state" {
			vol := "watcher-state-" + e.Owner
			t.Cleanup(func() {
				_, _ = e.Docker.VolumeRemove(context.Background(), vol, client.VolumeRemoveOptions{Force: true})
			})
			binds = append(binds, vol+":"+dst)
		} else if dst != "/var/run/docker.sock" {
			t.Fatalf("unexpected volume %q in after.compose.yaml", v)
		}
	}
	if len(svc.GroupAdd) != 1 || !strings.Contains(svc.GroupAdd[0], "DOCKER_GID") {
		t.Fatalf("group_add %v: want the DOCKER_GID variable", svc.GroupAdd)
	}
	d := w.daemonWith(t, "compose", env, binds, strings.Fields(svc.Command)...)
	logs := containerLogs(e, d.id)
	for _, want := range []string{"WATCHTOWER_NOTIFICATION_URL is overridden by WATCHER_NOTIFY_URLS", "--http-api-metrics has no effect"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the start log does not say %q:\n%s", want, logs)
		}
	}
	web.release(t, "v2")
	db.release(t, "v2")
	status, body := d.post(t, "/v1/update?wait=true", svc.Environment["WATCHTOWER_HTTP_API_TOKEN"])
	if status != http.StatusOK || !strings.Contains(body, `"outcome":"updated"`) {
		t.Fatalf("POST /v1/update?wait=true with the file's token = %d %s", status, body)
	}
	web.wantUpdated(t, "v2")
	db.wantUntouched(t) // labelled enable=false
	if msg := rc.waitFor(t, web.name); !strings.Contains(msg, "updated") {
		t.Errorf("notification %q does not say %s was updated", msg, web.name)
	}
	d.stop(t)
}

// wtHarness is the built image and what every watcher container here shares.
type wtHarness struct {
	e     *testenv.Env
	image string
	sock  string
	gid   string
	token string
}

func buildWatchtowerHarness(t *testing.T, e *testenv.Env) *wtHarness {
	t.Helper()
	sock := engineSocket(t)
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatalf("engine socket %s: %v", sock, err)
	}
	id, _ := watcherImage(t, e)
	ref := e.Registry.Ref("watcher", "wt-e2e")
	tagImage(t, id, ref)
	return &wtHarness{e: e, image: ref, sock: sock, gid: strconv.FormatUint(uint64(st.Gid), 10), token: "wt-" + randomHex(16)}
}

// start runs the image with the Docker CLI as Watchtower's docs run Watchtower — `docker run
// -v /var/run/docker.sock:/var/run/docker.sock IMAGE ARGS…` with its environment — plus what
// the test needs: the socket's group (the image is not root), the host network, a fast verify
// window. binds are more volumes.
func (w *wtHarness) start(t *testing.T, name string, env, binds []string, args ...string) string {
	t.Helper()
	cli := []string{"run", "--detach", "--name", w.e.Name("wt-" + name), "--label", testenv.OwnerLabel + "=" + w.e.Owner,
		"--group-add", w.gid, "--network", "host", "-v", w.sock + ":/var/run/docker.sock"}
	for _, b := range binds {
		cli = append(cli, "-v", b)
	}
	for _, kv := range append([]string{"WATCHER_UPDATE_VERIFY=1s"}, env...) {
		cli = append(cli, "-e", kv)
	}
	out := strings.Fields(dockerCLI(t, "", append(append(cli, w.image), args...)...))
	if len(out) == 0 {
		t.Fatal("docker run printed no container ID")
	}
	return out[len(out)-1]
}

// runOnce starts a watcher that runs once and returns its exit code and output.
func (w *wtHarness) runOnce(t *testing.T, name string, env []string, args ...string) (int, string) {
	t.Helper()
	id := w.start(t, name, env, nil, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := w.e.Docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		return int(r.StatusCode), containerLogs(w.e, id)
	case err := <-res.Error:
		t.Fatalf("waiting for the run-once watcher: %v\n%s", err, containerLogs(w.e, id))
	}
	return -1, ""
}

// wtDaemon is a watcher container left running, with its API on a port of its own.
type wtDaemon struct {
	w    *wtHarness
	id   string
	addr string
}

func (w *wtHarness) daemon(t *testing.T, name string, env []string, args ...string) *wtDaemon {
	t.Helper()
	return w.daemonWith(t, name, env, nil, args...)
}

func (w *wtHarness) daemonWith(t *testing.T, name string, env, binds []string, args ...string) *wtDaemon {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	// Watchtower's API has a fixed :8080; on the host network each test daemon needs its own port.
	d := &wtDaemon{w: w, addr: addr, id: w.start(t, name, append(env, "WATCHER_HTTP_LISTEN="+addr), binds, args...)}
	waitFor(t, "the daemon's /healthz", time.Minute, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return d
}

func (d *wtDaemon) request(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *wtDaemon) post(t *testing.T, path, token string) (int, string) {
	t.Helper()
	return d.request(t, http.MethodPost, path, token)
}

func (d *wtDaemon) get(t *testing.T, path, token string) string {
	t.Helper()
	status, body := d.request(t, http.MethodGet, path, token)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	return body
}

// stop stops the daemon as `docker stop` does and expects a clean exit.
func (d *wtDaemon) stop(t *testing.T) {
	t.Helper()
	timeout := 30
	if _, err := d.w.e.Docker.ContainerStop(context.Background(), d.id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if st := d.w.e.Inspect(d.id).State; st.ExitCode != 0 {
		t.Errorf("the daemon exited %d after SIGTERM, want 0\n%s", st.ExitCode, containerLogs(d.w.e, d.id))
	}
}

// wtApp is a watched application container on a test image.
type wtApp struct {
	e        *testenv.Env
	name     string
	ref      string
	id       string
	oldImage string
}

func (w *wtHarness) app(t *testing.T, base string, labels map[string]string) *wtApp {
	t.Helper()
	ref, _ := w.e.Registry.PushImage(t, base, "latest", testenv.ImageSpec{Version: "v1", Shell: true})
	w.e.Pull(ref)
	a := &wtApp{e: w.e, name: w.e.Name(base), ref: ref}
	a.id = w.e.Run(a.name, &container.Config{Image: ref, Labels: labels}, nil, nil)
	a.oldImage = w.e.Inspect(a.id).Image
	return a
}

// repo is the app's image without its tag, as Watchtower's ?image= takes it.
func (a *wtApp) repo() string { return strings.TrimSuffix(a.ref, ":latest") }

// release pushes a new version of the app's image under the same tag.
func (a *wtApp) release(t *testing.T, version string) {
	t.Helper()
	a.e.Registry.PushImage(t, strings.TrimPrefix(a.repo(), a.e.Registry.Host+"/"), "latest", testenv.ImageSpec{Version: version, Shell: true})
}

// version says which container has the app's name now, its version and whether it runs. The
// name moves between containers during an update: a miss is "" and not running.
func (a *wtApp) version() (string, string, bool) {
	res, err := a.e.Docker.ContainerInspect(context.Background(), a.name, client.ContainerInspectOptions{})
	if err != nil {
		return "", "", false
	}
	ins := res.Container
	for _, kv := range ins.Config.Env {
		if v, ok := strings.CutPrefix(kv, "APP_VERSION="); ok {
			return ins.ID, v, ins.State.Running
		}
	}
	return ins.ID, "", ins.State.Running
}

func (a *wtApp) wantUpdated(t *testing.T, version string) {
	t.Helper()
	if id, v, running := a.version(); id == a.id || v != version || !running {
		t.Errorf("%s: id %.12s (was %.12s), version %s, running %v; want it replaced by a running %s", a.name, id, a.id, v, running, version)
	}
}

func (a *wtApp) waitUpdated(t *testing.T, version string, within time.Duration) {
	t.Helper()
	waitFor(t, a.name+" on "+version, within, func() bool {
		id, v, running := a.version()
		return id != a.id && v == version && running
	})
}

func (a *wtApp) wantUntouched(t *testing.T) {
	t.Helper()
	if id, v, running := a.version(); id != a.id || v != "v1" || !running {
		t.Errorf("%s: id %.12s (was %.12s), version %s, running %v; want it left alone", a.name, id, a.id, v, running)
	}
}

// waitFor polls cond every 200ms until it holds, failing the test after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hookReceiver is a local webhook (or, with gotify, a Gotify server's /message) that keeps the
// messages it gets.
type hookReceiver struct {
	url  string
	msgs chan string
}

func newHookReceiver(t *testing.T, gotify bool) *hookReceiver {
	rc := &hookReceiver{msgs: make(chan string, 10)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.msgs <- string(b)
		if gotify {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":1,"appid":1,"message":"ok","title":"t","priority":0,"date":"2025-01-01T00:00:00Z"}`)
		}
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

// waitFor returns the first message that mentions what (a startup message may come first),
// failing the test when none does within a minute.
func (rc *hookReceiver) waitFor(t *testing.T, what string) string {
	t.Helper()
	deadline := time.After(time.Minute)
	var seen []string
	for {
		select {
		case m := <-rc.msgs:
			if strings.Contains(m, what) {
				return m
			}
			seen = append(seen, m)
		case <-deadline:
			t.Fatalf("no notification at %s mentioning %s within a minute; got %q", rc.url, what, seen)
			return ""
		}
	}
}

// composeService is the part of a compose service these tests read.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     string            `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Labels      map[string]string `yaml:"labels"`
	Volumes     []string          `yaml:"volumes"`
	GroupAdd    []string          `yaml:"group_add"`
	Ports       []string          `yaml:"ports"`
	Restart     string            `yaml:"restart"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func readCompose(t *testing.T, name string) (composeFile, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "watchtower", name))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("examples/watchtower/%s: %v", name, err)
	}
	return c, string(b)
}

// TestWatchtowerComposeExamples keeps the migration guide honest: it shows both example files
// verbatim, and the move changes only the watcher's image and adds the socket's group and the
// state volume — command, environment, labels and every other service stay as they were.
func TestWatchtowerComposeExamples(t *testing.T) {
	before, beforeText := readCompose(t, "before.compose.yaml")
	after, afterText := readCompose(t, "after.compose.yaml")
	guide, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "migrating-from-watchtower.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"before": beforeText, "after": afterText} {
		if !strings.Contains(string(guide), "```yaml\n"+text+"```") {
			t.Errorf("docs/migrating-from-watchtower.md does not show examples/watchtower/%s.compose.yaml as it is", name)
		}
	}
	b, a := before.Services["watchtower"], after.Services["watchtower"]
	if b.Image != "containrrr/watchtower" || a.Image == b.Image {
		t.Errorf("images: before %q, after %q", b.Image, a.Image)
	}
	if a.Command != b.Command || !maps.Equal(a.Environment, b.Environment) || !maps.Equal(a.Labels, b.Labels) ||
		!slices.Equal(a.Ports, b.Ports) || a.Restart != b.Restart {
		t.Errorf("the watcher service changed more than its image:\nbefore %+v\nafter  %+v", b, a)
	}
	if len(b.GroupAdd) != 0 || len(a.GroupAdd) != 1 || !slices.Contains(a.Volumes, "watcher-state:/var/lib/watcher") {
		t.Errorf("after: group_add %v, volumes %v; want the socket's group and the state volume added", a.GroupAdd, a.Volumes)
	}
	if _, ok := after.Volumes["watcher-state"]; !ok {
		t.Error("after: no watcher-state volume")
	}
	for name, s := range before.Services {
		if name != "watchtower" && !reflect.DeepEqual(after.Services[name], s) {
			t.Errorf("service %s changed: %+v -> %+v", name, s, after.Services[name])
		}
	}
}
