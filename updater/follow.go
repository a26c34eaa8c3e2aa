package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// The daemon's inventory: each host's containers kept in memory and current from the engine's
// event stream (FollowEvents), so that a run costs the registry's requests and only what changed
// on the engine, never a list of every container. It is rebuilt from one full list (a resync) when
// the stream starts, after any stream error, and every Options.InventoryResync; a resync that finds the
// inventory wrong (an event the stream lost) corrects it and says so in the log.
//
// A snapshot first catches up with the engine: it asks for the events logged since the newest one
// it has handled (one short request, answered from the engine's event log), so what a client did
// just before triggering a run is in that run even when the stream has not delivered it yet. Then
// it inspects each container an event named since its last look, and copies the rest. Image
// inspects are kept by image ID until an image event says images changed.
//
// Without FollowEvents (watcher once, check, rollback) nothing here runs and every run lists.

// eventSource is the engine's event stream (*client.Client has it); an engine without it is
// listed every run.
type eventSource interface {
	Events(ctx context.Context, o client.EventsListOptions) client.EventsResult
}

// DefaultInventoryResync is Options.InventoryResync's default.
const DefaultInventoryResync = 5 * time.Minute

// The stream carries container events that change what the inventory holds (name, state,
// existence), the ones verify waits on (oom, health_status: they change nothing here), image
// events that change what an image inspect says (its repository digests), and network connects
// and disconnects (they change a container's links). Exec events, many a minute on a host with
// healthchecks, are not asked for.
var (
	followedTypes  = []string{string(events.ContainerEventType), string(events.ImageEventType), string(events.NetworkEventType)}
	followedEvents = []string{
		string(events.ActionCreate), string(events.ActionStart), string(events.ActionRestart), string(events.ActionDie),
		string(events.ActionDestroy), string(events.ActionRename), string(events.ActionPause), string(events.ActionUnPause),
		string(events.ActionOOM), string(events.ActionHealthStatus),
		string(events.ActionPull), string(events.ActionTag), string(events.ActionUnTag), string(events.ActionDelete),
		string(events.ActionImport), string(events.ActionLoad),
		string(events.ActionConnect), string(events.ActionDisconnect),
	}
)

// refreshLimit: a snapshot inspects at most this many changed containers one by one; more than
// that (a compose project started) and one list is cheaper.
const refreshLimit = 32

// inventory is one host's containers as the engine's events keep them.
type inventory struct {
	h     *host
	src   eventSource
	o     Options
	every time.Duration

	refresh sync.Mutex // one catch-up, refresh or resync at a time

	mu      sync.Mutex
	live    bool                  // a resync succeeded and the stream has not failed since
	entries map[string]*Container // by ID; copied by each snapshot, never handed out
	dirty   map[string]uint64     // container IDs an event named since their last look -> the event's seq
	gone    map[string]uint64     // of those, the ones whose latest event was their destroy -> its seq
	seq     uint64
	last    int64                 // TimeNano of the newest event handled: where a catch-up starts
	images  map[string]*imageInfo // image inspects by image ID, while no image event says otherwise
	deps    map[string]depsEntry  // dependency facts by container ID (depFacts)
	imgGen  uint64                // bumped by every image event and resync
	feed    feed                  // the stream, shared with transactions' verify (feed.go)
	stats   inventoryStats
}

// inventoryStats counts what an inventory did (tests; the log says the same).
type inventoryStats struct {
	Resyncs   int // full lists
	Drifted   int // containers a resync found different from what the events said
	Refreshed int // containers inspected because an event named them
	CaughtUp  int // catch-up requests
}

func newInventory(h *host, o Options) *inventory {
	src, _ := h.Engine.(eventSource)
	every := o.InventoryResync
	if every <= 0 {
		every = DefaultInventoryResync
	}
	return &inventory{h: h, src: src, o: o, every: every, dirty: map[string]uint64{}, gone: map[string]uint64{}, images: map[string]*imageInfo{}, deps: map[string]depsEntry{}}
}

// FollowEvents keeps each host's inventory current from its engine's events until ctx ends (the
// daemon runs it). Until a host's first resync, and whenever its stream has failed and is not
// back, runs list that host's containers as they would without it.
func (u *Updater) FollowEvents(ctx context.Context) {
	var wg sync.WaitGroup
	for _, h := range u.hosts {
		if h.inv.src != nil {
			wg.Go(func() { h.inv.run(ctx) })
		}
	}
	wg.Wait()
}

