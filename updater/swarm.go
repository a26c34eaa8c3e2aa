package updater

import (
	"context"
	"strings"
	"time"

	mobyswarm "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/swarm"
)

// Swarm services. On a host whose engine is a Swarm manager, the services labelled
// watcher.enable=true are targets like containers (Kind service): their labels give their
// settings, their spec's pinned digest is what the check compares, the plan holds them as it holds
// containers, and apply updates each through the manager (package swarm: one ServiceUpdate, Swarm's
// own rolling update waited for). Their task containers are Swarm's, and never targets.

// SwarmEngine is what observing services needs of a manager's engine (*client.Client). It is found
// on Host.Engine by type assertion: an engine without it has no services.
type SwarmEngine interface {
	Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error)
	ServiceList(ctx context.Context, o client.ServiceListOptions) (client.ServiceListResult, error)
}

// ServiceUpdater updates services through a manager (swarm.Manager).
type ServiceUpdater interface {
	Update(ctx context.Context, s swarm.Spec) swarm.Result
	Recover(ctx context.Context) []swarm.Result
}

var (
	_ SwarmEngine    = (*client.Client)(nil)
	_ ServiceUpdater = (*swarm.Manager)(nil)
)

// Labels Swarm puts on the containers of its tasks.
const (
	labelTaskID    = "com.docker.swarm.task.id"
	labelServiceID = "com.docker.swarm.service.id"
)

// swarmRoleTTL is how long a host's Swarm role (manager, worker, none) is taken as known: Info is
// not a cheap call, and a role changes only when someone promotes, demotes, joins or leaves.
const swarmRoleTTL = time.Minute

// swarmRole is what a host is in a swarm.
type swarmRole struct {
	manager bool   // Info.Swarm.ControlAvailable
	worker  bool   // in a swarm, not a manager
	cluster string // the swarm's ID (two hosts managing one swarm are one swarm)
	at      time.Time
}

// Replicas are a Swarm service's tasks: how many it should run and how many do.
type Replicas struct {
	Mode    string `json:"mode"`    // replicated or global
	Desired int    `json:"desired"` // replicas; for a global service, the nodes Swarm runs a task on
	Running int    `json:"running"` // running tasks (after an update: on the image it set)
}

// serviceInfo is what a cycle knows of a service besides what its Container holds.
type serviceInfo struct {
	Spec     string // the spec's image as it is: repo:tag@sha256:…, or unpinned
	Pinned   string // the digest the spec pins; "" = none (the update resolves and pins it)
	Replicas Replicas
	Cluster  string // the swarm's ID
}

// role reads (at most once a swarmRoleTTL) what the host is in a swarm. On a worker it says once
// that services need a manager.
func (h *host) role(ctx context.Context) swarmRole {
	se, ok := h.Engine.(SwarmEngine)
	if !ok {
		return swarmRole{}
	}
	h.mu.Lock()
	r := h.swarm
	h.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < swarmRoleTTL {
		return r
	}
	info, err := se.Info(ctx, client.InfoOptions{})
	if err != nil {
		h.log.Warn("could not ask the engine whether it is a Swarm manager; its services are left out of this run", "err", err)
		return swarmRole{}
	}
	sw := info.Info.Swarm
	r = swarmRole{at: time.Now(), manager: sw.ControlAvailable,
		worker: sw.LocalNodeState == mobyswarm.LocalNodeStateActive && !sw.ControlAvailable}
	if sw.Cluster != nil {
		r.cluster = sw.Cluster.ID
	}
	h.mu.Lock()
	h.swarm = r
	h.mu.Unlock()
	if r.worker {
		h.sayOnce("worker", "this engine is a Swarm worker: services are watched and updated through a manager; "+
			"give the watcher a manager's engine (DOCKER_HOST or a hosts entry) to watch them")
	}
	return r
}

