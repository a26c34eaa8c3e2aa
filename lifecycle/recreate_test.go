package lifecycle

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/watcher-dev/watcher/failure"
)

const oldID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// oldImage is the old image's config; oldContainer a container of it as the engine reports it
// (image defaults merged in) with some user settings on top.
func oldImage() *ImageDetails {
	return &ImageDetails{ID: "sha256:old", Config: &dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User: "app", Env: []string{"PATH=/bin", "VERSION=1"}, Entrypoint: []string{"/app"}, Cmd: []string{"serve"},
			Volumes: map[string]struct{}{"/data": {}}, WorkingDir: "/srv", Labels: map[string]string{"img": "1", "shared": "img"},
			StopSignal: "SIGQUIT", ExposedPorts: map[string]struct{}{"80/tcp": {}, "443/tcp": {}},
		},
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{Healthcheck: &dockerspec.HealthcheckConfig{
			Test: []string{"CMD", "/app", "health"}, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, StartInterval: 4 * time.Second, Retries: 5}},
	}}
}

func oldContainer() container.InspectResponse {
	return container.InspectResponse{
		ID: oldID, Name: "/svc",
		Config: &container.Config{
			Hostname: oldID[:12], User: "app", Env: []string{"PATH=/bin", "VERSION=1", "MINE=x"},
			Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Image: "repo:1", WorkingDir: "/srv",
			Volumes: map[string]struct{}{"/data": {}}, StopSignal: "SIGQUIT",
			Labels:       map[string]string{"img": "1", "shared": "mine", "com.docker.compose.project": "p", LabelTxID: "older"},
			ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}, network.MustParsePort("443/tcp"): {}, network.MustParsePort("9000/tcp"): {}},
			Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/app", "health"}, Interval: time.Second, Timeout: 2 * time.Second,
				StartPeriod: 3 * time.Second, StartInterval: 4 * time.Second, Retries: 5},
		},
		HostConfig: &container.HostConfig{NetworkMode: "net1", Binds: []string{"named:/named", "/host:/hostdir:ro"},
			RestartPolicy: container.RestartPolicy{Name: "unless-stopped"}, CapAdd: []string{"NET_ADMIN"},
			PortBindings: network.PortMap{network.MustParsePort("8080/tcp"): {{HostPort: "8080"}}},
			Links:        []string{"/db:/svc/database"}},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "anon123", Destination: "/data", RW: true},
			{Type: mount.TypeVolume, Name: "named", Destination: "/named", RW: true},
			{Type: mount.TypeBind, Source: "/host", Destination: "/hostdir"},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"net1": {Aliases: []string{"web", oldID[:12]}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.1.2.3")},
				IPAddress: netip.MustParseAddr("10.1.2.3"), MacAddress: network.HardwareAddr{2, 66, 10, 1, 2, 3}, EndpointID: "ep", NetworkID: "n1"},
			"net2": {Aliases: []string{oldID[:12]}, IPAddress: netip.MustParseAddr("10.9.9.9")},
		}},
	}
}

func TestBuildCreateSubtractsOldImageDefaults(t *testing.T) {
	p, err := buildCreate(oldContainer(), createInput{OldImage: oldImage(), Image: "repo:2", API: "1.44", Label: "tx1"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"Image", c.Image, "repo:2"},
		{"Env", c.Env, []string{"MINE=x"}},
		{"Labels", c.Labels, map[string]string{"shared": "mine", "com.docker.compose.project": "p", LabelTxID: "tx1"}},
		{"Entrypoint", c.Entrypoint, []string(nil)},
		{"Cmd", c.Cmd, []string(nil)},
		{"User", c.User, ""},
		{"WorkingDir", c.WorkingDir, ""},
		{"StopSignal", c.StopSignal, ""},
		{"Healthcheck", c.Healthcheck, (*container.HealthConfig)(nil)},
		{"Volumes", c.Volumes, map[string]struct{}(nil)},
		{"Hostname", c.Hostname, ""},
		{"ExposedPorts", fmt.Sprint(c.ExposedPorts), fmt.Sprint(network.PortSet{network.MustParsePort("9000/tcp"): {}, network.MustParsePort("8080/tcp"): {}})},
		{"Links", p.Host.Links, []string{"db:database"}},
		{"Binds", p.Host.Binds, []string{"named:/named", "/host:/hostdir:ro"}},
		{"Mounts", fmt.Sprint(p.Host.Mounts), fmt.Sprint([]mount.Mount{{Type: mount.TypeVolume, Source: "anon123", Target: "/data"}})},
		{"RestartPolicy", p.Host.RestartPolicy.Name, container.RestartPolicyMode("unless-stopped")},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.want) {
			t.Errorf("%s = %v, want %v", check.what, check.got, check.want)
		}
	}
}

