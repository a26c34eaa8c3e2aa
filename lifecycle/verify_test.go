package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// countingDocker is the real engine that counts ContainerInspect calls per container and can
// refuse the event stream (as if it dropped).
type countingDocker struct {
	*client.Client
	noEvents bool
	mu       sync.Mutex
	inspects map[string]int
	images   map[string]int // ImageInspect calls by reference
	events   int            // Events calls
}

func (d *countingDocker) ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	d.mu.Lock()
	d.images[ref]++
	d.mu.Unlock()
	return d.Client.ImageInspect(ctx, ref, o...)
}

func (d *countingDocker) imageInspects(ref string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.images[ref]
}

func (d *countingDocker) eventCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.events
}

func (d *countingDocker) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	d.mu.Lock()
	d.inspects[id]++
	d.mu.Unlock()
	return d.Client.ContainerInspect(ctx, id, o)
}

func (d *countingDocker) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	d.mu.Lock()
	d.events++
	d.mu.Unlock()
	if !d.noEvents {
		return d.Client.Events(ctx, o)
	}
	return failedStream("event stream refused by the test")
}

// failedStream is an event stream that ends at once with why.
func failedStream(why string) client.EventsResult {
	errs := make(chan error, 1)
	errs <- errors.New(why)
	return client.EventsResult{Messages: make(chan events.Message), Err: errs}
}

func (d *countingDocker) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inspects[id]
}

func (f *fixture) counting(noEvents bool) *countingDocker {
	d := &countingDocker{Client: f.Docker, noEvents: noEvents, inspects: map[string]int{}, images: map[string]int{}}
	f.m = New(d, f.store, f.m.o)
	return d
}

// TestVerifyInspectsRarely: a healthy new container is verified on the event stream, with one
// inspect a second as the fallback — not one every 100 ms.
func TestVerifyInspectsRarely(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.counting(false)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})

	window := 3 * time.Second
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: window, Rollback: true})
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	f.checkServing(name)
	// The rename inspects the new container once, verify at its start, once a second and at
	// the end of the window; a few more if events (there should be none) woke it.
	if n, most := d.count(res.NewID), int(window/verifyPoll)+4; n > most {
		t.Errorf("the new container was inspected %d times during a %v verify, want at most %d", n, window, most)
	} else {
		t.Logf("the new container was inspected %d times", n)
	}
}

// TestVerifyWakesOnDie: a new container that dies early is judged on its die event, not at the
// end of the window nor on the fallback poll (made slower than the test here).
func TestVerifyWakesOnDie(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.counting(false)
	f.m.poll = time.Hour
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=700ms"}})

	began := time.Now()
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: 90 * time.Second, Rollback: true})
	took := time.Since(began)
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.ContainerExited || res.Err.Message != "exit code 3 (application error)" {
		t.Fatalf("Replace = %s, %v; want rolled_back ContainerExited exit code 3", res.Outcome, res.Err)
	}
	if took > 45*time.Second {
		t.Fatalf("Replace took %v: the die event did not end the 90s verify", took)
	}
	if f.checkServing(name).ID != oldID {
		t.Fatal("old container not serving")
	}
	t.Logf("rolled back in %v", took)
}

// TestVerifyWithoutEvents: with no event stream the fallback poll still classifies an early
// exit and passes a healthy container.
func TestVerifyWithoutEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.counting(true)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)

	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=300ms"}})
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: 30 * time.Second, Rollback: true})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.ContainerExited || res.Err.Message != "exit code 3 (application error)" {
		t.Fatalf("exiting v2: %s, %v; want rolled_back ContainerExited exit code 3", res.Outcome, res.Err)
	}
	if f.checkServing(name).ID != oldID {
		t.Fatal("old container not serving")
	}

	pull = f.release(ref, testenv.ImageSpec{Version: "v3"})
	res = f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: 2 * time.Second, Rollback: true})
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("healthy v3: %s, %v; want updated", res.Outcome, res.Err)
	}
	f.checkServing(name)
}

// recordingEvents is an event source of the caller's (Spec.Events): the engine's stream, counted,
// or a stream that fails at once.
type recordingEvents struct {
	d     *client.Client
	fail  bool
	mu    sync.Mutex
	calls int
}

func (s *recordingEvents) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if s.fail {
		return failedStream("the caller's stream is down")
	}
	return s.d.Events(ctx, o)
}

// TestCallerImageAndEvents: the old image's details and the event stream a caller passes save the
// transaction an image inspect and an event subscription of its own; details of another image
// are not used, and a caller's stream that fails leaves verify to its fallback poll.
func TestCallerImageAndEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.counting(false)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	ins, err := f.Docker.ContainerInspect(ctx(t), oldID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := f.Docker.ImageInspect(ctx(t), ins.Container.Image)
	if err != nil {
		t.Fatal(err)
	}
	given := DetailsOf(img.InspectResponse)

	src := &recordingEvents{d: f.Docker}
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Verify: 2 * time.Second, Rollback: true, OldImage: given, Events: src})
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	f.checkServing(name)
	if n := d.imageInspects(given.ID); n != 0 {
		t.Errorf("the old image was inspected %d times though its details were given", n)
	}
	src.mu.Lock()
	calls := src.calls
	src.mu.Unlock()
	if d.eventCalls() != 0 || calls == 0 {
		t.Errorf("verify subscribed %d times to the engine and %d times to the caller's stream; want 0 and at least 1", d.eventCalls(), calls)
	}

	// Details of another image are not taken; a failing stream leaves verify to its poll, which
	// still sees v3 exit.
	newID := res.NewID
	pull = f.release(ref, testenv.ImageSpec{Version: "v3", Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=300ms"}})
	res = f.m.Replace(ctx(t), Spec{ContainerID: newID, Image: ref, PullRef: pull, Verify: 20 * time.Second, Rollback: true,
		OldImage: given, Events: &recordingEvents{d: f.Docker, fail: true}})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.ContainerExited {
		t.Fatalf("exiting v3: %s, %v; want rolled_back ContainerExited", res.Outcome, res.Err)
	}
	if f.checkServing(name).ID != newID {
		t.Fatal("v2 not serving after the rollback")
	}
	cur, _ := f.Docker.ContainerInspect(ctx(t), newID, client.ContainerInspectOptions{})
	if n := d.imageInspects(cur.Container.Image); n == 0 {
		t.Error("v2's image was not inspected: the details given were of v1's")
	}
}
