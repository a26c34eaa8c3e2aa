package updater

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
)

// Container is one container — or one Swarm service (Kind service, swarm.go) — as this cycle
// observed it. Observation makes few engine calls: one list, one inspect per distinct image, and
// container inspects only where the list does not say enough (an image reference shown as an ID)
// or when a plan needs the dependency graph; on a Swarm manager, one service list.
type Container struct {
	// Kind is KindService for a Swarm service (then Name, ID, Image and Labels are the service's,
	// Image without the digest its spec pins); a container's is KindContainer or "".
	Kind    Kind
	Host    string // the engine's name ("" = the only one)
	Name    string
	ID      string
	Image   string // the reference the container runs, as it was created (Config.Image)
	ImageID string
	// ManifestDigest is the platform manifest the container's image was pulled as, when the
	// engine reports it (the containerd image store): the check's proof of "unchanged" without
	// a request when only other platforms of a multi-platform tag moved.
	ManifestDigest string
	State          string // running, exited, ...
	NetworkMode    string
	Labels         map[string]string
	Settings       Settings
	SettingsErr    error // malformed labels: the container is reported failed, the rest go on
	Watched        bool  // selected by labels and scope, in a state the selection covers, not set aside
	Self           bool  // the watcher's own container (or the service whose task it is)
	// Task: a container of a Swarm service's task (label com.docker.swarm.task.id). Swarm owns it:
	// it is never watched, restarted or recreated; its service is the target.
	Task bool

	host    *host // the engine it lives on
	image   *imageInfo
	inspect *container.InspectResponse // filled by inspectTargets when a plan needs it
	deps    *depFacts                  // from an inspect: this run's, or one the inventory keeps
	service *serviceInfo               // KindService
}

// depFacts is what the dependency graph needs of a container that only an inspect shows: its
// legacy links (on the default bridge, and per endpoint on user networks) and the namespaces it
// joins (network — a Podman list leaves it out —, ipc and pid). They are fixed when the container
// is created, but for a network connect's links and the names links use: the inventory keeps
// them by container ID and forgets them when one of those events says they may have changed.
type depFacts struct {
	Links                         []string
	NetworkMode, IpcMode, PidMode string
}

// depsOf reads the dependency facts off an inspect.
func depsOf(ins *container.InspectResponse) *depFacts {
	f := &depFacts{}
	if hc := ins.HostConfig; hc != nil {
		f.Links = append(f.Links, hc.Links...)
		f.NetworkMode, f.IpcMode, f.PidMode = string(hc.NetworkMode), string(hc.IpcMode), string(hc.PidMode)
	}
	if ins.NetworkSettings != nil {
		for _, ep := range ins.NetworkSettings.Networks {
			if ep != nil {
				f.Links = append(f.Links, ep.Links...)
			}
		}
	}
	return f
}

// joinsOthers reports whether the facts name another container's namespace (container:<ref>):
// a replacement may point it elsewhere, so a new container does not inherit them.
func (f *depFacts) joinsOthers() bool {
	for _, m := range []string{f.NetworkMode, f.IpcMode, f.PidMode} {
		if strings.HasPrefix(m, "container:") {
			return true
		}
	}
	return false
}

// mentions reports whether the facts name container name (a link's target, or a namespace
// mode's): a rename may have changed what they say.
func (f *depFacts) mentions(name string) bool {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		return false
	}
	for _, l := range f.Links {
		target, _, _ := strings.Cut(strings.TrimPrefix(l, "/"), ":")
		if target == name {
			return true
		}
	}
	for _, m := range []string{f.NetworkMode, f.IpcMode, f.PidMode} {
		if m == "container:"+name {
			return true
		}
	}
	return false
}

// Target is the container (or service) as plan entries name it.
func (c *Container) Target() Target {
	return Target{Kind: c.kind(), Host: c.Host, Name: c.Name, ID: c.ID}
}

func (c *Container) kind() Kind {
	if c.Kind == "" {
		return KindContainer
	}
	return c.Kind
}

// key is how a run's report lines and the known states name c: "web", or "edge-1/web".
func (c *Container) key() string { return c.Target().String() }

// managed reports whether a plan may stop c to follow what it depends on: it is watched, or it
// is opted out but carries watcher.follow=true. Opt-out is otherwise absolute, and the watcher's
// own container is never stopped as a dependent (it would stop the run).
func (c *Container) managed() bool { return !c.Self && !c.Task && (c.Watched || c.Settings.Follow) }