func TestBuildCreateKeepsUserSettings(t *testing.T) {
	old := oldContainer()
	old.Config.Hostname = "myhost"
	old.Config.Domainname = "example.org"
	old.Config.User = "1000"
	old.Config.Cmd = []string{"serve", "--fast"}
	old.Config.StopSignal = "SIGTERM"
	old.Config.Healthcheck.Interval = 9 * time.Second // user-set; the rest inherited
	p, err := buildCreate(old, createInput{OldImage: oldImage(), Image: "repo:2", API: "1.44", Label: "tx1"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config
	if c.Hostname != "myhost" || c.Domainname != "example.org" || c.User != "1000" || c.StopSignal != "SIGTERM" {
		t.Errorf("user settings lost: hostname %q domain %q user %q stop %q", c.Hostname, c.Domainname, c.User, c.StopSignal)
	}
	if c.Entrypoint != nil || !slices.Equal(c.Cmd, []string{"serve", "--fast"}) {
		t.Errorf("Entrypoint %v Cmd %v, want inherited entrypoint and the user's cmd", c.Entrypoint, c.Cmd)
	}
	if want := (container.HealthConfig{Interval: 9 * time.Second}); c.Healthcheck == nil || fmt.Sprint(*c.Healthcheck) != fmt.Sprint(want) {
		t.Errorf("Healthcheck = %+v, want only the user's interval %+v (StartInterval included in the subtraction)", c.Healthcheck, want)
	}

	// A user entrypoint keeps the cmd as given, even when it equals the image's.
	old = oldContainer()
	old.Config.Entrypoint = []string{"/other"}
	p, _ = buildCreate(old, createInput{OldImage: oldImage(), Image: "repo:2", API: "1.44", Label: "tx1"})
	if !slices.Equal(p.Config.Entrypoint, []string{"/other"}) || !slices.Equal(p.Config.Cmd, []string{"serve"}) {
		t.Errorf("Entrypoint %v Cmd %v, want the user's entrypoint with the cmd kept", p.Config.Entrypoint, p.Config.Cmd)
	}
}

func TestBuildCreateNetworks(t *testing.T) {
	for _, api := range []string{"1.41", "1.44", "1.52"} {
		p, err := buildCreate(oldContainer(), createInput{MAC: "02:42:0a:01:02:03", OldImage: oldImage(), Image: "repo:2", API: api, Label: "tx1"})
		if err != nil {
			t.Fatal(err)
		}
		all := map[string]*network.EndpointSettings{}
		for n, ep := range p.Network.EndpointsConfig {
			all[n] = ep
		}
		for n, ep := range p.Connect {
			all[n] = ep
		}
		if api == "1.41" {
			if len(p.Network.EndpointsConfig) != 1 || p.Network.EndpointsConfig["net1"] == nil || len(p.Connect) != 1 || p.Connect["net2"] == nil {
				t.Fatalf("API %s: create %v connect %v, want net1 at create and net2 connected after", api, p.Network.EndpointsConfig, p.Connect)
			}
			if p.LegacyMAC != "02:42:0a:01:02:03" {
				t.Errorf("API %s: LegacyMAC %q, want the MAC sent as Config.MacAddress", api, p.LegacyMAC)
			}
		} else if len(p.Network.EndpointsConfig) != 2 || len(p.Connect) != 0 || p.LegacyMAC != "" {
			t.Fatalf("API %s: create %v connect %v, want both at create", api, p.Network.EndpointsConfig, p.Connect)
		}
		n1, n2 := all["net1"], all["net2"]
		if !slices.Equal(n1.Aliases, []string{"web"}) || len(n2.Aliases) != 0 {
			t.Errorf("API %s: aliases %v / %v, want [web] / [] (old short ID dropped)", api, n1.Aliases, n2.Aliases)
		}
		if n1.IPAMConfig == nil || n1.IPAMConfig.IPv4Address != netip.MustParseAddr("10.1.2.3") || n2.IPAMConfig != nil {
			t.Errorf("API %s: IPAM %+v / %+v, want the static IP on net1 only", api, n1.IPAMConfig, n2.IPAMConfig)
		}
		if n1.MacAddress.String() != "02:42:0a:01:02:03" || len(n2.MacAddress) != 0 || n1.IPAddress.IsValid() || n1.EndpointID != "" {
			t.Errorf("API %s: net1 %+v, want config only with the configured MAC", api, n1)
		}
	}
	// Without a configured MAC, none is copied (the operational one may be generated).
	p, _ := buildCreate(oldContainer(), createInput{OldImage: oldImage(), Image: "repo:2", API: "1.44", Label: "tx1"})
	if mac := p.Network.EndpointsConfig["net1"].MacAddress; len(mac) != 0 {
		t.Errorf("MAC %s copied without Config.MacAddress", mac)
	}
}

func TestBuildCreateContainerModes(t *testing.T) {
	parentOld, parentNew := strings.Repeat("a", 64), strings.Repeat("b", 64)
	old := oldContainer()
	old.Config.Hostname = "dependent" // copied from the parent by the engine
	old.Config.Domainname = "parent.example"
	old.HostConfig.NetworkMode = container.NetworkMode("container:" + parentOld)
	old.HostConfig.IpcMode = container.IpcMode("container:" + parentOld)
	old.HostConfig.PidMode = container.PidMode("container:" + parentOld[:12])
	old.HostConfig.VolumesFrom = []string{parentOld + ":ro", "byname"}
	old.HostConfig.PortBindings = nil
	old.HostConfig.Links = nil
	old.NetworkSettings.Networks = nil
	p, err := buildCreate(old, createInput{OldImage: oldImage(), Image: "repo:2", Replaced: map[string]string{parentOld: parentNew}, API: "1.41", Label: "tx1"})
	if err != nil {
		t.Fatal(err)
	}
	h := p.Host
	if h.NetworkMode != container.NetworkMode("container:"+parentNew) || h.IpcMode != container.IpcMode("container:"+parentNew) || h.PidMode != container.PidMode("container:"+parentNew) {
		t.Errorf("modes %s %s %s, want container:<new parent>", h.NetworkMode, h.IpcMode, h.PidMode)
	}
	if !slices.Equal(h.VolumesFrom, []string{parentNew + ":ro", "byname"}) {
		t.Errorf("VolumesFrom %v", h.VolumesFrom)
	}
	if p.Config.Hostname != "" || p.Config.Domainname != "" || p.Config.ExposedPorts != nil || p.Network != nil {
		t.Errorf("container mode: hostname %q domain %q ports %v network %v, want all empty", p.Config.Hostname, p.Config.Domainname, p.Config.ExposedPorts, p.Network)
	}
}

func TestRewriteLinks(t *testing.T) {
	for in, want := range map[string]string{"/db:/svc/database": "db:database", "/db:/svc/db": "db:db", "db": "db"} {
		if got := rewriteLinks([]string{in}); len(got) != 1 || got[0] != want {
			t.Errorf("rewriteLinks(%q) = %v, want %q", in, got, want)
		}
	}
}

func TestExitMeaning(t *testing.T) {
	for code, want := range map[int]string{1: "application error", 126: "command not executable", 127: "command not found",
		137: "SIGKILL: killed", 139: "SIGSEGV: segmentation fault", 143: "SIGTERM: terminated", 130: "SIGINT", 138: "killed by signal 10", 3: "application error"} {
		if got := ExitMeaning(code); got != want {
			t.Errorf("ExitMeaning(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestClassifyState(t *testing.T) {
	for _, c := range []struct {
		st       container.State
		restarts int
		stage    failure.Stage
		reason   failure.Reason
	}{
		{container.State{Status: container.StateCreated, ExitCode: 128, Error: "unable to find user nosuchuser"}, 0, failure.StageStart, failure.RunContainerError},
		{container.State{Status: container.StateExited, ExitCode: 127, Error: "exec: not found", StartedAt: "0001-01-01T00:00:00Z"}, 0, failure.StageStart, failure.RunContainerError},
		{container.State{Status: container.StateExited, ExitCode: 1, StartedAt: "2026-01-01T00:00:00Z"}, 0, failure.StageVerify, failure.ContainerExited},
		{container.State{Status: container.StateExited, ExitCode: 137, OOMKilled: true, StartedAt: "2026-01-01T00:00:00Z"}, 0, failure.StageVerify, failure.OOMKilled},
		{container.State{Status: container.StateExited, ExitCode: 1, OOMKilled: true, StartedAt: "2026-01-01T00:00:00Z"}, 0, failure.StageVerify, failure.ContainerExited},
		{container.State{Status: container.StateRestarting, Restarting: true, ExitCode: 1}, 1, failure.StageVerify, failure.CrashLoop},
		{container.State{Status: container.StateRunning, Running: true}, 2, failure.StageVerify, failure.CrashLoop},
		{container.State{Status: container.StateRunning, Running: true}, 0, "", ""},
	} {
		e := classifyState("c", container.InspectResponse{State: &c.st, RestartCount: c.restarts})
		var stage failure.Stage
		var reason failure.Reason
		if e != nil {
			stage, reason = e.Stage, e.Reason
		}
		if stage != c.stage || reason != c.reason {
			t.Errorf("classifyState(%+v, restarts %d) = %s/%s, want %s/%s", c.st, c.restarts, stage, reason, c.stage, c.reason)
		}
	}
}

// TestOOMVerdict: an exit 137 becomes OOMKilled when the engine's oom event comes (even after
// the die), stays ContainerExited without one, and names a memory limit as a possible cause.
func TestOOMVerdict(t *testing.T) {
	exited := container.InspectResponse{
		State:      &container.State{Status: container.StateExited, ExitCode: 137, StartedAt: "2026-01-01T00:00:00Z"},
		HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 32 << 20}},
	}
	e := classifyState("c", exited)
	if e == nil || e.Reason != failure.ContainerExited || !strings.Contains(e.Error(), "memory limit of 32 MiB") {
		t.Fatalf("classifyState(137 under a memory limit) = %v", e)
	}
	late := make(chan struct{})
	time.AfterFunc(100*time.Millisecond, func() { close(late) })
	if got := oomVerdict("c", exited, e, late); got.Reason != failure.OOMKilled {
		t.Errorf("with a late oom event: %s, want OOMKilled", got.Reason)
	}
	if got := oomVerdict("c", exited, e, make(chan struct{})); got != e {
		t.Errorf("without an oom event: %v, want the exit verdict unchanged", got)
	}
	exit1 := container.InspectResponse{State: &container.State{Status: container.StateExited, ExitCode: 1, StartedAt: "2026-01-01T00:00:00Z"}}
	one := classifyState("c", exit1)
	closed := make(chan struct{})
	close(closed)
	if got := oomVerdict("c", exit1, one, closed); got != one {
		t.Errorf("exit 1 with an oom event: %v, want unchanged", got)
	}
}

func TestErrorIsOneLine(t *testing.T) {
	e := newError(oldID, failure.StageVerify, failure.Unhealthy, "healthcheck failed\n(last probe)", fmt.Errorf("inner\nerror"))
	if s := e.Error(); strings.Contains(s, "\n") || !strings.HasPrefix(s, "verify: Unhealthy: container "+oldID[:12]) {
		t.Errorf("Error() = %q", s)
	}
}

// TestBuildCreateVolumesFrom: an image VOLUME path that volumes_from provides is not mounted again
// as the old container's anonymous volume; other anonymous volumes still are.
func TestBuildCreateVolumesFrom(t *testing.T) {
	old := oldContainer()
	old.HostConfig.VolumesFrom = []string{"src"}
	old.Config.Volumes["/cache"] = struct{}{}
	old.Mounts = append(old.Mounts, container.MountPoint{Type: mount.TypeVolume, Name: "anon456", Destination: "/cache", RW: true})
	p, err := buildCreate(old, createInput{OldImage: oldImage(), Image: "repo:2", API: "1.44", Label: "tx1", FromOthers: map[string]bool{"/data": true}})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range p.Host.Mounts {
		targets = append(targets, m.Target+"="+m.Source)
	}
	if !slices.Equal(targets, []string{"/cache=anon456"}) || !slices.Equal(p.Host.VolumesFrom, []string{"src"}) {
		t.Fatalf("mounts %v, volumes_from %v; want only /cache mounted again and /data left to volumes_from", targets, p.Host.VolumesFrom)
	}
}
