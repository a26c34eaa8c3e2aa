package updater_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/updater"
)

// followed is this test's view of the engine (ownedOnly) with its events narrowed to this test's
// containers too, counting the calls a run makes, and able to lose events (those of containers
// whose name drop accepts) or to fail the stream (broken): the faults a real stream has.
type followed struct {
	ownedOnly
	lists, inspects, images, streams atomic.Int32
	verifyStreams                    atomic.Int32 // Events calls for one container (verify's)

	mu       sync.Mutex
	inspectN map[string]int // container inspects by ID
	drop     func(name string) bool
	broken   error
}

func (f *followed) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.lists.Add(1)
	return f.ownedOnly.ContainerList(ctx, o)
}

func (f *followed) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.inspects.Add(1)
	f.mu.Lock()
	if f.inspectN == nil {
		f.inspectN = map[string]int{}
	}
	f.inspectN[id]++
	f.mu.Unlock()
	return f.ownedOnly.ContainerInspect(ctx, id, o)
}

func (f *followed) ImageInspect(ctx context.Context, id string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	f.images.Add(1)
	return f.ownedOnly.ImageInspect(ctx, id, o...)
}

func (f *followed) set(drop func(string) bool, broken error) {
	f.mu.Lock()
	f.drop, f.broken = drop, broken
	f.mu.Unlock()
}

func (f *followed) faults() (func(string) bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drop, f.broken
}

// Events passes this test's container events (and every image event) on, minus the lost ones;
// while broken, a stream fails at once.
func (f *followed) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	f.streams.Add(1)
	if len(o.Filters["container"]) > 0 {
		f.verifyStreams.Add(1)
	}
	msgs, errs := make(chan events.Message), make(chan error, 1)
	if _, broken := f.faults(); broken != nil {
		errs <- broken
		return client.EventsResult{Messages: msgs, Err: errs}
	}
	in := f.Client.Events(ctx, o)
	go func() {
		for {
			select {
			case m := <-in.Messages:
				drop, broken := f.faults()
				if broken != nil {
					errs <- broken
					return
				}
				if !f.passes(ctx, m, drop) {
					continue
				}
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			case err := <-in.Err:
				errs <- err
				return
			}
		}
	}()
	return client.EventsResult{Messages: msgs, Err: errs}
}

// passes: m is of this test's containers and not one drop loses. A network event names its
// container by ID only: the engine is asked whose it is.
func (f *followed) passes(ctx context.Context, m events.Message, drop func(string) bool) bool {
	attrs := m.Actor.Attributes
	switch m.Type {
	case events.ContainerEventType:
	case events.NetworkEventType:
		res, err := f.Client.ContainerInspect(ctx, attrs["container"], client.ContainerInspectOptions{})
		if err != nil || res.Container.Config == nil {
			return false // gone already: its container events tell the rest
		}
		attrs = map[string]string{testenv.OwnerLabel: res.Container.Config.Labels[testenv.OwnerLabel], "name": strings.TrimPrefix(res.Container.Name, "/")}
	default:
		return true
	}
	return attrs[testenv.OwnerLabel] == f.owner && (drop == nil || !drop(attrs["name"]))
}

func (f *followed) reset() {
	f.lists.Store(0)
	f.inspects.Store(0)
	f.images.Store(0)
	f.streams.Store(0)
	f.verifyStreams.Store(0)
	f.mu.Lock()
	f.inspectN = nil
	f.mu.Unlock()
}

func (f *followed) inspectsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inspectN[id]
}

// newFollowedRig is a rig whose updater follows the engine's events (as the daemon does) through
// a followed engine, with the inventory resynced every resync.
func newFollowedRig(t *testing.T, resync time.Duration) (*rig, *followed) {
	r := newRig(t, nil)
	eng := &followed{ownedOnly: ownedOnly{r.Docker, r.Owner}}
	life := lifecycle.New(eng, r.store, lifecycle.Options{StopTimeout: 5 * time.Second, Verify: time.Second, Logger: quietLogger(t)})
	r.upd = updater.New(eng, registry.New(registry.Options{}), life, r.store, updater.Options{
		Selection: updater.Selection{LabelEnable: true}, Defaults: updater.Defaults{Mode: updater.ModeUpdate},
		Cleanup: true, Parallel: 4, Logger: quietLogger(t), InventoryResync: resync})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.upd.FollowEvents(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, eng
}

// await waits (bounded) until cond holds: the inventory works in the background.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func live(r *rig) func() bool {
	return func() bool { return updater.InventoryOf(r.upd, "").Live }
}

// lines returns each line's outcome by container name.
func outcomes(rep *updater.Report) map[string]updater.Outcome {
	out := map[string]updater.Outcome{}
	for _, l := range rep.Containers {
		out[l.Name] = l.Outcome
	}
	return out
}

