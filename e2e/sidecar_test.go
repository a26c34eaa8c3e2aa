package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestSidecar builds the repository's Dockerfile, runs the image as users are told to (socket
// mounted, non-root with the socket's group, read-only root filesystem, state on a volume,
// config from the environment), and has it update a labelled container when triggered over HTTP.
func TestSidecar(t *testing.T) {
	began := time.Now()
	e := testenv.New(t)
	sock := engineSocket(t)
	dumpLogsOnFailure(t, e)

	// The image: the real Dockerfile, built by `docker build` on this repository (image_test.go).
	imageID, version := watcherImage(t, e)
	watcherRef := e.Registry.Ref("watcher", "latest")
	tagImage(t, imageID, watcherRef)
	push(t, e, watcherRef)

	t.Run("image metadata", func(t *testing.T) {
		img, err := e.Docker.ImageInspect(context.Background(), imageID)
		if err != nil {
			t.Fatal(err)
		}
		c := img.Config
		if c == nil {
			t.Fatal("image has no config")
		}
		if c.Healthcheck == nil || !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/watcher", "healthcheck"}) {
			t.Errorf("healthcheck = %+v, want CMD /watcher healthcheck", c.Healthcheck)
		}
		if !slices.Equal(c.Entrypoint, []string{"/watcher"}) {
			t.Errorf("entrypoint = %v, want [/watcher]", c.Entrypoint)
		}
		if c.User != "65532:65532" {
			t.Errorf("user = %q, want the non-root 65532:65532", c.User)
		}
		if _, ok := c.Volumes["/var/lib/watcher"]; !ok {
			t.Errorf("volumes = %v, want /var/lib/watcher", c.Volumes)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.title":   "watcher",
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.source":  "https://github.com/watcher-dev/watcher",
		} {
			if got := c.Labels[k]; got != want {
				t.Errorf("label %s = %q, want %q", k, got, want)
			}
		}
		if img.Os != "linux" || img.Architecture != runtime.GOARCH {
			t.Errorf("platform = %s/%s, want linux/%s", img.Os, img.Architecture, runtime.GOARCH)
		}
	})

	// A labelled app of this test's scope, on v1.
	labels := map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}
	appRef, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(appRef)
	appID := e.Run(e.Name("app"), &container.Config{Image: appRef, Labels: labels}, nil, nil)

	// The sidecar, as docs/sidecar.md runs it.
	sc := startSidecar(t, e, sock, watcherRef, labels)
	t.Logf("sidecar up %v after the test began", time.Since(began).Round(time.Millisecond))

	t.Run("serves the dashboard", func(t *testing.T) {
		for path, want := range map[string]string{"/": `<script src="/ui/app.js"`, "/ui/app.js": "/v1/events"} {
			status, body, err := sc.do(http.MethodGet, path)
			if err != nil || status != http.StatusOK || !strings.Contains(string(body), want) {
				t.Errorf("GET %s = %d %v, %d bytes; want 200 with the dashboard's embedded file", path, status, err, len(body))
			}
		}
	})

	t.Run("runs as documented", func(t *testing.T) {
		ins := e.Inspect(sc.id)
		if !ins.HostConfig.ReadonlyRootfs {
			t.Error("root filesystem is not read-only")
		}
		if ins.Config.User != "65532:65532" {
			t.Errorf("runs as %q, want the image's non-root user", ins.Config.User)
		}
		out := sc.exec(t, "/watcher", "version")
		if !strings.Contains(out, version) {
			t.Errorf("watcher version = %q, want %s stamped by the build", out, version)
		}
		ctx := context.Background()
		// The engine runs on this machine (its socket is local): its process table is ours.
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ins.State.Pid))
		if err != nil {
			t.Fatalf("the sidecar's process: %v", err)
		}
		uid, groups := strings.Fields(procField(string(status), "Uid")), strings.Fields(procField(string(status), "Groups"))
		if len(uid) == 0 || uid[0] != "65532" || !slices.Contains(groups, sc.gid) {
			t.Errorf("the watcher runs with uid %v and groups %v, want 65532 with the socket's group %s", uid, groups, sc.gid)
		}
		for k, want := range map[string]string{"NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"} {
			if got := procField(string(status), k); got != want {
				t.Errorf("the watcher's %s = %q, want %q (no-new-privileges, cap-drop ALL)", k, got, want)
			}
		}
		if logs := containerLogs(e, sc.id); strings.Contains(logs, "readable by every user") {
			t.Errorf("the token file (0440, the socket's group) was warned about:\n%s", logs)
		}
		for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/var/lib/watcher/watcher.db"} {
			if st, err := e.Docker.ContainerStatPath(ctx, sc.id, client.ContainerStatPathOptions{Path: f}); err != nil || st.Stat.Size == 0 {
				t.Errorf("%s in the sidecar: %+v, %v; want a non-empty file", f, st.Stat, err)
			}
		}
		// TZ works on scratch because the zone database is compiled in: the log's timestamps
		// carry the zone's offset (Asia/Kolkata: +05:30 all year).
		if logs := containerLogs(e, sc.id); !strings.Contains(logs, "+05:30") {
			t.Errorf("log timestamps not in TZ=Asia/Kolkata:\n%s", logs)
		}
	})

	t.Run("updates a labelled container", func(t *testing.T) {
		e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
		rep := sc.update(t)
		line := findLine(rep, e.Name("app"))
		if line == nil || line.Outcome != "updated" {
			t.Fatalf("app line = %+v, want updated; report %+v", line, rep)
		}
		ins := e.Inspect(e.Name("app"))
		img, err := e.Docker.ImageInspect(context.Background(), appRef)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ins.ID == appID:
			t.Error("the app container was not replaced")
		case !ins.State.Running:
			t.Errorf("the new app container is not running: %+v", ins.State)
		case ins.Image != img.ID:
			t.Errorf("the app runs image %s, want the new %s", ins.Image, img.ID)
		case !slices.Contains(ins.Config.Env, "APP_VERSION=v2"):
			t.Errorf("the app's env = %v, want APP_VERSION=v2", ins.Config.Env)
		}
		if n := len(e.Owned()); n != 2 {
			t.Errorf("%d containers of this test, want 2 (the sidecar and the app)", n)
		}
	})

	t.Run("becomes healthy", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			ins := e.Inspect(sc.id)
			if h := ins.State.Health; h != nil && h.Status == container.Healthy {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health = %+v, want healthy within 60s", ins.State.Health)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	// Self-update (docs/sidecar.md): the watcher hands over to a successor on the new image,
	// which verifies itself and removes its predecessor. The waiting trigger is answered 503
	// with the run id when the predecessor shuts its API down; the successor serves that run's
	// report, its own "recovery" run that finished the update, and goes on updating the app.
	// The image as built, by digest: every new watcher image below is made from it.
	builtRef := digestRef(t, watcherRef)

	// A successor that cannot run (here its image sets an invalid log format: it exits 2 at
	// start) is stopped by the predecessor, which re-executes itself and rolls back: the same
	// container serves again under its name, on the old image, and says why in its history.
	t.Run("rolls back a broken successor", func(t *testing.T) {
		pushNewWatcherImage(t, e, builtRef, watcherRef, "WATCHER_LOG_FORMAT=broken")
		if status, body := sc.post(t, "/v1/update?wait=true"); status != http.StatusServiceUnavailable {
			t.Fatalf("POST /v1/update?wait=true during the handover = %d %s, want 503", status, body)
		}
		deadline := time.Now().Add(2 * time.Minute)
		var runs struct{ Runs []report }
		for {
			time.Sleep(time.Second)
			if len(watchers(e)) == 1 && sc.tryGetJSON("/v1/runs", &runs) && len(runs.Runs) > 0 {
				if r := runs.Runs[0]; r.Trigger == "recovery" {
					l := findLine(&r, e.Name("watcher"))
					if l == nil || l.Outcome != "rolled_back" || l.Failure == nil || !strings.Contains(l.Failure.Message, "exit code 2") {
						t.Errorf("recovery run's watcher line = %+v, want rolled_back naming exit code 2", l)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no rollback after 2 minutes; watcher containers %v, runs %+v", watchers(e), runs.Runs)
			}
		}
		w := oneWatcher(t, e)
		if w.ID != sc.id || w.Image != imageID {
			t.Errorf("the watcher is %s on %s, want the predecessor %s on the old image %s", w.ID, w.Image, sc.id, imageID)
		}
	})

	t.Run("updates itself", func(t *testing.T) {
		pushNewWatcherImage(t, e, builtRef, watcherRef)
		status, body := sc.post(t, "/v1/update?wait=true")
		var shut struct {
			Reason string `json:"reason"`
			RunID  string `json:"run_id"`
		}
		if err := json.Unmarshal(body, &shut); status != http.StatusServiceUnavailable || err != nil || shut.RunID == "" {
			t.Fatalf("POST /v1/update?wait=true during the handover = %d %s, want 503 with the run id", status, body)
		}
		var w container.InspectResponse
		deadline := time.Now().Add(2 * time.Minute)
		for {
			// The name moves between containers during the handover: tolerate a miss.
			res, err := e.Docker.ContainerInspect(context.Background(), e.Name("watcher"), client.ContainerInspectOptions{})
			w = res.Container
			if err == nil && w.ID != sc.id && w.State.Running && len(watchers(e)) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no single successor after 2 minutes: %s is %+v on %s (%v); watcher containers %v", e.Name("watcher"), w.State, w.Image, err, watchers(e))
			}
			time.Sleep(500 * time.Millisecond)
		}
		w = oneWatcher(t, e)
		newImage, err := e.Docker.ImageInspect(context.Background(), watcherRef)
		if err != nil {
			t.Fatal(err)
		}
		if w.Image != newImage.ID || w.Image == imageID {
			t.Errorf("the watcher runs %s, want the new image %s", w.Image, newImage.ID)
		}
		if hc := w.HostConfig; !hc.ReadonlyRootfs || !slices.Contains(hc.GroupAdd, sc.gid) ||
			!slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
			t.Errorf("the successor lost its configuration: read-only %v, groups %v, cap drop %v, security options %v",
				hc.ReadonlyRootfs, hc.GroupAdd, hc.CapDrop, hc.SecurityOpt)
		}
		sc.id = w.ID
		waitHealthz(t, sc)

		var rep report
		sc.getJSON(t, "/v1/runs/"+shut.RunID, &rep)
		if line := findLine(&rep, e.Name("watcher")); line == nil || line.Outcome != "handed_over" || line.NewID != w.ID {
			t.Errorf("the handover run's watcher line = %+v, want handed_over to %s", line, w.ID)
		}
		var runs struct{ Runs []report }
		sc.getJSON(t, "/v1/runs", &runs)
		found := false
		for _, r := range runs.Runs {
			if l := findLine(&r, e.Name("watcher")); r.Trigger == "recovery" && l != nil && l.Outcome == "updated" && l.NewID == w.ID {
				found = true
			}
		}
		if !found {
			t.Errorf("no recovery run with the watcher updated to %s in %+v", w.ID, runs.Runs)
		}

		e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3"})
		rep = *sc.update(t)
		if line := findLine(&rep, e.Name("app")); line == nil || line.Outcome != "updated" {
			t.Fatalf("the successor's run: app line = %+v, want updated; report %+v", line, rep)
		}
		if line := findLine(&rep, e.Name("watcher")); line == nil || line.Outcome != "up_to_date" {
			t.Errorf("the successor's run: watcher line = %+v, want up_to_date", line)
		}
		if app := e.Inspect(e.Name("app")); !slices.Contains(app.Config.Env, "APP_VERSION=v3") || !app.State.Running {
			t.Errorf("the app after the successor's run: %v %+v", app.Config.Env, app.State)
		}
		oneWatcher(t, e)
	})

	t.Logf("end to end: %v", time.Since(began).Round(time.Millisecond))
}

// pushNewWatcherImage moves ref's tag to a new image made from image from: the same layers (the
// same binary) with a changed version label (and env added to the image's defaults), as a
// release would look to the registry. It returns the new digest.
func pushNewWatcherImage(t *testing.T, e *testenv.Env, from, ref string, env ...string) string {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatalf("fetching %s: %v", from, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels["org.opencontainers.image.version"] += "-next"
	cf.Config.Env = append(cf.Config.Env, env...)
	next, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Registry.Push(ref, next); err != nil {
		t.Fatalf("pushing the next watcher image: %v", err)
	}
	d, err := next.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// digestRef is ref's repository at the digest its tag points to now.
func digestRef(t *testing.T, ref string) string {
	t.Helper()
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return tag.Context().Name() + "@" + desc.Digest.String()
}

// oneWatcher asserts that exactly one of this test's containers is a watcher (named like the
// sidecar, including set-aside and temporary names) and that it runs; it returns its inspect.
func oneWatcher(t *testing.T, e *testenv.Env) container.InspectResponse {
	t.Helper()
	found := watchers(e)
	if len(found) != 1 {
		var names [][]string
		for _, c := range found {
			names = append(names, c.Names)
		}
		t.Fatalf("%d watcher containers %v, want exactly one", len(found), names)
	}
	ins := e.Inspect(found[0].ID)
	if !ins.State.Running || ins.Name != "/"+e.Name("watcher") {
		t.Fatalf("the watcher %s is %+v, want it running under its name", ins.Name, ins.State)
	}
	return ins
}

// watchers lists this test's containers named like the sidecar (set-aside and temporary names
// included), running or not.
func watchers(e *testenv.Env) []container.Summary {
	var found []container.Summary
	for _, c := range e.Owned() {
		for _, n := range c.Names {
			if strings.HasPrefix(strings.TrimPrefix(n, "/"), "watcher-") {
				found = append(found, c)
				break
			}
		}
	}
	return found
}

// sidecar is the running watcher container and how to reach it.
type sidecar struct {
	e     *testenv.Env
	id    string
	url   string // http://127.0.0.1:PORT
	token string
	gid   string // the engine socket's group, added to the watcher's process
}

// startSidecar runs the watcher image with `docker run` as docs/sidecar.md does, adapted to the
// test: the private engine's socket and the socket's group for the non-root user, the token
// from a file readable by that group only (mode 0440), read-only root filesystem, no new
// privileges and no capabilities, state on the image's volume, config from the environment,
// scoped to this test's containers; host network (to reach the registry on 127.0.0.1, and for
// the test to reach the API on 127.0.0.1; no published port).
func startSidecar(t *testing.T, e *testenv.Env, sock, ref string, labels map[string]string) *sidecar {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatalf("engine socket %s: %v", sock, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	sc := &sidecar{e: e, url: "http://" + addr, token: randomHex(16), gid: strconv.FormatUint(uint64(st.Gid), 10)}
	tokenFile := filepath.Join(t.TempDir(), "watcher_token")
	if err := os.WriteFile(tokenFile, []byte(sc.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tokenFile, -1, int(st.Gid)); err != nil {
		t.Fatalf("chgrp of the token file: %v", err)
	}
	if err := os.Chmod(tokenFile, 0o440); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--detach", "--name", e.Name("watcher"),
		"--read-only", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
		"--group-add", sc.gid,
		"-v", sock + ":/var/run/docker.sock",
		"-v", tokenFile + ":/run/secrets/watcher_token:ro",
		"-e", "WATCHER_HTTP_TOKEN_FILE=/run/secrets/watcher_token",
		"-e", "WATCHER_HTTP_LISTEN=" + addr,
		"-e", "WATCHER_SCHEDULE=", // only the HTTP trigger
		"-e", "WATCHER_WATCH_SCOPE=" + e.Owner,
		"-e", "WATCHER_UPDATE_VERIFY=1s",
		"-e", "WATCHER_LOG_LEVEL=debug",
		"-e", "TZ=Asia/Kolkata",
		"--network", "host",
		// The image's healthcheck command, probed every second instead of every 30s.
		"--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "3",
		"--label", testenv.OwnerLabel + "=" + e.Owner,
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		args = append(args, "--label", k+"="+labels[k])
	}
	out := strings.Fields(dockerCLI(t, "", append(args, ref)...))
	if len(out) == 0 {
		t.Fatal("docker run printed no container ID")
	}
	sc.id = out[len(out)-1]
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(sc.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return sc
			}
		}
		if ins := e.Inspect(sc.id); !ins.State.Running || time.Now().After(deadline) {
			t.Fatalf("the sidecar did not answer /healthz (state %+v, last error %v)", ins.State, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// do sends an authorised request (bounded at two minutes: a waiting trigger takes a run) and
// returns the status and body.
func (sc *sidecar) do(method, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, sc.url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+sc.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// post sends an authorised POST to path and returns the status and body.
func (sc *sidecar) post(t *testing.T, path string) (int, []byte) {
	t.Helper()
	status, body, err := sc.do(http.MethodPost, path)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return status, body
}

// getJSON is an authorised GET of path, decoded into v.
func (sc *sidecar) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	status, body, err := sc.do(http.MethodGet, path)
	if err != nil || status != http.StatusOK || json.Unmarshal(body, v) != nil {
		t.Fatalf("GET %s = %d %v: %s", path, status, err, body)
	}
}

// tryGetJSON is getJSON that reports failure instead of failing the test (the API may be down).
func (sc *sidecar) tryGetJSON(path string, v any) bool {
	status, body, err := sc.do(http.MethodGet, path)
	return err == nil && status == http.StatusOK && json.Unmarshal(body, v) == nil
}

// waitHealthz waits up to a minute for the sidecar's /healthz to answer 200.
func waitHealthz(t *testing.T, sc *sidecar) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, _, err := sc.do(http.MethodGet, "/healthz")
		if err == nil && status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200 within a minute: %d %v", status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// update is POST /v1/update?wait=true with the token; it returns the run report.
func (sc *sidecar) update(t *testing.T) *report {
	t.Helper()
	status, body := sc.post(t, "/v1/update?wait=true")
	if status != http.StatusOK {
		t.Fatalf("POST /v1/update = %d: %s", status, body)
	}
	var rep report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, body)
	}
	return &rep
}

// exec runs a command in the sidecar and returns its output.
func (sc *sidecar) exec(t *testing.T, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cr, err := sc.e.Docker.ExecCreate(ctx, sc.id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	att, err := sc.e.Docker.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return out.String()
}

// report is the run report POST /v1/update?wait=true answers with (docs/api.md): the fields
// this test reads, decoded from the wire as any client would.
type report struct {
	ID         string       `json:"id"`
	Trigger    string       `json:"trigger"`
	Error      string       `json:"error"`
	Containers []reportLine `json:"containers"`
}

type reportLine struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	NewID    string `json:"new_id"`
	Image    string `json:"image"`
	Outcome  string `json:"outcome"`
	Message  string `json:"message"`
	Failure  *struct{ Stage, Reason, Message string }
	Downtime int64 `json:"downtime_ns"`
}

func findLine(rep *report, name string) *reportLine {
	for i := range rep.Containers {
		if rep.Containers[i].Name == name {
			return &rep.Containers[i]
		}
	}
	return nil
}

// push pushes a local image to the test registry through the engine.
func push(t *testing.T, e *testenv.Env, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.Docker.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: "e30="}) // {}: anonymous
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	defer res.Close()
	if err := res.Wait(ctx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// engineSocket is the private engine's unix socket, from DOCKER_HOST.
func engineSocket(t *testing.T) string {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Fatalf("DOCKER_HOST=%q: the sidecar test mounts the engine's socket, so it needs a unix:// engine", host)
	}
	return sock
}

// dumpLogsOnFailure prints the logs of this test's containers when it fails, before they go.
func dumpLogsOnFailure(t *testing.T, e *testenv.Env) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range e.Owned() {
			t.Logf("logs of %v (%s, %s):\n%s", c.Names, c.Image, c.State, containerLogs(e, c.ID))
		}
	})
}

// containerLogs returns the last 200 lines of a container's output.
func containerLogs(e *testenv.Env, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := e.Docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "200"})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// procField is the value of field k in a /proc/PID/status text, trimmed.
func procField(status, k string) string {
	for line := range strings.Lines(status) {
		if key, v, ok := strings.Cut(line, ":"); ok && key == k {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
