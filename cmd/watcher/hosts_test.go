package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testcerts"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/updater"
)

// twoEngines is the test's engine (e) and a second one on TCP with TLS (remote, re for making
// containers there), and the labels that make a container watched by this test's watcher.
func twoEngines(t *testing.T) (e *testenv.Env, remote *testenv.ExtraEngine, re *testenv.Env, labels map[string]string) {
	e = testenv.New(t)
	remote = testenv.NewEngine(t, testenv.EngineOptions{TCP: true})
	return e, remote, e.On(remote), map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}
}

// hostEntry is one hosts entry of a test's config.
func hostEntry(name, host, scope string, tls *testcerts.Files) string {
	s := fmt.Sprintf("  - name: %s\n    host: %s\n", name, host)
	if scope != "" {
		s += "    scope: " + scope + "\n"
	}
	if tls != nil {
		s += fmt.Sprintf("    tls_ca_file: %s\n    tls_cert_file: %s\n    tls_key_file: %s\n", tls.CA, tls.Cert, tls.Key)
	}
	return s
}

// hostsConfig writes a config with these hosts entries and a state directory of its own.
func hostsConfig(t *testing.T, extra string, entries ...string) string {
	t.Helper()
	return writeFile(t, "hosts:\n"+strings.Join(entries, "")+"state_dir: "+t.TempDir()+"\nupdate:\n  verify: 1s\nlog:\n  level: warn\n"+extra)
}

// runningVersion is the APP_VERSION (the test image bakes it in) of container name when it runs,
// else "not running" (or missing, while an update renames it).
func runningVersion(cli *client.Client, name string) string {
	res, err := cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil || !res.Container.State.Running {
		return "not running"
	}
	for _, kv := range res.Container.Config.Env {
		if v, ok := strings.CutPrefix(kv, "APP_VERSION="); ok {
			return v
		}
	}
	return ""
}

func lineOf(rep updater.Report, host, name string) *updater.ContainerReport {
	i := slices.IndexFunc(rep.Containers, func(c updater.ContainerReport) bool { return c.Host == host && c.Name == name })
	if i < 0 {
		return nil
	}
	return &rep.Containers[i]
}

// TestHostsOnce: one watcher, three hosts — the test's engine on its unix socket, a second
// dockerd on TCP with TLS and certificates made by the test, and a host that does not exist.
// Both engines are checked with one registry request per image, both are updated in one run,
// the dead host is reported and makes once exit 1; with no host reachable once exits 3.
func TestHostsOnce(t *testing.T) {
	e, remote, re, labels := twoEngines(t)
	app, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	api, _ := e.Registry.PushImage(t, "api", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(app)
	re.Pull(app)
	re.Pull(api)
	web := e.Name("web")
	e.Run(web, &container.Config{Image: app, Labels: labels}, nil, nil)
	re.Run(web, &container.Config{Image: app, Labels: labels}, nil, nil) // the same name on another host
	re.Run(e.Name("api"), &container.Config{Image: api, Labels: labels}, nil, nil)
	cfg := hostsConfig(t, "",
		hostEntry("local", os.Getenv("DOCKER_HOST"), e.Owner, nil),
		hostEntry("edge", remote.Host, e.Owner, remote.TLS),
		hostEntry("dead", "unix:///nonexistent/docker.sock", "", nil))

	code, out, stderr := runCmd(t, nil, "once", "--config", cfg)
	t.Logf("watcher once:\n%s%s", out, stderr)
	for _, want := range []string{"host dead unreachable", "HOST   NAME", "local  " + web, "edge   " + web, "edge   " + e.Name("api")} {
		if !strings.Contains(out, want) {
			t.Errorf("once output lacks %q", want)
		}
	}
	if code != 1 || strings.Count(out, "up_to_date") != 3 {
		t.Fatalf("once with nothing new and a dead host = exit %d; want exit 1 (a host unreachable) and three up_to_date", code)
	}

	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	e.Registry.PushImage(t, "api", "latest", testenv.ImageSpec{Version: "v2"})
	e.Registry.ResetRequests()
	code, out, stderr = runCmd(t, nil, "once", "--config", cfg, "--json")
	var rep updater.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("once --json: %v\n%s%s", err, out, stderr)
	}
	if code != 1 || rep.Count(updater.OutcomeUpdated) != 3 {
		t.Fatalf("once with updates on two hosts = exit %d, %+v; want exit 1 and three updated", code, rep.Containers)
	}
	for _, c := range [][2]string{{"local", web}, {"edge", web}, {"edge", e.Name("api")}} {
		if l := lineOf(rep, c[0], c[1]); l == nil || l.Outcome != updater.OutcomeUpdated {
			t.Errorf("line of %s/%s = %+v, want updated", c[0], c[1], l)
		}
	}
	wantHosts := []updater.HostReport{{Name: "local", Reachable: true, Watched: 1}, {Name: "edge", Reachable: true, Watched: 2}, {Name: "dead"}}
	for i, h := range rep.Hosts {
		h.Error = ""
		if i >= len(wantHosts) || h != wantHosts[i] {
			t.Errorf("report hosts = %+v, want %+v", rep.Hosts, wantHosts)
			break
		}
	}
	if n := e.Registry.Count("HEAD", "/v2/app/manifests/latest"); n != 1 {
		t.Errorf("%d HEADs for app:latest, run on two hosts; want 1", n)
	}
	if v1, v2 := runningVersion(e.Docker, web), runningVersion(remote.Docker, web); v1 != "v2" || v2 != "v2" {
		t.Errorf("web runs %s locally and %s on edge, want v2 on both", v1, v2)
	}

	code, _, stderr = runCmd(t, nil, "once", "--config", hostsConfig(t, "",
		hostEntry("dead", "unix:///nonexistent/docker.sock", "", nil), hostEntry("gone", "tcp://127.0.0.1:1", "", nil)))
	if code != 3 || !strings.Contains(stderr, "no docker engine reachable: dead (unix:///nonexistent/docker.sock)") || !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("once with no host reachable = exit %d, stderr %q; want exit 3 naming the hosts", code, stderr)
	}
}

