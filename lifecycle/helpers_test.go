package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// fixture is one test's engine, registry, store and manager.
type fixture struct {
	*testenv.Env
	t     *testing.T
	store *store.Store
	db    string
	m     *Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := testenv.New(t)
	db := filepath.Join(t.TempDir(), "watcher.db")
	s, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{Env: e, t: t, store: s, db: db}
	f.m = New(e.Docker, s, Options{StopTimeout: 5 * time.Second, Verify: time.Second, HealthTimeout: 10 * time.Second, Logger: testLogger(t)})
	return f
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("LIFECYCLE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// push builds and pushes spec as repo:tag, pulls it, and returns the tag reference and the
// by-digest reference.
func (f *fixture) push(repo, tag string, spec testenv.ImageSpec) (ref, byDigest string) {
	f.t.Helper()
	ref, d := f.Registry.PushImage(f.t, repo, tag, spec)
	return ref, f.Registry.Host + "/" + repo + "@" + d.String()
}

// release pushes a new image version under the same tag (the "digest moved" case) and returns
// the pull-by-digest reference.
func (f *fixture) release(ref string, spec testenv.ImageSpec) string {
	f.t.Helper()
	repo, tag, _ := strings.Cut(strings.TrimPrefix(ref, f.Registry.Host+"/"), ":")
	_, byDigest := f.push(repo, tag, spec)
	return byDigest
}

// run starts a container from ref (pulled first) named base-<owner>.
func (f *fixture) run(base, ref string, cfg *container.Config, hc *container.HostConfig) (id, name string) {
	f.t.Helper()
	f.Pull(ref)
	if cfg == nil {
		cfg = &container.Config{}
	}
	cfg.Image = ref
	name = f.Name(base)
	return f.Run(name, cfg, hc, nil), name
}

// checkServing asserts exactly one container is named name, it runs, and no temporary
// (IsTemporaryName) container of this test is left; it returns that container.
func (f *fixture) checkServing(name string) container.InspectResponse {
	f.t.Helper()
	var found []string
	for _, c := range f.Owned() {
		for _, n := range c.Names {
			if IsTemporaryName(n) {
				f.t.Errorf("debris left: %s (%s, %s)", n, shortID(c.ID), c.State)
			}
			if n == "/"+name {
				found = append(found, c.ID)
			}
		}
	}
	if len(found) != 1 {
		f.t.Fatalf("containers named %s: %v, want exactly one", name, found)
	}
	ins := f.Inspect(found[0])
	if !ins.State.Running {
		f.t.Fatalf("%s is %s (exit %d, error %q), want running", name, ins.State.Status, ins.State.ExitCode, ins.State.Error)
	}
	return ins
}

func (f *fixture) imageID(ref string) string {
	f.t.Helper()
	img, err := f.Docker.ImageInspect(context.Background(), ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return img.ID
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func healthcheck() *v1.HealthConfig {
	return &v1.HealthConfig{Test: []string{"CMD", "/app", "health"}, Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 1}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

var inspectOpts = client.ContainerInspectOptions{}

var (
	netMu  sync.Mutex
	netSeq int
)

// tryNetwork creates an internal network with this subnet, reporting false on a clash.
func (f *fixture) tryNetwork(cidr string) (string, bool) {
	return f.tryNetworkB(f.t, cidr)
}

func (f *fixture) tryNetworkB(t testing.TB, cidr string) (string, bool) {
	netMu.Lock()
	netSeq++
	name := f.Name(fmt.Sprintf("net%d", netSeq))
	netMu.Unlock()
	_, err := f.Docker.NetworkCreate(context.Background(), name, client.NetworkCreateOptions{Driver: "bridge", Internal: true,
		Labels: f.Labels(nil), IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(cidr)}}}})
	if err != nil {
		t.Logf("network %s: %v", cidr, err)
		return "", false
	}
	return name, true
}

// subnetIP returns a network's subnet and its .42 address.
func subnetIP(t testing.TB, e *testenv.Env, name string) (netip.Prefix, netip.Addr) {
	res, err := e.Docker.NetworkInspect(context.Background(), name, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Network.IPAM.Config[0].Subnet
	ip := p.Addr()
	for range 42 {
		ip = ip.Next()
	}
	return p, ip
}

// safeBuffer is a bytes.Buffer for a child process's output.
type safeBuffer = testenv.SyncBuffer

// watchOOM subscribes to the engine's oom events for this test's containers from now on and
// returns a function that says whether the engine reported one (waiting out oomGrace for a late
// event). It is the test's own witness, independent of what verify saw.
func (f *fixture) watchOOM() func() bool {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	res := f.Docker.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("type", "container").Add("event", "oom").
			Add("label", testenv.OwnerLabel+"="+f.Owner),
	})
	var mu sync.Mutex
	seen := false
	go func() {
		for {
			select {
			case <-res.Messages:
				mu.Lock()
				seen = true
				mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	return func() bool {
		time.Sleep(oomGrace)
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// runWithMAC runs ref as a container on network net with a user-set MAC address sent as
// Config.MacAddress, as Docker's CLI and compose send it to an engine below API 1.44 (with curl:
// the installed CLI is newer than the engine, and the typed client cannot send it).
func (f *fixture) runWithMAC(ref, net, mac string) (id, name string) {
	t := f.t
	t.Helper()
	name = f.Name("svc")
	body, _ := json.Marshal(map[string]any{"Image": ref, "MacAddress": mac, "Labels": map[string]string{testenv.OwnerLabel: f.Owner},
		"HostConfig": map[string]any{"NetworkMode": net}})
	sock := strings.TrimPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "--unix-socket", sock, "-H", "Content-Type: application/json",
		"-d", string(body), "http://engine/v"+f.Docker.ClientVersion()+"/containers/create?name="+name).CombinedOutput()
	if err != nil {
		t.Fatalf("creating the container with curl: %v\n%s", err, out)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		t.Fatalf("create answered %s", out)
	}
	id = created.ID
	if _, err := f.Docker.ContainerStart(context.Background(), id, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return id, name
}