// listServices adds the services of a manager to obs: every one, and the watched ones (labelled
// watcher.enable=true, in this watcher's scope) among obs.Watched. A service whose task is the
// watcher's own container is the watcher's own service (self). A list that fails is logged: the
// containers go on.
func (h *host) listServices(ctx context.Context, o Options, obs *Observed, self string) {
	r := h.role(ctx)
	if !r.manager {
		return
	}
	res, err := h.Engine.(SwarmEngine).ServiceList(ctx, client.ServiceListOptions{Status: true})
	if err != nil {
		h.log.Warn("could not list the Swarm services; they are left out of this run", "err", err)
		return
	}
	for _, s := range res.Items {
		t := serviceTarget(h, s, o)
		t.service.Cluster = r.cluster
		t.Self = self != "" && s.ID == self
		obs.Services = append(obs.Services, t)
		obs.svcByName[t.Name] = t
		if t.Watched {
			obs.Watched = append(obs.Watched, t)
		}
	}
}

// serviceTarget is service s as a target: its labels read as a container's are, and watched only
// when it opts in (watcher.enable=true, whatever watch.label_enable says: no service is updated
// that its owner did not label).
func serviceTarget(h *host, s mobyswarm.Service, o Options) *Container {
	spec := ""
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		spec = cs.Image
	}
	t := &Container{Kind: KindService, Host: h.Name, Name: s.Spec.Name, ID: s.ID, Image: spec, State: "running",
		Labels: s.Spec.Labels, host: h, service: &serviceInfo{Spec: spec}}
	if img := trimDigest(spec); img != spec {
		t.Image, t.service.Pinned = img, pinnedDigest(spec) // repo:tag@sha256:… follows repo:tag
	}
	t.image = &imageInfo{}
	if rd := repoDigest(t.Image, t.service.Pinned); rd != "" {
		t.image.RepoDigests = []string{rd}
	}
	t.Settings, t.SettingsErr = ParseSettings(s.Spec.Labels, o.Defaults)
	optedIn := t.Settings.Enabled != nil && *t.Settings.Enabled
	t.Watched = o.Services && optedIn && h.sel.Watched(t.Settings) && spec != ""
	t.service.Replicas = replicasOf(s)
	return t
}

// replicasOf is what the service list says of a service's tasks.
func replicasOf(s mobyswarm.Service) Replicas {
	r := Replicas{Mode: "replicated"}
	if s.Spec.Mode.Global != nil {
		r.Mode = "global"
	}
	if st := s.ServiceStatus; st != nil {
		r.Desired, r.Running = int(st.DesiredTasks), int(st.RunningTasks)
	} else if rep := s.Spec.Mode.Replicated; rep != nil && rep.Replicas != nil {
		r.Desired = int(*rep.Replicas)
	}
	return r
}

// oneManagerPerSwarm leaves the services of a swarm to the first host (in configuration order)
// that manages it: two hosts that are managers of one swarm see the same services, which are
// checked and updated once.
func (u *Updater) oneManagerPerSwarm(views []hostView) {
	first := map[string]string{} // cluster ID -> host
	for _, v := range views {
		if v.err != nil || len(v.obs.Services) == 0 {
			continue
		}
		c := v.obs.Services[0].service.Cluster
		if c == "" {
			continue
		}
		by, seen := first[c]
		if !seen {
			first[c] = v.h.Name
			continue
		}
		v.h.sayOnce("services-"+c, "this host manages the same swarm as host "+by+": its services are watched and updated through "+by)
		v.obs.dropServices()
	}
}

// dropServices removes the services from the observation.
func (obs *Observed) dropServices() {
	obs.Services = nil
	obs.svcByName = map[string]*Container{}
	var keep []*Container
	for _, c := range obs.Watched {
		if c.Kind != KindService {
			keep = append(keep, c)
		}
	}
	obs.Watched = keep
}

// sayOnce logs msg at info the first time key is said on h.
func (h *host) sayOnce(key, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.said == nil {
		h.said = map[string]bool{}
	}
	if !h.said[key] {
		h.said[key] = true
		h.log.Info(msg)
	}
}

// isService reports whether c is a Swarm service.
func (c *Container) isService() bool { return c.Kind == KindService }

// ServiceSuccessor is what the release of a self-update of the watcher's own service names as its
// successor: Swarm starts it, and the process that sent the update learns of it by being stopped.
func ServiceSuccessor(serviceID string) string { return "service:" + serviceID }

// IsServiceSuccessor reports whether a successor is ServiceSuccessor's.
func IsServiceSuccessor(s string) bool { return strings.HasPrefix(s, "service:") }
