package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// sseEvent is one event read off a stream.
type sseEvent struct{ id, name, data string }

// sseReader reads events (and counts heartbeat comments) from a stream.
type sseReader struct {
	r          *bufio.Reader
	heartbeats int
	retry      string
}

// next reads the next event; comments and the retry field are noted on the way.
func (s *sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (event so far %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev
			}
		case line == ": heartbeat":
			s.heartbeats++
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "retry: "):
			s.retry = strings.TrimPrefix(line, "retry: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line on the stream: %q", line)
		}
	}
}

// streams counts the server's open event streams.
func streams(s *Server) int {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	return len(s.events.subs)
}

// openStream opens GET /v1/events on base; the body closes with the test.
func openStream(t *testing.T, base, token string) (*http.Response, *sseReader) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, &sseReader{r: bufio.NewReader(resp.Body)}
}

// TestEventStream: run started, container changed and run finished arrive in order with rising
// ids, as JSON, on a stream that outlives the server's read and write timeouts (heartbeats keep
// coming too), and a second stream gets the same events.
func TestEventStream(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken})
	s.timeouts.read, s.timeouts.write, s.timeouts.heartbeat = 150*time.Millisecond, 150*time.Millisecond, 50*time.Millisecond
	base, _ := startServer(t, s)
	resp, sr := openStream(t, base, testToken)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /v1/events = %d %v", resp.StatusCode, resp.Header)
	}
	_, other := openStream(t, base, testToken)
	waitFor(t, "two subscribers", func() bool { return streams(s) == 2 })

	time.Sleep(400 * time.Millisecond) // past the read and write timeouts
	start := time.Now().UTC()
	s.events.RunStarted(&updater.Report{ID: "run-1", Trigger: TriggerHTTP, StartedAt: start})
	s.events.ContainerChanged(updater.ContainerStatus{Name: "web", State: updater.StateUpdating})
	s.events.RunFinished(&updater.Report{ID: "run-1", Trigger: TriggerHTTP, StartedAt: start, FinishedAt: start.Add(time.Second),
		Containers: []updater.ContainerReport{{Name: "web", Outcome: updater.OutcomeUpdated}, {Name: "db", Outcome: updater.OutcomeUpdated}}})

	for _, r := range []*sseReader{sr, other} {
		started, changed, finished := r.next(t), r.next(t), r.next(t)
		if started.name != EventRunStarted || changed.name != EventContainer || finished.name != EventRunFinished {
			t.Fatalf("events %s, %s, %s; want run_started, container, run_finished", started.name, changed.name, finished.name)
		}
		if !(started.id < changed.id && changed.id < finished.id) {
			t.Errorf("ids %s, %s, %s do not rise", started.id, changed.id, finished.id)
		}
		var st updater.ContainerStatus
		var sum RunSummary
		if json.Unmarshal([]byte(changed.data), &st) != nil || st.Name != "web" || st.State != updater.StateUpdating {
			t.Errorf("container event data %s", changed.data)
		}
		if json.Unmarshal([]byte(finished.data), &sum) != nil || sum.ID != "run-1" || sum.Counts["updated"] != 2 || sum.FinishedAt.IsZero() {
			t.Errorf("run_finished data %s", finished.data)
		}
	}
	if sr.retry != "2000" || sr.heartbeats == 0 {
		t.Errorf("retry %q, %d heartbeats; want retry 2000 and heartbeats on an idle stream", sr.retry, sr.heartbeats)
	}
}

// TestEventStreamAccess: the stream takes the read endpoints' rule: the token, or none with
// public_read; a refusal is JSON; unknown parameters are refused; HEAD answers at once.
func TestEventStreamAccess(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Token: testToken})
	res := serve(t, s.Handler(), "GET", "/v1/events", "", nil)
	if res.code != 401 || res.err.Reason != ReasonUnauthorized {
		t.Errorf("GET /v1/events without the token = %d %s", res.code, res.body)
	}
	res = serve(t, s.Handler(), "GET", "/v1/events?since=1", "Bearer "+testToken, nil)
	if res.code != 400 || res.err.Reason != ReasonBadRequest {
		t.Errorf("GET /v1/events?since=1 = %d %s", res.code, res.body)
	}
	res = serve(t, s.Handler(), "HEAD", "/v1/events", "Bearer "+testToken, nil)
	if res.code != 200 || res.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /v1/events = %d %v", res.code, res.header)
	}

	pub, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", PublicRead: true})
	base, _ := startServer(t, pub)
	resp, sr := openStream(t, base, "")
	if resp.StatusCode != 200 {
		t.Fatalf("public GET /v1/events = %d", resp.StatusCode)
	}
	waitFor(t, "the subscriber", func() bool { return streams(pub) == 1 })
	pub.events.ContainerChanged(updater.ContainerStatus{Name: "web", State: updater.StateUpToDate})
	if ev := sr.next(t); ev.name != EventContainer {
		t.Errorf("public stream event %+v", ev)
	}
}

// TestEventStreamEndsOnShutdown: serving ends (SIGTERM, or a self-update's handover, which shuts
// the API down the same way) and open streams end with it; shutdown does not wait for them.
func TestEventStreamEndsOnShutdown(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken})
	s.timeouts.shutdown = time.Minute // a stream that held shutdown up would show as a slow stop
	base, stop := startServer(t, s)
	_, sr := openStream(t, base, testToken)
	waitFor(t, "the subscriber", func() bool { return streams(s) == 1 })
	start := time.Now()
	stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with an open event stream", d)
	}
	if _, err := io.ReadAll(sr.r); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
	waitFor(t, "no subscriber left", func() bool { return streams(s) == 0 })
}

// TestEventsSlowSubscriber: a subscriber that takes no events is dropped once its queue is full;
// the others go on; a hub with maxStreams subscribers refuses more (429).
func TestEventsSlowSubscriber(t *testing.T) {
	e := NewEvents()
	slow, _ := e.subscribe()
	for i := 0; i <= streamBuffer; i++ {
		e.ContainerChanged(updater.ContainerStatus{Name: "web"})
	}
	n := 0
	for range slow.ch {
		n++
	}
	if n != streamBuffer {
		t.Errorf("the slow subscriber got %d events before it was dropped, want %d", n, streamBuffer)
	}
	e.unsubscribe(slow) // after the drop: no second close

	for range maxStreams {
		if _, ok := e.subscribe(); !ok {
			t.Fatal("refused a subscriber below maxStreams")
		}
	}
	s, _ := newTestServer(newFake(), Options{Token: testToken, Events: e})
	res := serve(t, s.Handler(), "GET", "/v1/events", "Bearer "+testToken, nil)
	if res.code != 429 || res.err.Reason != ReasonRateLimited || res.header.Get("Retry-After") == "" {
		t.Errorf("GET /v1/events with %d streams open = %d %s", maxStreams, res.code, res.body)
	}
}

// TestEventStreamClientGone: a client that hangs up frees its subscription.
func TestEventStreamClientGone(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken})
	base, _ := startServer(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "the subscriber", func() bool { return streams(s) == 1 })
	cancel()
	waitFor(t, "the subscription to end", func() bool { return streams(s) == 0 })
}
