package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

func TestRunPushedImage(t *testing.T) {
	e := New(t)
	ref, digest := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	id := e.Run(e.Name("app"), &container.Config{Image: ref}, nil, nil)
	ins := e.Inspect(id)
	if !ins.State.Running {
		t.Fatalf("container not running: %+v", ins.State)
	}
	img, err := e.Docker.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	want := e.Registry.Host + "/app@" + digest.String()
	if len(img.RepoDigests) != 1 || img.RepoDigests[0] != want {
		t.Fatalf("RepoDigests = %v, want [%s]", img.RepoDigests, want)
	}
	// SIGTERM makes the test app exit 0, quickly.
	timeout := 5
	start := time.Now()
	if _, err := e.Docker.ContainerStop(context.Background(), id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if ins := e.Inspect(id); ins.State.ExitCode != 0 || time.Since(start) > 4*time.Second {
		t.Fatalf("stop: exit %d after %v, want 0 quickly", ins.State.ExitCode, time.Since(start))
	}
}

func TestAutoRemoveAndExitCode(t *testing.T) {
	e := New(t)
	ref, _ := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	id := e.Create(e.Name("rm"), &container.Config{Image: ref, Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=300ms"}}, &container.HostConfig{AutoRemove: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := e.Docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	if _, err := e.Docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-wait.Result:
		if res.StatusCode != 3 {
			t.Fatalf("exit code %d, want 3", res.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatal(err)
	}
	if _, err := e.Docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
		t.Fatal("AutoRemove container still exists after exit")
	}
}

func TestInternalNetworkStaticIP(t *testing.T) {
	e := New(t)
	ref, _ := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	net := e.Network("net", "10.231.7.0/24")
	ip := netip.MustParseAddr("10.231.7.42")
	id := e.Run(e.Name("static"), &container.Config{Image: ref}, &container.HostConfig{NetworkMode: container.NetworkMode(net)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}})
	got := e.Inspect(id).NetworkSettings.Networks[net]
	if got == nil || got.IPAddress != ip {
		t.Fatalf("endpoint = %+v, want IP %s", got, ip)
	}
}

func TestRegistryFaults(t *testing.T) {
	r := NewRegistry(t)
	ref, _ := r.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(tag); err != nil {
		t.Fatalf("plain HEAD: %v", err)
	}
	r.AddFault(Fault{Method: http.MethodHead, Path: "/manifests/", Status: 404, Code: "MANIFEST_UNKNOWN", Times: 1})
	_, err = remote.Head(tag)
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != 404 {
		t.Fatalf("HEAD with 404 fault: %v, want transport 404", err)
	}
	r.AddFault(Fault{Method: http.MethodHead, Path: "/manifests/", Status: 429, Header: map[string]string{"Retry-After": "30"}})
	_, err = remote.Head(tag, remote.WithRetryStatusCodes())
	if !errors.As(err, &te) || te.StatusCode != 429 {
		t.Fatalf("HEAD with 429 fault: %v, want transport 429", err)
	}
	if n := r.Count(http.MethodHead, "/v2/app/manifests/v1"); n < 3 {
		t.Fatalf("Count(HEAD) = %d, want >= 3", n)
	}
	r.ClearFaults()
	r.AddFault(Fault{Method: http.MethodHead, Path: "/manifests/", NoDigest: true})
	if _, err := remote.Head(tag); err == nil {
		t.Fatal("HEAD without Docker-Content-Digest succeeded; want an error")
	}
}

func TestRegistryTokenAuth(t *testing.T) {
	r := NewRegistry(t)
	ref, _ := r.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	r.RequireToken("", "")
	tag, _ := name.NewTag(ref, name.Insecure)
	if _, err := remote.Head(tag); err != nil {
		t.Fatalf("HEAD with token auth: %v", err)
	}
	if n := r.Count(http.MethodGet, "/token"); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}

// The test app dies of signals the way a real service does, although it starts as PID 1.
func TestSignalDeaths(t *testing.T) {
	e := New(t)
	ref, _ := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	for env, want := range map[string]int{"APP_SELF_KILL_AFTER=200ms": 137, "APP_CRASH_AFTER=200ms": 139, "APP_EXIT_CODE=7": 7} {
		id := e.Run(e.Name("sig"+fmt.Sprint(want)), &container.Config{Image: ref, Env: []string{env}}, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		wait := e.Docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case res := <-wait.Result:
			if int(res.StatusCode) != want {
				t.Errorf("%s: exit %d, want %d", env, res.StatusCode, want)
			}
		case err := <-wait.Error:
			t.Errorf("%s: %v", env, err)
		}
		cancel()
	}
}

// The test app serves its version (APP_SERVE) and probes a service by its network alias
// (APP_PROBE), printing each answer; a stopped service makes the probe print failures.
func TestServeAndProbe(t *testing.T) {
	e := New(t)
	ref, _ := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	net := e.Network("probe", "")
	on := func(aliases ...string) (*container.HostConfig, *network.NetworkingConfig) {
		return &container.HostConfig{NetworkMode: container.NetworkMode(net)},
			&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {Aliases: aliases}}}
	}
	hc, nc := on("svc")
	svc := e.Run(e.Name("svc"), &container.Config{Image: ref, Env: []string{"APP_SERVE=:8080"}}, hc, nc)
	hc, nc = on()
	probe := e.Run(e.Name("probe"), &container.Config{Image: ref, Tty: true, Env: []string{"APP_PROBE=svc:8080", "APP_PROBE_EVERY=100ms"}}, hc, nc)
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			rc, err := e.Docker.ContainerLogs(context.Background(), probe, client.ContainerLogsOptions{ShowStdout: true})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if strings.Contains(string(b), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the probe's log has no %q:\n%s", want, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitLog(" ok v1 ")
	if _, err := e.Docker.ContainerStop(context.Background(), svc, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLog(" fail ")
}