// TestHostsConfigErrors: bad hosts entries stop the command with exit 2 and one line naming the
// entry and the key.
func TestHostsConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := testcerts.Write(filepath.Join(dir), testcerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(dir, "other")
	_ = os.Mkdir(otherDir, 0o700)
	other, err := testcerts.Write(otherDir, testcerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mismatched := good
	mismatched.Key = other.Key
	unreadable := good
	unreadable.CA = filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, entries, want string
	}{
		{"duplicate name", hostEntry("a", "unix:///a.sock", "", nil) + hostEntry("a", "unix:///b.sock", "", nil), "config: hosts[1].name: duplicate name \"a\""},
		{"bad URL", hostEntry("a", "tcp://10.0.0.1", "", nil), "config: hosts.a.host: \"tcp://10.0.0.1\": want tcp://host:port"},
		{"ssh", hostEntry("a", "ssh://me@edge", "", nil), "config: hosts.a.host: \"ssh://me@edge\": ssh:// is not supported"},
		{"unreadable certificate", hostEntry("a", "tcp://127.0.0.1:2376", "", &unreadable), "config: hosts.a.tls_ca_file: cannot read"},
		{"mismatched certificates", hostEntry("a", "tcp://127.0.0.1:2376", "", &mismatched), "config: hosts.a.tls_key_file: " + other.Key + " does not belong to tls_cert_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"once", "check", "run"} {
				code, _, stderr := runCmd(t, nil, cmd, "--config", writeFile(t, "hosts:\n"+tc.entries+"state_dir: "+t.TempDir()+"\n"))
				if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
					t.Errorf("watcher %s = exit %d, stderr %q; want exit 2 and one line with %q", cmd, code, stderr, tc.want)
				}
			}
		})
	}
}

// hasFailure reports whether a line failed with stage host, EngineUnreachable.
func unreachable(l *updater.ContainerReport) bool {
	return l != nil && l.Outcome == updater.OutcomeFailed && l.Failure != nil &&
		l.Failure.Stage == failure.StageHost && l.Failure.Reason == failure.EngineUnreachable
}

// call makes an HTTP request to the daemon with the token and decodes the JSON answer into v.
func call(t *testing.T, method, url, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s %s: %s, %v", method, url, resp.Status, err)
	}
	return resp.StatusCode
}

