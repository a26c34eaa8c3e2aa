package updater

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// engineEvents is the engine's stream as a fallback: it counts the requests the feed passes on.
type engineEvents struct{ calls int }

func (e *engineEvents) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	e.calls++
	return client.EventsResult{Messages: make(chan events.Message), Err: make(chan error)}
}

// verifyOptions is a subscription as lifecycle's verify makes it.
func verifyOptions(id string, since time.Time) client.EventsListOptions {
	return client.EventsListOptions{
		Since: since.UTC().Format(time.RFC3339Nano),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).Add("container", id).
			Add("event", string(events.ActionDie), string(events.ActionOOM), string(events.ActionHealthStatus), string(events.ActionRestart)),
	}
}

func containerEvent(id string, action events.Action, at time.Time) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id}, TimeNano: at.UnixNano()}
}

func liveInventory(src *engineEvents, from time.Time) *inventory {
	inv := &inventory{src: src, live: true}
	inv.feed.restart(from.UnixNano())
	return inv
}

func (inv *inventory) publishNow(m events.Message) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.feed.publish(m)
}

func receive(t *testing.T, res client.EventsResult) events.Message {
	t.Helper()
	select {
	case m := <-res.Messages:
		return m
	case err := <-res.Err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return events.Message{}
}

func nothingMore(t *testing.T, res client.EventsResult) {
	t.Helper()
	select {
	case m := <-res.Messages:
		t.Fatalf("unexpected event %s %s", m.Actor.ID, m.Action)
	default:
	}
}

// The shared stream replays from Since what it holds, then delivers what comes, of the container
// and events asked for only; it ends its reader when the reader's context does.
func TestFeedReplaysAndDelivers(t *testing.T) {
	src := &engineEvents{}
	t0 := time.Now()
	inv := liveInventory(src, t0)
	inv.publishNow(containerEvent("aaaa", events.ActionDie, t0.Add(time.Millisecond)))     // before since
	inv.publishNow(containerEvent("bbbb", events.ActionDie, t0.Add(3*time.Millisecond)))   // another container
	inv.publishNow(containerEvent("aaaa", events.ActionStart, t0.Add(4*time.Millisecond))) // not asked for
	inv.publishNow(containerEvent("aaaa", "health_status: healthy", t0.Add(5*time.Millisecond)))

	ctx, cancel := context.WithCancel(context.Background())
	res := inv.Events(ctx, verifyOptions("aaaa", t0.Add(2*time.Millisecond)))
	if src.calls != 0 {
		t.Fatalf("the feed passed the subscription to the engine (%d requests)", src.calls)
	}
	if m := receive(t, res); m.Action != "health_status: healthy" {
		t.Fatalf("replayed %s, want the health_status event after since", m.Action)
	}
	nothingMore(t, res)
	inv.publishNow(containerEvent("aaaa", events.ActionOOM, time.Now()))
	if m := receive(t, res); m.Action != events.ActionOOM {
		t.Fatalf("delivered %s, want oom", m.Action)
	}
	cancel()
	select {
	case err := <-res.Err:
		if err == nil {
			t.Fatal("the stream ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with its context")
	}
}

// What the shared stream cannot serve as the engine would goes to the engine.
func TestFeedPassesOnWhatItCannotServe(t *testing.T) {
	t0 := time.Now()
	for name, tc := range map[string]struct {
		live bool
		o    client.EventsListOptions
	}{
		"not live":           {false, verifyOptions("aaaa", t0)},
		"since before it":    {true, verifyOptions("aaaa", t0.Add(-time.Minute))},
		"a window":           {true, func() client.EventsListOptions { o := verifyOptions("aaaa", t0); o.Until = "1"; return o }()},
		"an event not kept":  {true, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("event", "exec_start")}},
		"another filter key": {true, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").Add("event", "die").Add("label", "a=b")}},
		"no type":            {true, client.EventsListOptions{Filters: make(client.Filters).Add("event", "die")}},
	} {
		src := &engineEvents{}
		inv := liveInventory(src, t0)
		inv.live = tc.live
		inv.Events(context.Background(), tc.o)
		if src.calls != 1 {
			t.Errorf("%s: the engine got %d requests, want 1", name, src.calls)
		}
	}
}

// A reader that leaves too much unread, and every reader when the stream ends, is ended with an
// error (verify then polls): never blocked on, never silently starved.
func TestFeedEndsReaders(t *testing.T) {
	t0 := time.Now()
	inv := liveInventory(&engineEvents{}, t0)
	slow := inv.Events(context.Background(), verifyOptions("aaaa", t0))
	other := inv.Events(context.Background(), verifyOptions("bbbb", t0))
	for i := range feedBuffer + 1 {
		inv.publishNow(containerEvent("aaaa", events.ActionDie, t0.Add(time.Duration(i+1))))
	}
	select {
	case err := <-slow.Err:
		if err == nil {
			t.Fatal("nil error")
		}
	default:
		t.Fatal("a reader that fell behind was not ended")
	}
	inv.down(nil)
	select {
	case err := <-other.Err:
		if err == nil {
			t.Fatal("nil error")
		}
	default:
		t.Fatal("a reader was not ended when the stream went down")
	}
	if inv.isLive() {
		t.Fatal("still live")
	}
}

// The events kept for replay are bounded; a Since older than the oldest one kept goes to the
// engine.
func TestFeedKeepsBoundedHistory(t *testing.T) {
	t0 := time.Now()
	src := &engineEvents{}
	inv := liveInventory(src, t0)
	for i := range recentEvents + 10 {
		inv.publishNow(containerEvent("cccc", events.ActionDie, t0.Add(time.Duration(i+1)*time.Microsecond)))
	}
	if n := len(inv.feed.recent); n != recentEvents {
		t.Fatalf("%d events kept, want %d", n, recentEvents)
	}
	inv.Events(context.Background(), verifyOptions("cccc", t0.Add(5*time.Microsecond)))
	if src.calls != 1 {
		t.Fatalf("a since older than what is kept was served from the feed")
	}
}
