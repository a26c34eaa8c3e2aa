// Package testenv gives integration tests the real parts a user has: a private Docker engine
// (started by scripts/test-engine.sh), go-containerregistry's in-process registry with fault
// injection, and test images built from a tiny static program — plus cleanup of everything a
// test made, even when it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// OwnerLabel marks every container and network a test creates, so cleanup finds them all,
// including the ones the code under test recreated from them (labels are carried over).
const OwnerLabel = "testenv.owner"

// Env is one test's engine connection, registry and cleanup scope.
type Env struct {
	Docker   *client.Client
	Registry *Registry
	Owner    string // value of OwnerLabel on everything this test made

	t testing.TB
}

// Required reports whether a missing engine must fail the test rather than skip it: always under
// CI (CI=true) and when WATCHER_REQUIRE_ENGINE=1 (make test sets it).
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WATCHER_REQUIRE_ENGINE") == "1"
}

// Engine connects to the engine named by DOCKER_HOST (scripts/test-engine.sh start prints it).
// Without a reachable engine the test fails under CI and is skipped elsewhere, with a message
// saying how to start one.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		noEngine(t, "DOCKER_HOST is not set")
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		noEngine(t, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		noEngine(t, err.Error())
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func noEngine(t testing.TB, why string) {
	t.Helper()
	msg := "testenv: no Docker engine (" + why + "); start the private one with `eval $(scripts/test-engine.sh start | sed 's/^/export /')` or run `make test`"
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// New gives the test an engine and a fresh registry, and removes at the end every container and
// network labelled with this test's owner id and every image from this test's registry.
func New(t testing.TB) *Env {
	t.Helper()
	cli := Engine(t)
	e := &Env{Docker: cli, Registry: NewRegistry(t), Owner: randomID(), t: t}
	t.Cleanup(e.cleanup)
	return e
}

// For returns this Env for use in a subtest t (failures are reported on t); the cleanup stays
// the parent's.
func (e *Env) For(t testing.TB) *Env {
	c := *e
	c.t = t
	return &c
}

// Name gives a container or network name unique to this test: base-<owner>.
func (e *Env) Name(base string) string { return base + "-" + e.Owner }

// Labels returns labels plus the owner label (a new map).
func (e *Env) Labels(labels map[string]string) map[string]string {
	out := map[string]string{OwnerLabel: e.Owner}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

// Create creates a container owned by this test (the owner label is added to cfg.Labels).
func (e *Env) Create(name string, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) string {
	e.t.Helper()
	if cfg == nil {
		cfg = &container.Config{}
	}
	cfg.Labels = e.Labels(cfg.Labels)
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "none" // no bridge on the test engine, and no traffic leaves the machine
	}
	res, err := e.Docker.ContainerCreate(context.Background(), client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc, NetworkingConfig: nc})
	if err != nil {
		e.t.Fatalf("testenv: create %s: %v", name, err)
	}
	return res.ID
}

// Run creates and starts a container owned by this test and returns its ID.
func (e *Env) Run(name string, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) string {
	e.t.Helper()
	id := e.Create(name, cfg, hc, nc)
	if _, err := e.Docker.ContainerStart(context.Background(), id, client.ContainerStartOptions{}); err != nil {
		e.t.Fatalf("testenv: start %s: %v", name, err)
	}
	return id
}

// Pull pulls ref into the engine (reading the stream to its end).
func (e *Env) Pull(ref string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := e.Docker.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		e.t.Fatalf("testenv: pull %s: %v", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		e.t.Fatalf("testenv: pull %s: %v", ref, err)
	}
}

// Network creates an --internal user network with the given IPv4 subnet (e.g. "10.99.0.0/24"),
// owned by this test, and returns its name. Internal: nothing on it can reach off the machine.
func (e *Env) Network(base, subnet string) string {
	e.t.Helper()
	name := e.Name(base)
	opts := client.NetworkCreateOptions{Driver: "bridge", Internal: true, Labels: e.Labels(nil)}
	if subnet != "" {
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: mustPrefix(e.t, subnet)}}}
	}
	if _, err := e.Docker.NetworkCreate(context.Background(), name, opts); err != nil {
		e.t.Fatalf("testenv: network create %s: %v", name, err)
	}
	return name
}

// Inspect returns the container's current inspect data, failing the test if it is gone.
func (e *Env) Inspect(nameOrID string) container.InspectResponse {
	e.t.Helper()
	res, err := e.Docker.ContainerInspect(context.Background(), nameOrID, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("testenv: inspect %s: %v", nameOrID, err)
	}
	return res.Container
}

// Owned lists every container (running or not) owned by this test.
func (e *Env) Owned() []container.Summary {
	e.t.Helper()
	res, err := e.Docker.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", OwnerLabel+"="+e.Owner)})
	if err != nil {
		e.t.Fatalf("testenv: list: %v", err)
	}
	return res.Items
}

func (e *Env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e.removeServices(ctx)
	owner := make(client.Filters).Add("label", OwnerLabel+"="+e.Owner)
	if res, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: owner}); err == nil {
		for _, c := range res.Items {
			_, _ = e.Docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if res, err := e.Docker.NetworkList(ctx, client.NetworkListOptions{Filters: owner}); err == nil {
		for _, n := range res.Items {
			_, _ = e.Docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	if res, err := e.Docker.ImageList(ctx, client.ImageListOptions{All: true}); err == nil {
		for _, img := range res.Items {
			ours := fromRegistry(img.RepoTags, e.Registry.Host)
			named := len(slices.DeleteFunc(slices.Clone(img.RepoTags), func(t string) bool { return t == "<none>:<none>" }))
			switch {
			case len(ours) < named:
				// The image has names of other origins too (one image shared by several tests):
				// only this test's names go, the image stays for the others.
				for _, tag := range ours {
					_, _ = e.Docker.ImageRemove(ctx, tag, client.ImageRemoveOptions{})
				}
			case len(ours) > 0 || len(fromRegistry(img.RepoDigests, e.Registry.Host)) > 0:
				_, _ = e.Docker.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
}

// fromRegistry returns the refs that name host's repositories.
func fromRegistry(refs []string, host string) []string {
	var out []string
	for _, r := range refs {
		if strings.HasPrefix(r, host+"/") {
			out = append(out, r)
		}
	}
	return out
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