// TestHostKilledMidRun: the engine of one host is killed while its container's update is being
// verified. The other host's update completes; the killed host's container is reported with
// stage host, EngineUnreachable; /readyz says degraded; and when the engine is started again the
// daemon recovers the unfinished transaction on its own, without a run: the old container runs
// under its name again, nothing of the update is left behind.
func TestHostKilledMidRun(t *testing.T) {
	e, remote, re, labels := twoEngines(t)
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	re.Pull(ref)
	fast, slow := e.Name("fast"), e.Name("slow")
	e.Run(fast, &container.Config{Image: ref, Labels: labels}, nil, nil)
	slowLabels := maps.Clone(labels)
	slowLabels["watcher.verify"] = "30s" // long enough to kill its engine while it verifies
	oldSlow := re.Run(slow, &container.Config{Image: ref, Labels: slowLabels}, nil, nil)
	addr := freePort(t)
	const token = "s3cret-token-0123456789"
	base := "http://" + addr
	cfg := hostsConfig(t, "schedule: \"\"\nhttp:\n  listen: \""+addr+"\"\n  token: "+token+"\n",
		hostEntry("local", os.Getenv("DOCKER_HOST"), e.Owner, nil), hostEntry("edge", remote.Host, e.Owner, remote.TLS))
	defer startDaemon(t, []string{"WATCHER_CONFIG=" + cfg})()
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	reports := make(chan updater.Report, 1)
	go func() {
		var rep updater.Report
		call(t, http.MethodPost, base+"/v1/update?wait=true", token, &rep)
		reports <- rep
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the update on edge never reached verify")
		}
		if setAside(re) != "" && runningVersion(remote.Docker, slow) == "v2" {
			break
		}
	}
	remote.Kill()
	var rep updater.Report
	select {
	case rep = <-reports:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not end after edge's engine was killed")
	}
	if l := lineOf(rep, "local", fast); l == nil || l.Outcome != updater.OutcomeUpdated {
		t.Errorf("local/%s = %+v, want updated: the other host's update completes", fast, l)
	}
	if l := lineOf(rep, "edge", slow); !unreachable(l) {
		t.Errorf("edge/%s = %+v, want failed with host/EngineUnreachable", slow, l)
	}
	if len(rep.Hosts) != 2 || !rep.Hosts[0].Reachable || rep.Hosts[1].Reachable {
		t.Errorf("report hosts = %+v, want local reachable and edge not", rep.Hosts)
	}
	var ready struct {
		Status string
		Hosts  []updater.HostStatus
	}
	if code := call(t, http.MethodGet, base+"/readyz", token, &ready); code != 200 || ready.Status != "degraded" || len(ready.Hosts) != 2 || ready.Hosts[1].Reachable {
		t.Errorf("GET /readyz with edge down = %d %+v, want 200 degraded naming edge unreachable", code, ready)
	}

	if err := remote.Start(); err != nil {
		t.Fatal(err)
	}
	var recovered *updater.ContainerReport
	for deadline := time.Now().Add(90 * time.Second); recovered == nil; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("edge's unfinished update was not recovered after its engine came back")
		}
		var runs struct{ Runs []updater.Report }
		call(t, http.MethodGet, base+"/v1/runs?limit=5", token, &runs)
		for _, r := range runs.Runs {
			if l := lineOf(r, "edge", slow); r.Trigger == updater.TriggerRecovery && l != nil {
				recovered = l
			}
		}
	}
	t.Logf("run: %+v\nrecovered: %+v", rep.Containers, *recovered)
	if recovered.Outcome != updater.OutcomeRolledBack {
		t.Errorf("recovery of edge/%s = %+v, want rolled_back", slow, recovered)
	}
	if ins := re.Inspect(slow); !ins.State.Running || ins.ID != oldSlow || runningVersion(remote.Docker, slow) != "v1" {
		t.Errorf("edge/%s after recovery: %s running %v; want the old container %s back, running v1", slow, ins.ID[:12], ins.State.Running, oldSlow[:12])
	}
	if n := setAside(re); n != "" {
		t.Errorf("left behind on edge: %s", n)
	}
}

