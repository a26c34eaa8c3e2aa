package lifecycle

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

const startFirstAlias = "api"

// runOnNetwork runs ref as base on a fresh network with the alias startFirstAlias, and returns
// the container and the network.
func (f *fixture) runOnNetwork(base, ref string, hc *container.HostConfig) (id, name, net string) {
	f.t.Helper()
	net = f.Network("sf", "")
	f.Pull(ref)
	name = f.Name(base)
	own := container.HostConfig{}
	if hc != nil {
		own = *hc // the caller's stays as it was
	}
	own.NetworkMode = container.NetworkMode(net)
	hc = &own
	id = f.Run(name, &container.Config{Image: ref}, hc, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		net: {Aliases: []string{startFirstAlias}},
	}})
	return id, name, net
}

// checkAlias fails the test (Errorf: it may run in Spec.Started) unless container id is on net
// with the alias.
func (f *fixture) checkAlias(id, net, label string) {
	f.t.Helper()
	ins := f.Inspect(id)
	ep := ins.NetworkSettings.Networks[net]
	if ep == nil || !slices.Contains(ep.Aliases, startFirstAlias) {
		var on []string
		for n, ep := range ins.NetworkSettings.Networks {
			on = append(on, fmt.Sprintf("%s %v", n, ep.Aliases))
		}
		f.t.Errorf("%s: %s is on %v, want on %s with alias %s", label, strings.TrimPrefix(ins.Name, "/"), on, net, startFirstAlias)
	}
}

// A start-first update starts the new container, on the same network with the same alias, while
// the old one still runs under its name; the old one then goes.
func TestStartFirstUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name, net := f.runOnNetwork("svc", ref, nil)
	oldStart := f.Inspect(oldID).State.StartedAt
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})

	var checked bool
	spec := Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true, StartFirst: true}
	spec.Started = func() {
		old := f.Inspect(oldID)
		if !old.State.Running || old.Name != "/"+name || old.State.StartedAt != oldStart {
			t.Errorf("when the new container started, the old one was %s as %s", old.State.Status, old.Name)
		}
		f.checkAlias(oldID, net, "the old container, the new one started")
		for _, c := range f.Owned() {
			if c.ID != oldID {
				f.checkAlias(c.ID, net, "the new container, started")
				if c.State != container.StateRunning || !IsTemporaryName(c.Names[0]) {
					t.Errorf("the new container is %s as %v, want running under its temporary name", c.State, c.Names)
				}
				checked = true
			}
		}
	}
	res := f.m.Replace(ctx(t), spec)
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	if !checked {
		t.Fatal("Started was not called with the new container there")
	}
	ins := f.checkServing(name)
	if ins.ID != res.NewID || envValue(ins.Config.Env, "APP_VERSION") != "v2" {
		t.Fatalf("serving %s (%s), want the new container %s", shortID(ins.ID), envValue(ins.Config.Env, "APP_VERSION"), shortID(res.NewID))
	}
	f.checkAlias(ins.ID, net, "after the update")
	if res.Downtime != 0 || !res.Stopped {
		t.Errorf("Downtime %v, Stopped %v; want 0 (nothing stopped before the new one served), true", res.Downtime, res.Stopped)
	}
	if _, err := f.Docker.ContainerInspect(ctx(t), oldID, inspectOpts); err == nil {
		t.Errorf("old container %s still exists", shortID(oldID))
	}
}

// A new container that fails its verify is removed; the old one never stopped.
func TestStartFirstVerifyFailureLeavesOld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name, net := f.runOnNetwork("svc", ref, nil)
	oldStart := f.Inspect(oldID).State.StartedAt
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=200ms"}})

	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true, StartFirst: true})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.ContainerExited {
		t.Fatalf("Replace = %s, %v; want rolled back, ContainerExited", res.Outcome, res.Err)
	}
	if res.Stopped {
		t.Error("Result.Stopped: the old container was never to be stopped")
	}
	ins := f.checkServing(name)
	if ins.ID != oldID || ins.State.StartedAt != oldStart || ins.RestartCount != 0 {
		t.Fatalf("serving %s started %s, want the old %s never stopped (started %s)", shortID(ins.ID), ins.State.StartedAt, shortID(oldID), oldStart)
	}
	f.checkAlias(oldID, net, "after the rollback")
	if n := len(f.Owned()); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
}

