package lifecycle

import (
	"archive/tar"
	"context"
	"io"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// readFile reads one file out of a container (running or not).
func (f *fixture) readFile(id, path string) string {
	f.t.Helper()
	res, err := f.Docker.CopyFromContainer(context.Background(), id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		f.t.Fatalf("reading %s from %s: %v", path, shortID(id), err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(tr)
	return string(b)
}

// volume creates a named volume removed when the test ends (after its containers).
func (f *fixture) volume(base string) string {
	name := f.Name(base)
	if _, err := f.Docker.VolumeCreate(context.Background(), client.VolumeCreateOptions{Name: name}); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { f.removeVolumesAfterContainers(name) })
	return name
}

func (f *fixture) removeVolumesAfterContainers(names ...string) {
	for _, c := range f.Owned() {
		_, _ = f.Docker.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}
	for _, n := range names {
		_, _ = f.Docker.VolumeRemove(context.Background(), n, client.VolumeRemoveOptions{Force: true})
	}
}

// TestFaithfulRecreate updates a container with most of what users set, twice, and checks each
// survives: compose labels, two networks with a static IP and an alias (connected after create
// below API 1.44), a named and an anonymous volume with their contents, resources, restart
// policy, init, capabilities, tmpfs, extra hosts, domain name.
func TestFaithfulRecreate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	write := "APP_WRITE=/data/anon=from-v1;/named/file=named-v1"
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1", Volumes: []string{"/data"}, Env: []string{write}})
	net1, ip := f.network()
	net2, _ := f.network()
	vol := f.volume("named")
	yes := true
	compose := map[string]string{
		"com.docker.compose.project": "proj", "com.docker.compose.service": "web",
		"com.docker.compose.config-hash": "abc123", "com.docker.compose.container-number": "1",
	}
	f.Pull(ref)
	name := f.Name("svc")
	id := f.Run(name, &container.Config{Image: ref, Labels: compose, Domainname: "example.internal"},
		&container.HostConfig{
			NetworkMode: container.NetworkMode(net1), Binds: []string{vol + ":/named"},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			Init:          &yes, CapAdd: []string{"NET_ADMIN"}, Tmpfs: map[string]string{"/scratch": "size=1m"},
			ExtraHosts: []string{"db.internal:10.0.0.5"},
			Resources:  container.Resources{Memory: 64 << 20, Ulimits: []*container.Ulimit{{Name: "nofile", Soft: 1000, Hard: 2000}}},
		},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			net1: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}, Aliases: []string{"web"}}}})
	if _, err := f.Docker.NetworkConnect(context.Background(), net2, client.NetworkConnectOptions{Container: id}); err != nil {
		t.Fatal(err)
	}
	anonVol := ""
	for _, m := range f.Inspect(id).Mounts {
		if m.Destination == "/data" {
			anonVol = m.Name
		}
	}
	t.Cleanup(func() { f.removeVolumesAfterContainers(anonVol) })

	for i, v := range []string{"v2", "v3"} {
		pull := f.release(ref, testenv.ImageSpec{Version: v, Volumes: []string{"/data"},
			Env: []string{"APP_WRITE=/data/anon=from-" + v + ";/named/file=named-" + v}})
		res := f.m.Replace(ctx(t), Spec{ContainerID: id, Image: ref, PullRef: pull, Rollback: true})
		if res.Outcome != OutcomeUpdated {
			t.Fatalf("update %d: %s, %v", i, res.Outcome, res.Err)
		}
		id = res.NewID
		ins := f.checkServing(name)
		for k, want := range compose {
			if ins.Config.Labels[k] != want {
				t.Errorf("%s: label %s = %q, want %q", v, k, ins.Config.Labels[k], want)
			}
		}
		if got := f.readFile(id, "/data/anon"); got != "from-v1" {
			t.Errorf("%s: anonymous volume file = %q, want from-v1 (data kept)", v, got)
		}
		if got := f.readFile(id, "/named/file"); got != "named-v1" {
			t.Errorf("%s: named volume file = %q, want named-v1", v, got)
		}
		for _, m := range ins.Mounts {
			if m.Destination == "/data" && (m.Type != mount.TypeVolume || m.Name != anonVol) {
				t.Errorf("%s: /data is %s %q, want the old anonymous volume %q", v, m.Type, m.Name, anonVol)
			}
		}
		ep1, ep2 := ins.NetworkSettings.Networks[net1], ins.NetworkSettings.Networks[net2]
		if ep1 == nil || ep2 == nil || ep1.IPAddress != ip || !slices.Contains(ep1.Aliases, "web") {
			t.Fatalf("%s: networks %+v", v, ins.NetworkSettings.Networks)
		}
		for _, ep := range []*network.EndpointSettings{ep1, ep2} {
			for _, a := range ep.Aliases {
				if a != "web" && a != shortID(id) {
					t.Errorf("%s: stale alias %q in %v", v, a, ep.Aliases)
				}
			}
		}
		h := ins.HostConfig
		if h.RestartPolicy.Name != container.RestartPolicyUnlessStopped || h.Init == nil || !*h.Init || !slices.Contains(h.CapAdd, "CAP_NET_ADMIN") && !slices.Contains(h.CapAdd, "NET_ADMIN") ||
			h.Tmpfs["/scratch"] != "size=1m" || !slices.Equal(h.ExtraHosts, []string{"db.internal:10.0.0.5"}) || h.Memory != 64<<20 ||
			len(h.Ulimits) != 1 || h.Ulimits[0].Soft != 1000 {
			t.Errorf("%s: host config lost settings: %+v", v, h)
		}
		if ins.Config.Domainname != "example.internal" || ins.Config.Hostname != shortID(id) {
			t.Errorf("%s: domain %q hostname %q", v, ins.Config.Domainname, ins.Config.Hostname)
		}
		if envValue(ins.Config.Env, "APP_VERSION") != v {
			t.Errorf("%s: APP_VERSION = %q", v, envValue(ins.Config.Env, "APP_VERSION"))
		}
	}
}

