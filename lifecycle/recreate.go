package lifecycle

import (
	"encoding/json"
	"net"
	"slices"
	"sort"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client/pkg/versions"
)

// createPlan is everything ContainerCreate (and, below API 1.44, NetworkConnect) needs.
type createPlan struct {
	Config   *container.Config
	Host     *container.HostConfig
	Network  *network.NetworkingConfig
	Connect  map[string]*network.EndpointSettings // endpoints to connect after create (API < 1.44)
	Warnings []string
	// LegacyMAC is the user-set MAC address to send as Config.MacAddress, the only place engines
	// below API 1.44 read it (createLegacyMAC); "" otherwise.
	LegacyMAC string
}

// createInput is what buildCreate needs besides the old container's inspect.
type createInput struct {
	MAC      string        // the user-set MAC address (Config.MacAddress in the snapshot), or ""
	OldImage *ImageDetails // the old image's defaults, subtracted
	Image    string        // what the new container runs
	Replaced map[string]string
	API      string // the negotiated API version
	Label    string // the LabelTxID value
	// FromOthers are the container paths the volumes_from containers provide: an image VOLUME
	// there is theirs, and mounting it again would mount that path twice.
	FromOthers map[string]bool
}

// buildCreate turns the old container's inspect into a create request for in.Image, so that the
// new container is the one the user configured, not a copy of the old image's defaults (the
// engine merges an image's defaults into a container's config at create, so a verbatim copy
// would freeze the old image's):
//   - the OLD image's defaults (env, labels, entrypoint/cmd, user, workdir, healthcheck fields,
//     volumes, exposed ports, stop signal) are subtracted so the new image's apply;
//   - a hostname equal to the old ID prefix is cleared (and any hostname in container:/uts=host
//     modes, where the engine rejects one);
//   - each network endpoint is rebuilt from configuration only: static IPs, aliases minus the
//     old short ID, links, driver opts, gateway priority, and a MAC only if the user set one;
//   - container:<id> modes and volumes_from follow replaced; links are rewritten name:alias;
//   - anonymous volumes are mounted again by name, so their data stays with the service;
//   - LabelTxID is set to in.Label.
func buildCreate(old container.InspectResponse, in createInput) (*createPlan, error) {
	cfg := new(container.Config)
	hc := new(container.HostConfig)
	if err := deepCopy(old.Config, cfg); err != nil {
		return nil, err
	}
	if err := deepCopy(old.HostConfig, hc); err != nil {
		return nil, err
	}
	plan := &createPlan{Config: cfg, Host: hc}
	oldShort := shortID(old.ID)
	cfg.Image = in.Image

	if in.OldImage != nil && in.OldImage.Config != nil {
		subtractImageDefaults(cfg, in.OldImage.Config)
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[LabelTxID] = in.Label
	for p := range hc.PortBindings {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if len(cfg.ExposedPorts) == 0 {
		cfg.ExposedPorts = nil
	}

	followReplaced(hc, in.Replaced)
	clearHostname(cfg, hc, oldShort)

	remountAnonymousVolumes(old, cfg, hc, in.FromOthers)
	if len(cfg.Volumes) == 0 {
		cfg.Volumes = nil
	}

	buildNetworks(plan, old, in.MAC, oldShort, in.API)
	return plan, nil
}

// subtractImageDefaults removes from cfg what it has only because the old image (ic) set it at
// create: env, labels, entrypoint/cmd, user, workdir, stop signal, healthcheck fields, volumes and
// exposed ports equal to the image's, so the new image's defaults apply instead.
func subtractImageDefaults(cfg *container.Config, ic *dockerspec.DockerOCIImageConfig) {
	cfg.Env = subtractEnv(cfg.Env, ic.Env)
	for k, v := range ic.Labels {
		if lv, ok := cfg.Labels[k]; ok && lv == v {
			delete(cfg.Labels, k)
		}
	}
	if equalArgs(cfg.Entrypoint, ic.Entrypoint) {
		cfg.Entrypoint = nil
		if equalArgs(cfg.Cmd, ic.Cmd) {
			cfg.Cmd = nil
		}
	}
	if cfg.User == ic.User {
		cfg.User = ""
	}
	if cfg.WorkingDir == ic.WorkingDir {
		cfg.WorkingDir = ""
	}
	if cfg.StopSignal == ic.StopSignal {
		cfg.StopSignal = ""
	}
	if cfg.Healthcheck != nil && ic.Healthcheck != nil && subtractHealthcheck(cfg.Healthcheck, ic.Healthcheck) {
		cfg.Healthcheck = nil
	}
	for v := range ic.Volumes {
		delete(cfg.Volumes, v)
	}
	for p := range ic.ExposedPorts {
		if port, err := network.ParsePort(p); err == nil {
			delete(cfg.ExposedPorts, port)
		}
	}
}

// subtractHealthcheck zeroes the fields of h that equal the image's (ih), and reports whether
// nothing of the container's own is left.
func subtractHealthcheck(h, ih *container.HealthConfig) (empty bool) {
	if equalArgs(h.Test, ih.Test) {
		h.Test = nil
	}
	if h.Interval == ih.Interval {
		h.Interval = 0
	}
	if h.Timeout == ih.Timeout {
		h.Timeout = 0
	}
	if h.StartPeriod == ih.StartPeriod {
		h.StartPeriod = 0
	}
	if h.StartInterval == ih.StartInterval {
		h.StartInterval = 0
	}
	if h.Retries == ih.Retries {
		h.Retries = 0
	}
	return len(h.Test) == 0 && h.Interval == 0 && h.Timeout == 0 && h.StartPeriod == 0 && h.StartInterval == 0 && h.Retries == 0
}

// followReplaced points namespaces and volumes_from shared with other containers at their
// replacements from earlier in the run, and rewrites links to name:alias.
func followReplaced(hc *container.HostConfig, replaced map[string]string) {
	hc.NetworkMode = container.NetworkMode(rewriteContainerRef(string(hc.NetworkMode), replaced))
	hc.IpcMode = container.IpcMode(rewriteContainerRef(string(hc.IpcMode), replaced))
	hc.PidMode = container.PidMode(rewriteContainerRef(string(hc.PidMode), replaced))
	for i, vf := range hc.VolumesFrom {
		id, opt, _ := strings.Cut(vf, ":")
		if n := lookupReplaced(id, replaced); n != "" {
			hc.VolumesFrom[i] = strings.TrimSuffix(n+":"+opt, ":")
		}
	}
	hc.Links = rewriteLinks(hc.Links)
}

// clearHostname drops a hostname that was the old container's ID prefix (the engine's default,
// which would otherwise freeze the old ID), and any where the engine rejects or ignores one.
func clearHostname(cfg *container.Config, hc *container.HostConfig, oldShort string) {
	if cfg.Hostname == oldShort {
		cfg.Hostname = ""
	}
	if hc.NetworkMode.IsContainer() {
		// The engine rejects these in container mode (validateNetContainerMode), image-inherited
		// exposed ports included; the hostname and domain come from the other container.
		cfg.Hostname, cfg.Domainname = "", ""
		cfg.ExposedPorts = nil
	}
	if hc.UTSMode.IsHost() {
		cfg.Hostname = ""
	}
}

// remountAnonymousVolumes mounts each anonymous volume of old (an image VOLUME or `-v /path`,
// and `--mount type=volume` without a source) again by its name, so the data stays. Paths that
// volumes_from provides (fromOthers) are left to it.
func remountAnonymousVolumes(old container.InspectResponse, cfg *container.Config, hc *container.HostConfig, fromOthers map[string]bool) {
	byDest := map[string]container.MountPoint{}
	for _, mp := range old.Mounts {
		if mp.Type == mount.TypeVolume && mp.Name != "" {
			byDest[mp.Destination] = mp
		}
	}
	user := map[string]bool{} // destinations the user configured explicitly
	for _, b := range hc.Binds {
		if d := bindDestination(b); d != "" {
			user[d] = true
		}
	}
	for i, m := range hc.Mounts {
		user[m.Target] = true
		if m.Type == mount.TypeVolume && m.Source == "" {
			if mp, ok := byDest[m.Target]; ok {
				hc.Mounts[i].Source = mp.Name
			}
		}
	}
	for d := range hc.Tmpfs {
		user[d] = true
	}
	dests := make([]string, 0, len(old.Config.Volumes))
	for d := range old.Config.Volumes {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	for _, d := range dests {
		mp, ok := byDest[d]
		if !ok || user[d] || fromOthers[d] {
			continue
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: mp.Name, Target: d, ReadOnly: !mp.RW})
		delete(cfg.Volumes, d)
	}
}

// bindDestination is the container path of a -v bind ("src:dst[:opts]").
func bindDestination(b string) string {
	parts := strings.Split(b, ":")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// buildNetworks rebuilds each endpoint from its configuration. API >= 1.44 takes every endpoint
// at create; below it one goes at create and the rest are connected before start.
func buildNetworks(plan *createPlan, old container.InspectResponse, mac, oldShort, apiVersion string) {
	mode := plan.Host.NetworkMode
	if mode.IsNone() || mode.IsHost() || mode.IsContainer() || old.NetworkSettings == nil {
		return
	}
	eps := map[string]*network.EndpointSettings{}
	for name, ep := range old.NetworkSettings.Networks {
		if ep == nil {
			continue
		}
		fresh := &network.EndpointSettings{Links: slices.Clone(ep.Links), DriverOpts: ep.DriverOpts, GwPriority: ep.GwPriority}
		if c := ep.IPAMConfig; c != nil && (c.IPv4Address.IsValid() || c.IPv6Address.IsValid() || len(c.LinkLocalIPs) > 0) {
			fresh.IPAMConfig = c.Copy()
		}
		for _, a := range ep.Aliases {
			if a != oldShort && !slices.Contains(fresh.Aliases, a) {
				fresh.Aliases = append(fresh.Aliases, a)
			}
		}
		eps[name] = fresh
	}
	if len(eps) == 0 {
		return
	}
	primary := string(mode)
	if mode.IsDefault() {
		primary = "bridge"
	}
	if _, ok := eps[primary]; !ok {
		names := make([]string, 0, len(eps))
		for n := range eps {
			names = append(names, n)
		}
		sort.Strings(names)
		primary = names[0]
	}
	if mac != "" {
		if hw, err := net.ParseMAC(mac); err == nil {
			eps[primary].MacAddress = network.HardwareAddr(hw)
			if versions.LessThan(apiVersion, "1.44") {
				// Below 1.44 the engine reads only Config.MacAddress (for the primary network),
				// which the typed client (API 1.52+ types) cannot send: see createLegacyMAC.
				plan.LegacyMAC = hw.String()
			}
		}
	}
	if versions.GreaterThanOrEqualTo(apiVersion, "1.44") {
		plan.Network = &network.NetworkingConfig{EndpointsConfig: eps}
		return
	}
	plan.Network = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{primary: eps[primary]}}
	for n, ep := range eps {
		if n != primary {
			if plan.Connect == nil {
				plan.Connect = map[string]*network.EndpointSettings{}
			}
			plan.Connect[n] = ep
		}
	}
}

// rewriteContainerRef maps "container:<old id>" to "container:<new id>" through replaced.
func rewriteContainerRef(mode string, replaced map[string]string) string {
	ref, ok := strings.CutPrefix(mode, "container:")
	if !ok {
		return mode
	}
	if n := lookupReplaced(ref, replaced); n != "" {
		return "container:" + n
	}
	return mode
}

// lookupReplaced finds id (full or a prefix of at least 12 characters) among replaced's keys.
func lookupReplaced(id string, replaced map[string]string) string {
	if n, ok := replaced[id]; ok {
		return n
	}
	if len(id) >= 12 {
		for o, n := range replaced {
			if strings.HasPrefix(o, id) {
				return n
			}
		}
	}
	return ""
}

// rewriteLinks turns inspect's "/child:/parent/alias" into create's "child:alias".
func rewriteLinks(links []string) []string {
	if len(links) == 0 {
		return nil
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		src, dst, ok := strings.Cut(l, ":")
		if !ok {
			out = append(out, strings.TrimPrefix(l, "/"))
			continue
		}
		alias := dst[strings.LastIndex(dst, "/")+1:]
		out = append(out, strings.TrimPrefix(src, "/")+":"+alias)
	}
	return out
}

// subtractEnv removes from env the entries equal to one of the image's.
func subtractEnv(env, image []string) []string {
	if len(image) == 0 {
		return env
	}
	var out []string
	for _, e := range env {
		if !slices.Contains(image, e) {
			out = append(out, e)
		}
	}
	return out
}

// equalArgs compares argument lists, nil and empty being equal.
func equalArgs(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

func deepCopy(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}