// run follows the stream, resyncing at each (re)start, until ctx ends; a failed stream is asked
// again after a pause that doubles up to 30 s while it keeps failing.
func (inv *inventory) run(ctx context.Context) {
	pause := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := inv.follow(ctx)
		inv.down(err)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			pause = time.Second
		}
		inv.h.log.Warn("engine event stream ended; runs list the containers until it is back and resynced", "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// follow subscribes to the stream, resyncs, then handles events (and resyncs every inv.every)
// until the stream fails. The subscription starts before the resync's list, and replays from
// just before it, so no event between the two is lost.
func (inv *inventory) follow(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inv.mu.Lock()
	inv.last = max(inv.last, time.Now().UnixNano())
	since := inv.last
	inv.feed.restart(since)
	clear(inv.deps) // renames and connects while no stream was followed went unseen
	inv.mu.Unlock()
	stream := inv.src.Events(sctx, client.EventsListOptions{Since: stamp(since), Filters: followFilter()})
	if err := inv.resync(sctx, "the event stream (re)started"); err != nil {
		return err
	}
	resyncs := make(chan error, 1)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait() // no resync of this stream marks the inventory live once it has ended
	}()
	wg.Go(func() {
		t := time.NewTicker(inv.every)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := inv.resync(sctx, "periodic"); err != nil {
					resyncs <- err
					return
				}
			}
		}
	})
	for {
		select {
		case m := <-stream.Messages:
			inv.handle(m)
			inv.mu.Lock()
			inv.feed.publish(m)
			inv.mu.Unlock()
		case err := <-stream.Err:
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the engine closed the stream")
			}
			return err
		case err := <-resyncs:
			return fmt.Errorf("periodic resync: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func followFilter() client.Filters {
	return make(client.Filters).Add("type", followedTypes...).Add("event", followedEvents...)
}

// stamp is t (Unix nanoseconds) as the events API's since/until: seconds.nanoseconds.
func stamp(t int64) string {
	return strconv.FormatInt(t/1e9, 10) + "." + fmt.Sprintf("%09d", t%1e9)
}

// handle takes in one event: a container's is marked for a look at the next snapshot (a destroyed
// one for dropping without a look; a network connect or disconnect names its container, and may
// change its links); an image event forgets the image inspects it may have changed (pulls, tags
// and removals change repository digests). oom and health_status change nothing the inventory
// holds: they are followed for verify (feed.go).
func (inv *inventory) handle(m events.Message) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.last = max(inv.last, m.TimeNano)
	switch m.Type {
	case events.ContainerEventType:
		if m.Action == events.ActionOOM || strings.HasPrefix(string(m.Action), string(events.ActionHealthStatus)) {
			return
		}
		if m.Action == events.ActionRename {
			inv.forgetDepsNaming(m.Actor.Attributes["oldName"], m.Actor.Attributes["name"])
		}
		inv.mark(m.Actor.ID)
		if m.Action == events.ActionDestroy && m.Actor.ID != "" {
			inv.gone[m.Actor.ID] = inv.seq // nothing to inspect: the snapshot drops it
		}
	case events.NetworkEventType:
		id := m.Actor.Attributes["container"]
		delete(inv.deps, id) // a connect may bring links
		inv.mark(id)
	case events.ImageEventType:
		inv.imgGen++
		inv.forgetImages(m)
	}
}

// forgetImages drops the image inspects an image event may have changed: a tag, untag or delete
// names its image by ID; a pull names a reference, and changes only images of that repository
// (the pulled one gains its digest — a tag moved onto it comes with a tag event); anything else
// (an import, a load, a name it cannot read) drops them all. inv.mu is held.
func (inv *inventory) forgetImages(m events.Message) {
	id := m.Actor.ID
	switch m.Action {
	case events.ActionTag, events.ActionUnTag, events.ActionDelete:
		if strings.HasPrefix(id, "sha256:") && len(id) == len("sha256:")+64 {
			delete(inv.images, id)
			return
		}
	case events.ActionPull:
		if ref, err := name.ParseReference(id); err == nil {
			repo := ref.Context().Name()
			for k, info := range inv.images {
				if info.names(repo) {
					delete(inv.images, k)
				}
			}
			return
		}
	}
	clear(inv.images)
}

// mark notes that container id changed. inv.mu is held.
func (inv *inventory) mark(id string) {
	if id != "" {
		inv.seq++
		inv.dirty[id] = inv.seq
	}
}

// down marks the inventory not live and ends the shared stream's readers: the stream ended.
func (inv *inventory) down(err error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.live = false
	if err == nil {
		err = errors.New("the event stream ended")
	}
	inv.feed.endAll(fmt.Errorf("the engine's event stream ended: %w", err))
}

func (inv *inventory) isLive() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.live
}

