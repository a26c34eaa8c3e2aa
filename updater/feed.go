package updater

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
)

// The inventory's event stream, shared: a transaction's verify (lifecycle's Spec.Events) hears of
// its new container's events from the stream the daemon keeps open anyway, instead of opening one
// of its own on the engine for every update. It behaves as the engine's stream does: it replays
// from Since (out of the last recentEvents events), delivers what the stream brings from then on,
// and ends with an error when it cannot (the stream failed, or the reader fell behind), after
// which verify polls. A request it cannot serve that way — a window with an end, a filter or an
// event the inventory's stream does not carry, a Since older than what it still holds, a stream
// that is not live — goes to the engine, as it would without the inventory.

// recentEvents is how many of the stream's last events are kept to replay from a Since.
const recentEvents = 256

// feedBuffer is what one reader may leave unread before it is cut off.
const feedBuffer = 64

// feedSub is one reader of the shared stream.
type feedSub struct {
	match func(events.Message) bool
	msgs  chan events.Message
	errs  chan error
}

// feed is the shared stream's state; inventory.mu guards it.
type feed struct {
	subs   map[*feedSub]struct{}
	recent []events.Message // the stream's last events, oldest first
	// from: events from this instant (TimeNano) on are all in recent or still to come; before
	// it, some may be missing (the stream had not started, or recent dropped them).
	from int64
}

// restart forgets what an earlier stream delivered: the new one delivers from since on.
func (f *feed) restart(since int64) {
	f.recent = f.recent[:0]
	f.from = since
}

// publish hands one event of the live stream to the readers it concerns and keeps it for replay.
func (f *feed) publish(m events.Message) {
	if len(f.recent) == recentEvents {
		f.from = max(f.from, f.recent[0].TimeNano+1)
		f.recent = slices.Delete(f.recent, 0, 1)
	}
	f.recent = append(f.recent, m)
	for s := range f.subs {
		if s.match(m) {
			f.send(s, m)
		}
	}
}

// send delivers m to s, or ends s when it has left feedBuffer events unread.
func (f *feed) send(s *feedSub, m events.Message) {
	select {
	case s.msgs <- m:
	default:
		f.end(s, errors.New("event reader fell behind the shared stream"))
	}
}

// end ends one reader with err.
func (f *feed) end(s *feedSub, err error) {
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	s.errs <- err
}

// endAll ends every reader: the stream is gone.
func (f *feed) endAll(err error) {
	for s := range f.subs {
		f.end(s, err)
	}
}

// subscribe adds a reader of the events match accepts, with what it holds from since on already
// in its buffer; nil when it cannot serve that (the stream is not live, or since is older than
// what it holds). inventory.mu is held.
func (f *feed) subscribe(match func(events.Message) bool, since int64, live bool) *feedSub {
	if !live || since < f.from {
		return nil
	}
	s := &feedSub{match: match, msgs: make(chan events.Message, feedBuffer), errs: make(chan error, 1)}
	if f.subs == nil {
		f.subs = map[*feedSub]struct{}{}
	}
	f.subs[s] = struct{}{}
	for _, m := range f.recent {
		if m.TimeNano >= since && match(m) {
			f.send(s, m)
		}
	}
	return s
}

// Events serves an event subscription from the inventory's stream when it can (see above), else
// from the engine.
func (inv *inventory) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	match, since, ok := feedFilter(o)
	if !ok {
		return inv.src.Events(ctx, o)
	}
	inv.mu.Lock()
	s := inv.feed.subscribe(match, since, inv.live)
	inv.mu.Unlock()
	if s == nil {
		return inv.src.Events(ctx, o)
	}
	context.AfterFunc(ctx, func() {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		inv.feed.end(s, ctx.Err())
	})
	return client.EventsResult{Messages: s.msgs, Err: s.errs}
}

// eventSource is what a transaction on this host hears events from: the inventory (which asks
// the engine itself when it cannot serve a request), or nil — the engine's own — without one.
func (inv *inventory) eventSource() lifecycle.EventSource {
	if inv == nil || inv.src == nil {
		return nil
	}
	return inv
}

// feedFilter turns a subscription into a match on the stream's events and the instant to replay
// from (Unix nanoseconds; 0 = only what comes). ok is false when the stream cannot serve it.
func feedFilter(o client.EventsListOptions) (match func(events.Message) bool, since int64, ok bool) {
	if o.Until != "" {
		return nil, 0, false
	}
	if o.Since != "" {
		t, err := time.Parse(time.RFC3339Nano, o.Since)
		if err != nil {
			return nil, 0, false
		}
		since = t.UnixNano()
	}
	var types, ids, actions []string
	for key, set := range o.Filters {
		vals := make([]string, 0, len(set))
		for v, on := range set {
			if on {
				vals = append(vals, v)
			}
		}
		switch key {
		case "type":
			types = vals
		case "container":
			ids = vals
		case "event":
			actions = vals
		default:
			return nil, 0, false
		}
	}
	for _, t := range types {
		if !slices.Contains(followedTypes, t) {
			return nil, 0, false
		}
	}
	for _, a := range actions {
		if !slices.Contains(followedEvents, a) {
			return nil, 0, false
		}
	}
	if len(types) == 0 || len(actions) == 0 {
		return nil, 0, false // the stream carries only some types and events
	}
	return func(m events.Message) bool {
		return slices.Contains(types, string(m.Type)) && matchesContainer(m, ids) && matchesAction(m.Action, actions)
	}, since, true
}

// matchesContainer: the event is of one of ids (an ID, its prefix, or a name), or ids is empty.
func matchesContainer(m events.Message, ids []string) bool {
	if len(ids) == 0 {
		return true
	}
	if m.Type != events.ContainerEventType {
		return false
	}
	for _, id := range ids {
		if strings.HasPrefix(m.Actor.ID, id) || m.Actor.Attributes["name"] == id {
			return true
		}
	}
	return false
}

// matchesAction: as the engine matches its event filter — by prefix when it names
// health_status (whose actions read "health_status: healthy"), else exactly.
func matchesAction(a events.Action, actions []string) bool {
	fuzzy := slices.Contains(actions, string(events.ActionHealthStatus))
	for _, want := range actions {
		if string(a) == want || (fuzzy && strings.HasPrefix(string(a), want)) {
			return true
		}
	}
	return false
}