// setAside is the name of a container of this test on env's engine with a temporary name of
// an update ("" if none).
func setAside(env *testenv.Env) string {
	for _, c := range env.Owned() {
		if n := strings.TrimPrefix(c.Names[0], "/"); strings.Contains(n, "-watcher-") {
			return n
		}
	}
	return ""
}

// TestPodmanHost: a host may be Podman's Docker-compatible API. Its containers are updated by
// the same transaction — a static address on a user network kept — and an update its API cannot
// finish (a container whose network namespace another joins: Podman refuses to remove it) is
// held before anything is touched, naming the call.
func TestPodmanHost(t *testing.T) {
	e := testenv.New(t)
	podman := testenv.NewEngine(t, testenv.EngineOptions{Podman: true, Insecure: []string{e.Registry.Host}})
	pe := e.On(podman)
	labels := map[string]string{"watcher.enable": "true", "watcher.scope": e.Owner}
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	pe.Pull(ref)
	web, vpn, client, db := e.Name("web"), e.Name("vpn"), e.Name("client"), e.Name("db")
	pe.Run(web, &container.Config{Image: ref, Labels: labels}, nil, nil)
	vpnID := pe.Run(vpn, &container.Config{Image: ref, Labels: labels}, nil, nil)
	pe.Run(client, &container.Config{Image: ref, Labels: labels}, &container.HostConfig{NetworkMode: container.NetworkMode("container:" + vpn)}, nil)
	netName, ip := podmanNetwork(t, pe)
	pe.Run(db, &container.Config{Image: ref, Labels: labels}, &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}})
	e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})

	cfg := hostsConfig(t, "", hostEntry("pod", podman.Host, e.Owner, nil))
	code, out, stderr := runCmd(t, nil, "once", "--config", cfg, "--json")
	var rep updater.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("once --json: %v\n%s%s", err, out, stderr)
	}
	for _, n := range []string{web, client, db} {
		if l := lineOf(rep, "pod", n); l == nil || l.Outcome != updater.OutcomeUpdated || runningVersion(podman.Docker, n) != "v2" {
			t.Errorf("pod/%s = %+v, runs %s; want updated to v2", n, l, runningVersion(podman.Docker, n))
		}
	}
	l := lineOf(rep, "pod", vpn)
	if l == nil || l.Outcome != updater.OutcomeSkipped || l.Failure == nil || l.Failure.Stage != failure.StagePlan || l.Failure.Reason != failure.Unsupported ||
		!strings.Contains(l.Failure.Message, "DELETE /containers/{id}") {
		t.Errorf("pod/%s = %+v, want skipped with plan/Unsupported naming the call", vpn, l)
	}
	if ins := pe.Inspect(vpn); ins.ID != vpnID || !ins.State.Running {
		t.Errorf("pod/%s was touched: %s running %v", vpn, ins.ID, ins.State.Running)
	}
	if ep := pe.Inspect(db).NetworkSettings.Networks[netName]; ep == nil || ep.IPAddress != ip {
		t.Errorf("pod/%s endpoint after its update = %+v, want address %s kept", db, ep, ip)
	}
	if n := setAside(pe); n != "" {
		t.Errorf("left behind on podman: %s", n)
	}
	if code != 0 {
		t.Errorf("once = exit %d, want 0 (a held update is skipped, not failed)", code)
	}
}

// podmanNetwork makes an internal network on the Podman engine and returns it with an address
// on it.
func podmanNetwork(t *testing.T, env *testenv.Env) (string, netip.Addr) {
	t.Helper()
	for i := 0; ; i++ {
		a, b := 160+rand.IntN(90), rand.IntN(256)
		name := env.Name(fmt.Sprintf("net%d", i))
		_, err := env.Docker.NetworkCreate(context.Background(), name, client.NetworkCreateOptions{Driver: "bridge", Internal: true, Labels: env.Labels(nil),
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", a, b))}}}})
		if err == nil {
			return name, netip.MustParseAddr(fmt.Sprintf("10.%d.%d.42", a, b))
		}
		if i > 5 {
			t.Fatalf("network create on podman: %v", err)
		}
	}
}