// resync replaces the inventory by one full list of the engine, and counts (and logs) the
// containers it held wrong that no pending event explained: events the stream lost.
func (inv *inventory) resync(ctx context.Context, why string) error {
	inv.refresh.Lock()
	defer inv.refresh.Unlock()
	return inv.resyncLocked(ctx, why)
}

// resyncLocked is resync with inv.refresh held.
func (inv *inventory) resyncLocked(ctx context.Context, why string) error {
	inv.mu.Lock()
	s0 := inv.seq
	known := inv.entries
	inv.mu.Unlock()
	cs, err := inv.h.listAll(ctx, inv.o, known)
	if err != nil {
		return err
	}
	// A list shows the image ID instead of the reference once the tag has moved; the reference
	// the container was created with is in its config (and then kept: it never changes).
	var unresolved []*Container
	for _, c := range cs {
		if imageIsID(c.Image, c.ImageID) {
			unresolved = append(unresolved, c)
		}
	}
	if err := inv.h.inspectTargets(ctx, unresolved); err != nil {
		return err
	}
	fresh := make(map[string]*Container, len(cs))
	for _, c := range cs {
		if c.inspect != nil && c.inspect.Config != nil {
			c.Image = c.inspect.Config.Image
		}
		c.inspect = nil
		fresh[c.ID] = c
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	drift := 0
	if inv.live {
		drift = inv.drift(fresh)
	}
	inv.entries = fresh
	for id, seq := range inv.dirty {
		if seq <= s0 {
			inv.looked(id) // the list is newer than that event
		}
	}
	for id, d := range inv.deps {
		if d.seq <= s0 && fresh[id] == nil {
			delete(inv.deps, id) // gone: the list is newer than what they were learned from
		}
	}
	clear(inv.images)
	inv.imgGen++
	inv.live = true
	inv.stats.Resyncs++
	inv.stats.Drifted += drift
	if drift > 0 {
		inv.h.log.Warn("container inventory had drifted from the engine (events were lost); corrected by a full resync", "containers", drift, "resync", why)
	} else {
		inv.h.log.Debug("container inventory resynced", "containers", len(fresh), "resync", why)
	}
	return nil
}

// drift counts the containers fresh shows otherwise than the inventory does (gone, new, renamed,
// another state or image) with no event pending for them. inv.mu is held.
func (inv *inventory) drift(fresh map[string]*Container) int {
	n := 0
	for id, c := range fresh {
		if _, pending := inv.dirty[id]; pending {
			continue
		}
		if old := inv.entries[id]; old == nil || old.Name != c.Name || old.State != c.State || old.ImageID != c.ImageID {
			n++
		}
	}
	for id := range inv.entries {
		if _, pending := inv.dirty[id]; !pending && fresh[id] == nil {
			n++
		}
	}
	return n
}

// snapshot returns the host's containers, sorted by name, current as of now: ok is false when
// the inventory is not live (not followed, or its stream failed) and the caller must list.
func (inv *inventory) snapshot(ctx context.Context) (cs []*Container, ok bool, err error) {
	if inv == nil || !inv.isLive() {
		return nil, false, nil
	}
	inv.refresh.Lock()
	defer inv.refresh.Unlock()
	if err := inv.catchUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		inv.h.log.Debug("could not catch up with the engine's events; listing", "err", err)
		return nil, false, nil
	}
	for range 3 {
		more, err := inv.refreshDirty(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, err
			}
			return nil, false, nil
		}
		if !more {
			break
		}
	}
	inv.mu.Lock()
	if !inv.live {
		inv.mu.Unlock()
		return nil, false, nil
	}
	cs = make([]*Container, 0, len(inv.entries))
	for _, e := range inv.entries {
		c := *e
		c.deps = inv.deps[c.ID].f
		cs = append(cs, &c)
	}
	inv.mu.Unlock()
	slices.SortFunc(cs, func(a, b *Container) int { return strings.Compare(a.Name, b.Name) })
	return cs, true, nil
}