// In the daemon, a run with nothing changed lists no container and inspects no image: the
// inventory follows the engine's events. What a client does just before a run (create, rename,
// stop, remove) is in that run all the same, and an update's new container in the next.
func TestInventoryFollowsTheEngine(t *testing.T) {
	r, eng := newFollowedRig(t, time.Hour)
	ref := r.pushed("app")
	aID := r.start("a", ref, enabled)
	await(t, "live", live(r))

	rep := r.run(updater.Request{Trigger: "test"})
	if got := outcomes(rep); len(got) != 1 || got[r.Name("a")] != updater.OutcomeUpToDate {
		t.Fatalf("first run: %v (%s), want a up to date", got, rep.Error)
	}
	eng.reset()
	rep = r.run(updater.Request{Trigger: "test"})
	if got := outcomes(rep); len(got) != 1 || got[r.Name("a")] != updater.OutcomeUpToDate {
		t.Fatalf("warm run: %v, want a up to date", got)
	}
	if l, i, img, s := eng.lists.Load(), eng.inspects.Load(), eng.images.Load(), eng.streams.Load(); l != 0 || i != 0 || img != 0 || s != 1 {
		t.Errorf("a warm run with nothing changed made %d lists, %d container inspects, %d image inspects, %d event requests; want 0, 0, 0 and 1 (the catch-up)", l, i, img, s)
	}

	// Changes made just before a run, without waiting for the stream.
	bID := r.start("b", ref, enabled)
	ctx := context.Background()
	if _, err := r.Docker.ContainerRename(ctx, aID, client.ContainerRenameOptions{NewName: r.Name("a2")}); err != nil {
		t.Fatal(err)
	}
	eng.reset()
	rep = r.run(updater.Request{Trigger: "test"})
	if got := outcomes(rep); len(got) != 2 || got[r.Name("a2")] != updater.OutcomeUpToDate || got[r.Name("b")] != updater.OutcomeUpToDate {
		t.Fatalf("after create and rename: %v, want a2 and b up to date", got)
	}
	if l := eng.lists.Load(); l != 0 {
		t.Errorf("a run after two changes listed %d times; want 0 (an inspect of each changed container)", l)
	}
	timeout := 1
	if _, err := r.Docker.ContainerStop(ctx, bID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(r.run(updater.Request{Trigger: "test"})); len(got) != 1 || got[r.Name("a2")] != updater.OutcomeUpToDate {
		t.Fatalf("after b stopped: %v, want only a2", got)
	}
	if _, err := r.Docker.ContainerRemove(ctx, bID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.upd.Containers(ctx); err != nil {
		t.Fatal(err)
	}

	// An update: the next run finds the new container, on the new image, up to date.
	r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	rep = r.run(updater.Request{Trigger: "test"})
	a := line(t, rep, r.Name("a2"))
	if a.Outcome != updater.OutcomeUpdated || a.NewID == "" {
		t.Fatalf("update: %+v (%+v), want updated", a, a.Failure)
	}
	rep = r.run(updater.Request{Trigger: "test"})
	if a2 := line(t, rep, r.Name("a2")); a2.Outcome != updater.OutcomeUpToDate || a2.ID != a.NewID {
		t.Fatalf("after the update: %+v, want the new container %s up to date", a2, a.NewID)
	}
	if st := updater.InventoryOf(r.upd, ""); st.Resyncs != 1 || st.Drifted != 0 {
		t.Errorf("inventory %+v; want the one resync at start and no drift", st)
	}
}

// Lost events (a created container's, a removed one's) leave the inventory wrong until the
// periodic resync, which corrects it and counts the drift.
func TestInventoryResyncCatchesLostEvents(t *testing.T) {
	r, eng := newFollowedRig(t, time.Hour)
	ref := r.pushed("app")
	goneID := r.start("gone", ref, enabled)
	await(t, "live", live(r))
	r.run(updater.Request{Trigger: "test"}) // the inventory has "gone"

	// The stream loses every event of "new" and "gone" from here on.
	eng.set(func(name string) bool { return name == r.Name("new") || name == r.Name("gone") }, nil)
	r.start("new", ref, enabled)
	if _, err := r.Docker.ContainerRemove(context.Background(), goneID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	got := outcomes(r.run(updater.Request{Trigger: "test", DryRun: true}))
	if _, ok := got[r.Name("new")]; ok || got[r.Name("gone")] == "" {
		t.Fatalf("before the resync the run saw %v: the events were not lost (want gone, not new)", got)
	}
	if err := updater.ResyncNow(r.upd, ""); err != nil {
		t.Fatal(err)
	}
	got = outcomes(r.run(updater.Request{Trigger: "test", DryRun: true}))
	if _, ok := got[r.Name("gone")]; ok || got[r.Name("new")] != updater.OutcomeUpToDate || len(got) != 1 {
		t.Errorf("after the resync: %v, want new up to date and gone gone", got)
	}
	if st := updater.InventoryOf(r.upd, ""); st.Drifted != 2 {
		t.Errorf("inventory %+v: the resync counted %d drifted containers, want 2", st, st.Drifted)
	}
}

// The resync runs by itself every Options.InventoryResync.
func TestInventoryResyncsPeriodically(t *testing.T) {
	r, _ := newFollowedRig(t, 100*time.Millisecond)
	await(t, "resynced three times", func() bool { return updater.InventoryOf(r.upd, "").Resyncs >= 3 })
}

// A stream that fails makes runs list (nothing is missed meanwhile); once it is back, a resync
// makes the inventory live again.
func TestInventoryResyncsAfterStreamError(t *testing.T) {
	r, eng := newFollowedRig(t, time.Hour)
	ref := r.pushed("app")
	r.start("a", ref, enabled)
	await(t, "live", live(r))

	eng.set(nil, errors.New("injected: stream cut"))
	// End the stream in flight: the inventory sees its error.
	if _, err := r.Docker.ContainerRename(context.Background(), r.Name("a"), client.ContainerRenameOptions{NewName: r.Name("a1")}); err != nil {
		t.Fatal(err)
	}
	await(t, "not live", func() bool { return !updater.InventoryOf(r.upd, "").Live })
	r.start("b", ref, enabled)
	eng.reset()
	got := outcomes(r.run(updater.Request{Trigger: "test", DryRun: true}))
	if len(got) != 2 || got[r.Name("a1")] != updater.OutcomeUpToDate || got[r.Name("b")] != updater.OutcomeUpToDate {
		t.Errorf("while the stream is down: %v, want a1 and b", got)
	}
	if eng.lists.Load() == 0 {
		t.Errorf("a run while the stream is down did not list the containers")
	}

	eng.set(nil, nil)
	await(t, "live again", live(r))
	if st := updater.InventoryOf(r.upd, ""); st.Resyncs < 2 {
		t.Errorf("inventory %+v: want a resync after the stream came back", st)
	}
	eng.reset()
	got = outcomes(r.run(updater.Request{Trigger: "test", DryRun: true}))
	if len(got) != 2 || eng.lists.Load() != 0 {
		t.Errorf("after the resync: %v with %d lists, want a1 and b with none", got, eng.lists.Load())
	}
}

// In the daemon an update reuses what the run knows already: the check's image inspect (the
// transaction does not inspect the old image again), the inventory's open event stream (verify
// subscribes to no stream of its own) and, once a container has been inspected for the
// dependency graph, what that showed: a plan does not inspect it again, nor its replacement,
// which inherits it.
func TestDaemonUpdateReusesWhatItKnows(t *testing.T) {
	r, eng := newFollowedRig(t, time.Hour)
	ref := r.pushed("app")
	r.start("a", ref, enabled)
	r.start("b", ref, enabled)
	await(t, "live", live(r))

	ids := map[string]string{}
	for round, version := range []string{"v2", "v3"} {
		r.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: version})
		eng.reset()
		rep := r.run(updater.Request{Trigger: "test"})
		for _, n := range []string{"a", "b"} {
			l := line(t, rep, r.Name(n))
			if l.Outcome != updater.OutcomeUpdated {
				t.Fatalf("round %d: %s %s (%+v), want updated", round, n, l.Outcome, l.Failure)
			}
			if got := eng.inspectsOf(ids[n]); round == 1 && got != 1 {
				t.Errorf("round %d: %s (%s) was inspected %d times, want once (the snapshot; the plan knows its links from its predecessor)", round, n, short(ids[n]), got)
			}
			ids[n] = l.NewID
		}
		if got := eng.verifyStreams.Load(); got != 0 {
			t.Errorf("round %d: verify opened %d event streams of its own, want 0 (the inventory's)", round, got)
		}
		// One image inspect by the check, one of the new image by each transaction; none of the
		// old image by the transactions.
		if got := eng.images.Load(); got > 3 {
			t.Errorf("round %d: %d image inspects, want at most 3", round, got)
		}
		if st := updater.InventoryOf(r.upd, ""); st.Deps < 2 {
			t.Errorf("round %d: the inventory keeps the dependency facts of %d containers, want those of a and b", round, st.Deps)
		}
		// The next run looks at the new containers, not at the old ones: their destroy said all.
		eng.reset()
		r.run(updater.Request{Trigger: "test"})
		for _, n := range []string{"a", "b"} {
			if old := line(t, rep, r.Name(n)).ID; eng.inspectsOf(old) != 0 {
				t.Errorf("round %d: the next run inspected %s's removed container %s", round, n, short(old))
			}
		}
		// A full list, as a resync after many changes makes, shows no links: the new containers'
		// come from their predecessors.
		if err := updater.ResyncNow(r.upd, ""); err != nil {
			t.Fatal(err)
		}
	}
}
