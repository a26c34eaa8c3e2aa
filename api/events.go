package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// GET /v1/events: Server-Sent Events for the dashboard. Events is an updater.LiveObserver; each
// open stream subscribes to it. There is no backlog: a client that (re)connects reads the state
// (GET /v1/containers, /v1/runs) once the stream has answered, and the events from then on.
//
// A stream outlives the server's timeouts, so it handles them itself: no read deadline (net/http
// would cancel the request when it passed), and a write deadline renewed before each write, so a
// client that stops reading is dropped after writeTimeout. A heartbeat comment every
// heartbeatEvery keeps proxies from closing an idle stream and finds dead clients. A client too
// slow to take its events is dropped (its EventSource-like reader reconnects and reloads). Streams
// end when serving ends: shutdown and a self-update's handover do not wait for them.

// Event names on the stream.
const (
	EventRunStarted  = "run_started"  // data: a run summary
	EventRunFinished = "run_finished" // data: a run summary
	EventContainer   = "container"    // data: the container's state, as in GET /v1/containers
)

const (
	maxStreams     = 128              // open event streams at once, all clients together
	streamBuffer   = 256              // events queued per stream before it counts as too slow
	heartbeatEvery = 15 * time.Second // a comment line on an idle stream
	reconnectAfter = 2 * time.Second  // the retry: the stream tells clients
)

// RunSummary is a run as the event stream tells of it: no lines, their outcomes counted.
type RunSummary struct {
	ID         string          `json:"id"`
	Trigger    updater.Trigger `json:"trigger"`
	DryRun     bool            `json:"dry_run,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Counts     map[string]int  `json:"counts"` // outcome -> lines
	Error      string          `json:"error,omitempty"`
}

func summarize(r *updater.Report) RunSummary {
	s := RunSummary{ID: r.ID, Trigger: r.Trigger, DryRun: r.DryRun, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Counts: map[string]int{}, Error: r.Error}
	for _, c := range r.Containers {
		s.Counts[string(c.Outcome)]++
	}
	return s
}

// Events fans the updater's live news out to the open event streams. Create it with NewEvents,
// pass it to the updater as an observer and to the server as Options.Events.
type Events struct {
	mu   sync.Mutex
	seq  uint64
	subs map[*stream]struct{}
}

// stream is one subscriber; ch is closed when it was too slow and is dropped.
type stream struct{ ch chan []byte }

var _ updater.LiveObserver = (*Events)(nil)

// NewEvents returns a hub with no subscribers.
func NewEvents() *Events { return &Events{subs: map[*stream]struct{}{}} }

// RunStarted implements updater.LiveObserver.
func (e *Events) RunStarted(r *updater.Report) { e.publish(EventRunStarted, summarize(r)) }

// RunFinished implements updater.Observer.
func (e *Events) RunFinished(r *updater.Report) { e.publish(EventRunFinished, summarize(r)) }

// ContainerChanged implements updater.LiveObserver.
func (e *Events) ContainerChanged(st updater.ContainerStatus) { e.publish(EventContainer, st) }

// publish queues one event on every stream; a stream whose queue is full is dropped.
func (e *Events) publish(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	msg := []byte("id: " + strconv.FormatUint(e.seq, 10) + "\nevent: " + name + "\ndata: ")
	msg = append(append(msg, data...), "\n\n"...)
	for s := range e.subs {
		select {
		case s.ch <- msg:
		default:
			delete(e.subs, s)
			close(s.ch)
		}
	}
}

// subscribe opens a stream; false when maxStreams are open.
func (e *Events) subscribe() (*stream, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) >= maxStreams {
		return nil, false
	}
	s := &stream{ch: make(chan []byte, streamBuffer)}
	e.subs[s] = struct{}{}
	return s, true
}

func (e *Events) unsubscribe(s *stream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s]; ok {
		delete(e.subs, s)
		close(s.ch)
	}
}

// handleEvents is GET /v1/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	sub, ok := s.events.subscribe()
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, ReasonRateLimited, "too many open event streams; retry after 5s")
		return
	}
	defer s.events.unsubscribe(sub)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // see the top of this file
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on as they come
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.timeouts.write))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: " + strconv.Itoa(int(reconnectAfter.Milliseconds())) + "\n: watcher events\n\n")) {
		return
	}
	beat := time.NewTicker(s.timeouts.heartbeat)
	defer beat.Stop()
	for {
		var msg []byte
		select {
		case m, open := <-sub.ch:
			if !open {
				s.log.Debug("http: event stream too slow; dropped", "remote", remoteIP(r))
				return
			}
			msg = m
		case <-beat.C:
			msg = []byte(": heartbeat\n\n")
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		}
		if !write(msg) {
			return
		}
	}
}