// TestContainerModePair updates a parent and then its network_mode: container: dependent,
// which is recreated after the parent and points at the parent's new ID.
func TestContainerModePair(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1", ExposedPorts: []string{"8080/tcp"}})
	parent, parentName := f.run("parent", ref, nil, &container.HostConfig{IpcMode: "shareable"})
	dep, depName := f.run("dep", ref, nil, &container.HostConfig{NetworkMode: container.NetworkMode("container:" + parentName), IpcMode: "container:" + container.IpcMode(parentName)})
	_ = f.Inspect(parent)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", ExposedPorts: []string{"8080/tcp", "9090/tcp"}})

	res := f.m.Replace(ctx(t), Spec{ContainerID: parent, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeUpdated {
		t.Fatalf("parent: %s, %v", res.Outcome, res.Err)
	}
	replaced := map[string]string{parent: res.NewID}
	dres := f.m.Replace(ctx(t), Spec{ContainerID: dep, Image: ref, PullRef: pull, Replaced: replaced, Rollback: true})
	if dres.Outcome != OutcomeUpdated {
		t.Fatalf("dependent: %s, %v", dres.Outcome, dres.Err)
	}
	f.checkServing(parentName)
	ins := f.checkServing(depName)
	if want := container.NetworkMode("container:" + res.NewID); ins.HostConfig.NetworkMode != want || ins.HostConfig.IpcMode != container.IpcMode(want) {
		t.Errorf("dependent modes %s / %s, want %s", ins.HostConfig.NetworkMode, ins.HostConfig.IpcMode, want)
	}
	if envValue(ins.Config.Env, "APP_VERSION") != "v2" {
		t.Errorf("dependent runs %s", envValue(ins.Config.Env, "APP_VERSION"))
	}

	// A dependent recreated on its current image (Recreate) also follows the parent.
	res2 := f.m.Replace(ctx(t), Spec{ContainerID: res.NewID, Image: ref, Recreate: true, Rollback: true})
	if res2.Outcome != OutcomeUpdated || res2.NewImageID != res.NewImageID {
		t.Fatalf("parent recreate: %s, %v (image %s, want %s)", res2.Outcome, res2.Err, res2.NewImageID, res.NewImageID)
	}
	dres2 := f.m.Replace(ctx(t), Spec{ContainerID: dres.NewID, Recreate: true, Replaced: map[string]string{res.NewID: res2.NewID}, Rollback: true})
	if dres2.Outcome != OutcomeUpdated {
		t.Fatalf("dependent recreate: %s, %v", dres2.Outcome, dres2.Err)
	}
	if ins := f.checkServing(depName); ins.HostConfig.NetworkMode != container.NetworkMode("container:"+res2.NewID) {
		t.Errorf("dependent network mode %s, want container:%s", ins.HostConfig.NetworkMode, res2.NewID)
	}
}