type imageInfo struct {
	RepoDigests []string
	OS, Arch    string
	Variant     string
	Created     string
	details     *lifecycle.ImageDetails // what an update's transaction needs of it (Spec.OldImage)
	err         error
}

// names reports whether the image is known under repository repo (by a tag or a digest).
func (i *imageInfo) names(repo string) bool {
	refs := slices.Clone(i.RepoDigests)
	if i.details != nil {
		refs = append(refs, i.details.RepoTags...)
	}
	for _, r := range refs {
		if ref, err := name.ParseReference(r); err == nil && ref.Context().Name() == repo {
			return true
		}
	}
	return false
}

// Observed is the state a cycle works from: every container on the engine (dependents of an
// updated container need restarting whether or not they are watched), on a Swarm manager every
// service, and the watched subset of both.
type Observed struct {
	All       []*Container
	byName    map[string]*Container
	byID      map[string]*Container
	Services  []*Container
	svcByName map[string]*Container
	Watched   []*Container
}

// nameOf returns the name of the container ref names: an ID, a short ID (12 or more hex digits)
// or a name, as container:<ref> modes and links spell it. An unknown ref is returned as it is.
func (obs *Observed) nameOf(ref string) string {
	if c := obs.byID[ref]; c != nil {
		return c.Name
	}
	if len(ref) >= 12 {
		for _, c := range obs.All {
			if strings.HasPrefix(c.ID, ref) {
				return c.Name
			}
		}
	}
	return ref
}

var hexID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// imageIsID reports whether a container list shows the image as an ID rather than a reference.
func imageIsID(image, imageID string) bool {
	if strings.HasPrefix(image, "sha256:") {
		return true
	}
	return hexID.MatchString(image) && strings.HasPrefix(strings.TrimPrefix(imageID, "sha256:"), image)
}

// list reads every container of the host: from its inventory when the daemon keeps one current
// from the engine's events (inventory.go), else from one engine list call. It makes no other
// engine call, apart from the inventory catching up with what changed.
func (h *host) list(ctx context.Context, o Options) (*Observed, error) {
	cs, ok, err := h.inv.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		if cs, err = h.listAll(ctx, o, nil); err != nil {
			return nil, err
		}
	}
	obs := &Observed{All: cs, byName: make(map[string]*Container, len(cs)), byID: make(map[string]*Container, len(cs)), svcByName: map[string]*Container{}}
	selfService := ""
	for _, t := range cs {
		obs.byName[t.Name] = t
		obs.byID[t.ID] = t
		if t.Watched {
			obs.Watched = append(obs.Watched, t)
		}
		if t.Self && t.Task {
			selfService = t.Labels[labelServiceID]
		}
	}
	if o.Services {
		h.listServices(ctx, o, obs, selfService)
	}
	return obs, nil
}

// listAll lists every container of the host with one engine call. known, when not nil, holds
// containers seen before by ID: their settings are taken over (a container's labels never
// change), and so is the reference they were created with.
func (h *host) listAll(ctx context.Context, o Options, known map[string]*Container) ([]*Container, error) {
	list, err := h.Engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]*Container, 0, len(list.Items))
	for _, c := range list.Items {
		t := &Container{Host: h.Name, ID: c.ID, Image: c.Image, ImageID: c.ImageID, State: string(c.State), NetworkMode: c.HostConfig.NetworkMode, Labels: c.Labels, host: h}
		if d := c.ImageManifestDescriptor; d != nil {
			t.ManifestDigest = d.Digest.String()
		}
		if len(c.Names) > 0 {
			t.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		h.settle(t, o, known[c.ID])
		out = append(out, t)
	}
	return out, nil
}

// fromInspect is the container an inspect describes, as listAll would have made it (with the
// reference it was created with, which a list may show as an image ID).
func (h *host) fromInspect(ins container.InspectResponse, o Options, known *Container) *Container {
	t := &Container{Host: h.Name, ID: ins.ID, ImageID: ins.Image, Name: strings.TrimPrefix(ins.Name, "/"), host: h}
	if ins.Config != nil {
		t.Image, t.Labels = ins.Config.Image, ins.Config.Labels
	}
	if ins.State != nil {
		t.State = string(ins.State.Status)
	}
	if ins.HostConfig != nil {
		t.NetworkMode = string(ins.HostConfig.NetworkMode)
	}
	if d := ins.ImageManifestDescriptor; d != nil {
		t.ManifestDigest = d.Digest.String()
	}
	t.deps = depsOf(&ins)
	h.settle(t, o, known)
	return t
}