// What cannot run twice side by side is refused before anything is touched.
func TestStartFirstRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1", ExposedPorts: []string{"8080/tcp"}})
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	net, ip := f.network()
	for _, c := range []struct {
		name string
		run  func() string
		want string
	}{
		{"host port", func() string {
			id, _ := f.run("ports", ref, nil, &container.HostConfig{PortBindings: network.PortMap{
				network.MustParsePort("8080/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1")}}}})
			return id
		}, "publishes ports"},
		{"static IP", func() string {
			f.Pull(ref)
			return f.Run(f.Name("ip"), &container.Config{Image: ref}, &container.HostConfig{NetworkMode: container.NetworkMode(net)}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				net: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}})
		}, "static IP"},
		{"MAC", func() string {
			f.Pull(ref)
			id, _ := f.runWithMAC(ref, net, "02:42:ac:11:00:98")
			return id
		}, "MAC"},
		{"--rm with an anonymous volume", func() string {
			id, _ := f.run("rmvol", ref, &container.Config{Volumes: map[string]struct{}{"/data": {}}}, &container.HostConfig{AutoRemove: true})
			return id
		}, "anonymous volume at /data"},
		{"host network", func() string {
			id, _ := f.run("host", ref, nil, &container.HostConfig{NetworkMode: "host"})
			return id
		}, "host's network"},
		{"netns child", func() string {
			parent, _ := f.run("parent", ref, nil, nil)
			id, _ := f.run("child", ref, nil, &container.HostConfig{NetworkMode: container.NetworkMode("container:" + parent)})
			return id
		}, "shares the network namespace"},
		{"netns parent", func() string {
			id, name := f.run("nsparent", ref, nil, nil)
			f.run("nschild", ref, nil, &container.HostConfig{NetworkMode: container.NetworkMode("container:" + name)})
			return id
		}, "runs in its network namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := c.run()
			before := f.Inspect(id)
			owned := len(f.Owned())
			res := f.m.Replace(ctx(t), Spec{ContainerID: id, Image: ref, PullRef: pull, Rollback: true, StartFirst: true})
			if res.Outcome != OutcomeFailed || res.Err == nil || res.Err.Reason != failure.Unsupported || res.Err.Stage != failure.StagePlan ||
				!strings.Contains(res.Err.Error(), c.want) || !strings.Contains(res.Err.Error(), "nothing was changed") {
				t.Fatalf("Replace = %s, %v; want failed, plan/Unsupported saying %q", res.Outcome, res.Err, c.want)
			}
			after := f.Inspect(id)
			if !after.State.Running || after.State.StartedAt != before.State.StartedAt || after.Name != before.Name || len(f.Owned()) != owned {
				t.Fatalf("the container was touched: %s as %s, %d containers (were %d)", after.State.Status, after.Name, len(f.Owned()), owned)
			}
			if entries, _ := f.store.JournalsFor(id); len(entries) != 0 {
				t.Fatalf("%d journal records for a refusal, want none", len(entries))
			}
		})
	}
}

// TestStartFirstCrashAtEveryJournalStep kills the watcher after each journal write of a
// start-first update that succeeds and of one that is rolled back: whatever the instant, one
// container serves under the name, on the network with its alias.
func TestStartFirstCrashAtEveryJournalStep(t *testing.T) {
	t.Parallel()
	for _, sc := range crashScenarios()[:3] { // update, rollback, autoremove update
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			c, id := newCrashRunOrder(t, sc.v2, sc.hc, true)
			c.crashAtEveryStep(id)
		})
	}
}

// TestStartFirstCrashThenNewDies: the watcher dies during the switch, and the new container
// (verified, then) dies before the next start: recovery cannot finish the switch, so it undoes
// it — the old container back under its name, on its network with its alias again.
func TestStartFirstCrashThenNewDies(t *testing.T) {
	t.Parallel()
	c, id := newCrashRunOrder(t, testenv.ImageSpec{}, nil, true)
	for _, step := range []string{stepSetAside, stepRename, stepDisconnect, stepStop} {
		pull := c.digests[1]
		job := crashJob{DB: c.f.db, ContainerID: id, Image: c.ref, PullRef: pull, Verify: 500 * time.Millisecond, CrashAfter: step, StartFirst: true}
		if killed, out := crashChild(t, job, 0); !killed {
			t.Fatalf("the child did not reach step %s:\n%s", step, out)
		}
		for _, o := range c.f.Owned() {
			if o.ID != id {
				if _, err := c.f.Docker.ContainerKill(ctx(t), o.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		id = c.recoverAndCheck("the new container killed after a crash at step "+step, 0)
		if img := c.f.Inspect(id).Image; img != c.images[0] {
			t.Fatalf("after a crash at step %s: serving image %s, want the old %s", step, img, c.images[0])
		}
	}
}

// A container without networks (network_mode none) is updated start-first too: nothing to leave.
func TestStartFirstNoNetwork(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true, StartFirst: true})
	if res.Outcome != OutcomeUpdated || res.Err != nil || res.Downtime != 0 {
		t.Fatalf("Replace = %s (downtime %v), %v; want updated with no downtime", res.Outcome, res.Downtime, res.Err)
	}
	if ins := f.checkServing(name); ins.ID != res.NewID || ins.HostConfig.NetworkMode != "none" {
		t.Fatalf("serving %s on %s, want the new container %s on none", shortID(ins.ID), ins.HostConfig.NetworkMode, shortID(res.NewID))
	}
}

// The watcher dies mid-switch (the old container renamed aside, still running; the new one
// running under its temporary name), and the user runs a container of their own under the name
// meanwhile. Recovery takes nothing from it and leaves none of ours running beside it.
func TestStartFirstForeignNameHolder(t *testing.T) {
	t.Parallel()
	c, id := newCrashRunOrder(t, testenv.ImageSpec{}, nil, true)
	job := crashJob{DB: c.f.db, ContainerID: id, Image: c.ref, PullRef: c.digests[1], Verify: 500 * time.Millisecond, CrashAfter: stepRename, StartFirst: true}
	if killed, out := crashChild(t, job, 0); !killed {
		t.Fatalf("the child did not reach step rename:\n%s", out)
	}
	user := c.f.Run(c.name, &container.Config{Image: c.ref}, nil, nil)
	s, err := store.Open(c.f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := New(c.f.Docker, s, Options{StopTimeout: 5 * time.Second, Logger: testLogger(t)})
	m.settle = 0
	res := m.Recover(ctx(t))
	if len(res) != 1 || res[0].Outcome != OutcomeFailed || res[0].Err == nil || res[0].Err.Reason != failure.RollbackFailed {
		t.Fatalf("Recover = %+v, want one failed transaction, RollbackFailed", res)
	}
	checkAllFinished(t, s, "after recovery")
	if ins := c.f.Inspect(c.name); ins.ID != user || !ins.State.Running {
		t.Fatalf("%s is %s (%s), want the user's %s running", c.name, shortID(ins.ID), ins.State.Status, shortID(user))
	}
	for _, o := range c.f.Owned() {
		if o.ID != user && o.State == container.StateRunning {
			t.Errorf("ours runs beside the user's container: %v %s", o.Names, o.State)
		}
	}
}