// catchUp handles the events the engine logged since the newest one handled, up to now, in one
// request that ends at once (the engine answers a past window from its log).
func (inv *inventory) catchUp(ctx context.Context) error {
	inv.mu.Lock()
	since := inv.last + 1
	inv.stats.CaughtUp++
	inv.mu.Unlock()
	until := max(time.Now().UnixNano(), since)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := inv.src.Events(cctx, client.EventsListOptions{Since: stamp(since), Until: stamp(until), Filters: followFilter()})
	for {
		select {
		case m := <-res.Messages:
			inv.handle(m)
		case err := <-res.Err:
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// refreshDirty looks again at each container an event named: an inspect each, or one full list
// when there are many. more reports that events came in meanwhile (another round is needed).
func (inv *inventory) refreshDirty(ctx context.Context) (more bool, err error) {
	inv.mu.Lock()
	taken := make(map[string]uint64, len(inv.dirty))
	gone := map[string]bool{}
	for id, seq := range inv.dirty {
		taken[id] = seq
		if inv.gone[id] == seq {
			gone[id] = true
		}
	}
	inv.mu.Unlock()
	if len(taken) == 0 {
		return false, nil
	}
	if len(taken)-len(gone) > refreshLimit {
		return false, inv.resyncLocked(ctx, fmt.Sprintf("%d containers changed", len(taken)))
	}
	ids := make([]string, 0, len(taken))
	for id := range taken {
		ids = append(ids, id)
	}
	got := make([]*Container, len(ids))
	errs := make([]error, len(ids))
	forEach(ctx, len(ids), func(i int) {
		if gone[ids[i]] {
			return // destroyed: dropped below, like a container the engine no longer knows
		}
		res, err := inv.h.Engine.ContainerInspect(ctx, ids[i], client.ContainerInspectOptions{})
		switch {
		case isNotFound(err):
		case err != nil:
			errs[i] = err
		default:
			inv.mu.Lock()
			known := inv.entries[ids[i]]
			inv.mu.Unlock()
			got[i] = inv.h.fromInspect(res.Container, inv.o, known)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for i, id := range ids {
		if got[i] == nil {
			delete(inv.entries, id)
			delete(inv.deps, id)
		} else {
			inv.entries[id] = got[i]
			inv.putDeps(id, got[i].deps)
		}
		if inv.dirty[id] == taken[id] {
			inv.looked(id)
		}
	}
	inv.stats.Refreshed += len(ids) - len(gone)
	return len(inv.dirty) > 0, nil
}

// looked: container id's mark is dealt with. inv.mu is held.
func (inv *inventory) looked(id string) {
	delete(inv.dirty, id)
	delete(inv.gone, id)
}

// touch marks containers for a look at the next snapshot: the ones a run changed, in case their
// events are late.
func (inv *inventory) touch(ids ...string) {
	if inv == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, id := range ids {
		if seq, pending := inv.dirty[id]; pending && inv.gone[id] == seq {
			continue // its destroy came in already
		}
		inv.mark(id)
	}
}

// depsEntry is a container's dependency facts as the inventory keeps them, with the seq at which
// they were learned: a resync whose list is newer and lacks the container forgets them.
type depsEntry struct {
	f   *depFacts
	seq uint64
}

// putDeps keeps container id's dependency facts while the stream is followed (it tells when
// they may change). inv.mu is held.
func (inv *inventory) putDeps(id string, f *depFacts) {
	if f == nil || !inv.live {
		return
	}
	inv.seq++
	inv.deps[id] = depsEntry{f: f, seq: inv.seq}
}

// learnDeps keeps the dependency facts a plan read off inspects.
func (inv *inventory) learnDeps(cs []*Container) {
	if inv == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, c := range cs {
		inv.putDeps(c.ID, c.deps)
	}
}

// forgetDepsNaming forgets the facts that name a container renamed from oldName to name (a
// legacy link shows the linked container's current name). inv.mu is held.
func (inv *inventory) forgetDepsNaming(oldName, name string) {
	for id, d := range inv.deps {
		if d.f.mentions(oldName) || d.f.mentions(name) {
			delete(inv.deps, id)
		}
	}
}

// replaced marks the containers of a finished transaction for a look at the next snapshot, and
// lets the new container inherit the old one's dependency facts: it was created with the same
// links and modes — unless those join another container's namespace, which the transaction
// may have pointed at that one's replacement.
func (inv *inventory) replaced(oldID, newID string, deps *depFacts) {
	if inv == nil {
		return
	}
	inv.touch(oldID, newID)
	if newID == "" || newID == oldID || deps == nil || deps.joinsOthers() {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.putDeps(newID, deps)
}

// imageGen is the generation of the image inspects kept: putImage stores an inspect only when no
// image event came in since it was read (gen).
func (inv *inventory) imageGen() uint64 {
	if inv == nil {
		return 0
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.imgGen
}

// image is the kept inspect of image id, or nil.
func (inv *inventory) image(id string) *imageInfo {
	if inv == nil {
		return nil
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if !inv.live {
		return nil
	}
	return inv.images[id]
}

// putImage keeps an image inspect read at generation gen, if the inventory is live and no image
// event came in since.
func (inv *inventory) putImage(id string, info *imageInfo, gen uint64) {
	if inv == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.live && inv.imgGen == gen {
		inv.images[id] = info
	}
}

// statsNow returns the counters (tests).
func (inv *inventory) statsNow() inventoryStats {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.stats
}