// settle fills what follows from a container's labels and state: its settings (taken from known,
// the same container seen before, when there is one), whether it is the watcher's own, and
// whether it is watched.
func (h *host) settle(t *Container, o Options, known *Container) {
	if known != nil && known.ID == t.ID {
		t.Settings, t.SettingsErr = known.Settings, known.SettingsErr
		if imageIsID(t.Image, t.ImageID) && !imageIsID(known.Image, known.ImageID) {
			t.Image = known.Image // Config.Image never changes; a list shows the ID once the tag moved
		}
	} else {
		t.Settings, t.SettingsErr = ParseSettings(t.Labels, o.Defaults)
	}
	t.Self = o.SelfID != "" && t.ID == o.SelfID
	t.Task = t.Labels[labelTaskID] != ""
	// Our own set-aside containers (<name>-watcher-<txid>) are never watched: they belong to a
	// transaction in flight or in recovery. Nor are Swarm's task containers: their service is.
	aside := t.Labels["watcher.txid"] != "" && strings.Contains(t.Name, "-watcher-")
	stateOK := t.State == "running" || (o.IncludeStopped && (t.State == "exited" || t.State == "created")) ||
		(o.IncludeRestarting && t.State == "restarting")
	t.Watched = stateOK && !aside && !t.Task && h.sel.Watched(t.Settings) && h.sel.Named(t.Name)
}

// observe lists the host's containers and reads their settings and images.
func (h *host) observe(ctx context.Context, o Options) (*Observed, error) {
	obs, err := h.list(ctx, o)
	if err != nil {
		return nil, err
	}
	sort.Slice(obs.Watched, func(i, j int) bool { return obs.Watched[i].Name < obs.Watched[j].Name })

	// A list entry shows the image ID instead of the reference once the tag has moved to another
	// image; the reference the container was created with is in its config.
	var needInspect []*Container
	for _, t := range obs.Watched {
		if !t.isService() && imageIsID(t.Image, t.ImageID) {
			needInspect = append(needInspect, t)
		}
	}
	if err := h.inspectTargets(ctx, needInspect); err != nil {
		return nil, err
	}
	for _, t := range needInspect {
		if t.inspect != nil && t.inspect.Config != nil {
			t.Image = t.inspect.Config.Image
		}
	}

	// One image inspect per distinct image, unless the inventory has it: an image ID names
	// immutable content, and what can change of its inspect (the repository digests, when the
	// image is pulled or tagged) the inventory learns from the engine's image events.
	images := map[string]*imageInfo{}
	var ids []string
	gen := h.inv.imageGen()
	for _, t := range obs.Watched {
		if t.isService() {
			continue // what its spec pins is what a check compares (serviceTarget)
		}
		if _, ok := images[t.ImageID]; ok {
			continue
		}
		if info := h.inv.image(t.ImageID); info != nil {
			images[t.ImageID] = info
			continue
		}
		images[t.ImageID] = &imageInfo{}
		ids = append(ids, t.ImageID)
	}
	forEach(ctx, len(ids), func(i int) {
		info := images[ids[i]]
		res, err := h.Engine.ImageInspect(ctx, ids[i])
		if err != nil {
			info.err = err
			return
		}
		info.RepoDigests = res.RepoDigests
		info.OS, info.Arch, info.Variant = res.Os, res.Architecture, res.Variant
		info.Created = res.Created
		info.details = lifecycle.DetailsOf(res.InspectResponse)
		h.inv.putImage(ids[i], info, gen)
	})
	for _, t := range obs.Watched {
		if !t.isService() {
			t.image = images[t.ImageID]
		}
	}
	return obs, ctx.Err()
}

// inspectTargets fills c.inspect for each container, a few at a time.
func (h *host) inspectTargets(ctx context.Context, ts []*Container) error {
	var mu sync.Mutex
	var firstErr error
	forEach(ctx, len(ts), func(i int) {
		t := ts[i]
		if t.inspect != nil {
			return
		}
		res, err := h.Engine.ContainerInspect(ctx, t.ID, client.ContainerInspectOptions{})
		if err != nil {
			if isNotFound(err) {
				return // gone since the list: nothing to plan for it
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("inspecting %s: %w", t.Name, err)
			}
			mu.Unlock()
			return
		}
		c := res.Container
		t.inspect, t.deps = &c, depsOf(&c)
	})
	return firstErr
}

// forEach runs f(0..n-1) with bounded concurrency: engine calls are cheap but not free, and a
// host with hundreds of containers should not see hundreds of parallel requests.
func forEach(ctx context.Context, n int, f func(i int)) {
	const limit = 8
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}(i)
	}
	wg.Wait()
}
