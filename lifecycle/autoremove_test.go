package lifecycle

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// subnet picks a /24 unlikely to collide with other tests sharing the engine.
func subnet() (cidr string, ip netip.Addr) {
	a, b := 160+rand.IntN(90), rand.IntN(256)
	return fmt.Sprintf("10.%d.%d.0/24", a, b), netip.MustParseAddr(fmt.Sprintf("10.%d.%d.42", a, b))
}

// TestAutoRemoveStaticIPCycles updates an AutoRemove container with a static IP back and forth
// between two images, many times in a row: no 409 ("removal in progress") and no "address in
// use" may surface, and each cycle must be a clean update. 100 cycles by default
// (LIFECYCLE_CYCLES overrides; -short runs 20).
func TestAutoRemoveStaticIPCycles(t *testing.T) {
	t.Parallel()
	cycles := 100
	if testing.Short() {
		cycles = 20
	}
	if n, err := strconv.Atoi(os.Getenv("LIFECYCLE_CYCLES")); err == nil {
		cycles = n
	}
	f := newFixture(t)
	ref, d1 := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	_, d2 := f.push("app", "v2", testenv.ImageSpec{Version: "v2"})
	f.Pull(d2)
	var net string
	var ip netip.Addr
	net, ip = f.network()
	f.Pull(ref)
	name := f.Name("svc")
	id := f.Run(name, &container.Config{Image: ref}, &container.HostConfig{AutoRemove: true, NetworkMode: container.NetworkMode(net)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}})

	verify := 200 * time.Millisecond
	var worst time.Duration
	start := time.Now()
	for i := range cycles {
		pull := []string{d2, d1}[i%2]
		res := f.m.Replace(ctx(t), Spec{ContainerID: id, Image: ref, PullRef: pull, Verify: verify, Rollback: true})
		if res.Outcome != OutcomeUpdated || res.Err != nil {
			t.Fatalf("cycle %d: %s, %v", i, res.Outcome, res.Err)
		}
		id = res.NewID
		worst = max(worst, res.Downtime)
		ins := f.Inspect(id)
		if !ins.State.Running || !ins.HostConfig.AutoRemove || ins.NetworkSettings.Networks[net] == nil || ins.NetworkSettings.Networks[net].IPAddress != ip {
			t.Fatalf("cycle %d: new container %s running=%v autoremove=%v networks=%v", i, shortID(id), ins.State.Running, ins.HostConfig.AutoRemove, ins.NetworkSettings.Networks)
		}
	}
	ins := f.checkServing(name)
	if got := len(ins.NetworkSettings.Networks[net].Aliases); got > 1 {
		t.Errorf("aliases grew to %v", ins.NetworkSettings.Networks[net].Aliases)
	}
	t.Logf("%d cycles in %v (%v each), worst downtime %v", cycles, time.Since(start).Round(time.Millisecond), (time.Since(start) / time.Duration(cycles)).Round(time.Millisecond), worst)
}

// network makes an --internal network for this test, retrying on a subnet clash.
func (f *fixture) network() (string, netip.Addr) {
	f.t.Helper()
	for {
		cidr, ip := subnet()
		if n, ok := f.tryNetwork(cidr); ok {
			return n, ip
		}
	}
}

// TestAutoRemoveRollbackRecreates: an AutoRemove container is gone once stopped, so a failed
// update recreates it from the journal's snapshot, on the old image, with its static IP and
// settings, under its name.
func TestAutoRemoveRollbackRecreates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	net, ip := f.network()
	f.Pull(ref)
	name := f.Name("svc")
	id := f.Run(name, &container.Config{Image: ref, Env: []string{"MINE=1"}}, &container.HostConfig{AutoRemove: true, NetworkMode: container.NetworkMode(net)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: []string{"web"}}}})
	oldImage := f.Inspect(id).Image
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", User: "nosuchuser"})

	res := f.m.Replace(ctx(t), Spec{ContainerID: id, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.RunContainerError {
		t.Fatalf("Replace = %s, %v; want rolled_back RunContainerError", res.Outcome, res.Err)
	}
	ins := f.checkServing(name)
	if ins.ID != res.NewID || ins.ID == id {
		t.Errorf("serving %s, Result.NewID %s (old %s): want the recreated container reported", shortID(ins.ID), shortID(res.NewID), shortID(id))
	}
	ep := ins.NetworkSettings.Networks[net]
	if ins.Image != oldImage || ins.Config.Image != ref || !ins.HostConfig.AutoRemove || envValue(ins.Config.Env, "MINE") != "1" ||
		envValue(ins.Config.Env, "APP_VERSION") != "v1" || ep == nil || ep.IPAddress != ip {
		t.Fatalf("recreated container: image %s (%s), autoremove %v, env %v, endpoint %+v", shortID(ins.Image), ins.Config.Image, ins.HostConfig.AutoRemove, ins.Config.Env, ep)
	}
}
