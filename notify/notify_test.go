package notify

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"

	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/watcher-dev/watcher/updater"
)

// receiver is a local webhook endpoint that records what it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int           // answer; 0 = 200
	hang   chan struct{} // when set, requests wait for it to close
	seen   chan struct{} // a value per request that arrived
}

type received struct {
	path, contentType string
	body              string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{seen: make(chan struct{}, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{path: r.URL.RequestURI(), contentType: r.Header.Get("Content-Type"), body: string(b)})
		status, hang := rc.status, rc.hang
		rc.mu.Unlock()
		rc.seen <- struct{}{}
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
		if status != 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.Close) // after the hang channel is closed (cleanups run last-in first-out)
	return rc
}

func (rc *receiver) messages() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// results collects OnResult calls.
type results struct {
	mu   sync.Mutex
	errs []error
	ch   chan error
}

func newResults() *results { return &results{ch: make(chan error, 100)} }

func (r *results) add(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.ch <- err
}

func (r *results) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no OnResult call")
		return nil
	}
}

func testLogger() (*slog.Logger, *testenv.SyncBuffer) {
	b := &testenv.SyncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// changedReport updated one container, rolled one back and left one alone.
func changedReport() *updater.Report {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return &updater.Report{
		ID: "run-7", Trigger: updater.TriggerSchedule, StartedAt: t0, FinishedAt: t0.Add(95 * time.Second),
		Containers: []updater.ContainerReport{
			{Name: "web", Image: "nginx:1.27", Outcome: updater.OutcomeUpdated,
				OldDigest: "sha256:" + strings.Repeat("1", 64), NewDigest: "sha256:" + strings.Repeat("2", 64), Downtime: 1200 * time.Millisecond},
			{Name: "api", Image: "ghcr.io/acme/api:2", Outcome: updater.OutcomeRolledBack,
				Failure: &updater.Failure{Stage: failure.StageVerify, Reason: failure.ContainerExited, Message: "exit code 1 (application error)"}},
			{Name: "db", Image: "postgres:17", Outcome: updater.OutcomeUpToDate},
		},
	}
}

// TestWebhook sends a run report through shoutrrr's generic service to a local receiver:
// one message for the run, carrying its content.
func TestWebhook(t *testing.T) {
	rc := newReceiver(t)
	res := newResults()
	// generic+http:// is shoutrrr's shortcut for a plain-HTTP webhook (generic+https:// for TLS).
	n, err := New(Options{URLs: []string{"generic+" + rc.URL + "/hooks/watcher"}, OnResult: res.add, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	n.RunFinished(changedReport())
	if err := res.next(t); err != nil {
		t.Fatalf("OnResult = %v, want nil", err)
	}
	msgs := rc.messages()
	if len(msgs) != 1 {
		t.Fatalf("receiver got %d requests, want 1 for the run", len(msgs))
	}
	m := msgs[0]
	if m.path != "/hooks/watcher" {
		t.Errorf("path = %q, want /hooks/watcher", m.path)
	}
	for _, want := range []string{
		"1 rolled back, 1 updated\n", // up-to-date lines are not sent (notify.on's default)
		"- web (nginx:1.27): updated sha256:111111111111 -> sha256:222222222222, 1.2s down",
		"- api (ghcr.io/acme/api:2): rolled back: verify ContainerExited: exit code 1 (application error)",
		"run run-7 (schedule), 1m35s",
	} {
		if !strings.Contains(m.body, want) {
			t.Errorf("message lacks %q:\n%s", want, m.body)
		}
	}
	if strings.Contains(m.body, "- db") {
		t.Errorf("up-to-date containers get a line:\n%s", m.body)
	}
}

// TestWebhookJSON uses generic:// with shoutrrr's JSON template: the title comes along.
func TestWebhookJSON(t *testing.T) {
	rc := newReceiver(t)
	res := newResults()
	host := strings.TrimPrefix(rc.URL, "http://")
	n, err := New(Options{URLs: []string{"generic://" + host + "/hook?template=json&disabletls=yes"}, OnResult: res.add})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rep := changedReport()
	rep.Containers[1] = updater.ContainerReport{Name: "api", Image: "x:1", Outcome: updater.OutcomeFailed,
		Failure: &updater.Failure{Stage: failure.StageRollback, Reason: failure.RollbackFailed, Message: "could not rename"}}
	n.RunFinished(rep)
	if err := res.next(t); err != nil {
		t.Fatalf("OnResult = %v", err)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(rc.messages()[0].body), &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if body["title"] != "watcher: FAILED — 1 failed, 1 updated" {
		t.Errorf("title = %q", body["title"])
	}
	if !strings.Contains(body["message"], "rollback RollbackFailed: could not rename") {
		t.Errorf("message = %q", body["message"])
	}
}

// TestOnlyChanges: a run that changed nothing sends nothing; a custom template is used.
func TestOnlyChanges(t *testing.T) {
	rc := newReceiver(t)
	res := newResults()
	n, err := New(Options{
		URLs:     []string{"generic+" + rc.URL + "/a", "generic+" + rc.URL + "/b"},
		Template: `{{.ID}}: {{.Count "updated"}} updated of {{len .Containers}}{{if .Failed}}, failures{{end}}`,
		OnResult: res.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	quiet := &updater.Report{ID: "run-1", Containers: []updater.ContainerReport{{Name: "db", Outcome: updater.OutcomeUpToDate}}}
	n.RunFinished(quiet)
	n.RunFinished(nil)
	n.RunFinished(changedReport())
	n.Close()
	msgs := rc.messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d requests, want 2 (one run, two URLs)", len(msgs))
	}
	for _, m := range msgs {
		if m.body != "run-7: 1 updated of 2, failures" { // the up-to-date line is not sent
			t.Errorf("%s got %q", m.path, m.body)
		}
	}
	for range 2 {
		if err := res.next(t); err != nil {
			t.Errorf("OnResult = %v", err)
		}
	}
}

// TestHangingReceiver: a receiver that never answers delays neither the run nor Close beyond
// the timeout, and its failure is reported.
func TestHangingReceiver(t *testing.T) {
	rc := newReceiver(t)
	rc.hang = make(chan struct{})
	t.Cleanup(func() { close(rc.hang) })
	res := newResults()
	log, logs := testLogger()
	const secret = "SECRETPATHTOKEN42"
	n, err := New(Options{URLs: []string{"generic+" + rc.URL + "/hooks/" + secret}, OnResult: res.add, Logger: log, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // never waits for the receiver: TestQueueLimits
		n.RunFinished(changedReport())
	}
	err = res.next(t)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("OnResult = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "notify.urls[0] (generic+http://…)") {
		t.Errorf("error %q does not name the URL by index and scheme", err)
	}
	start := time.Now()
	n.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a hanging receiver", d)
	}
	if l := logs.String(); strings.Contains(l, secret) || !strings.Contains(l, "no answer in time") {
		t.Errorf("log should report the timeout without the URL's secret:\n%s", l)
	}
}

// TestReceiverFails: a 500 from the receiver is a failure with the URL scrubbed from it.
func TestReceiverFails(t *testing.T) {
	rc := newReceiver(t)
	rc.status = http.StatusInternalServerError
	res := newResults()
	log, logs := testLogger()
	const secret = "hunter2hunter2"
	n, err := New(Options{URLs: []string{"generic+http://user:" + secret + "@" + strings.TrimPrefix(rc.URL, "http://") + "/x?token=" + secret}, OnResult: res.add, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n.Startup("v1.2.3")
	err = res.next(t)
	if !errors.Is(err, ErrSendFailed) || !strings.Contains(err.Error(), "500") {
		t.Errorf("OnResult = %v, want ErrSendFailed naming the 500", err)
	}
	n.Close()
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("secret leaked: %v\n%s", err, logs)
	}
	if m := rc.messages(); len(m) != 1 || !strings.HasPrefix(m[0].body, "watcher v1.2.3 started on ") {
		t.Errorf("startup message = %+v", m)
	}
}

// TestUnreachable: a refused connection is a failure whose text keeps the cause but not the URL.
func TestUnreachable(t *testing.T) {
	rc := newReceiver(t)
	addr := strings.TrimPrefix(rc.URL, "http://")
	rc.Close()
	res := newResults()
	n, err := New(Options{URLs: []string{"generic+http://" + addr + "/hook/TOPSECRETPATH"}, OnResult: res.add})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.RunFinished(changedReport())
	err = res.next(t)
	if !errors.Is(err, ErrSendFailed) || strings.Contains(err.Error(), "TOPSECRETPATH") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("OnResult = %v, want a scrubbed ErrSendFailed saying connection refused", err)
	}
}

// blockingSender never returns until released: the queue and hanging limits must hold.
type blockingSender struct {
	release chan struct{}
	calls   chan string
}

func (b *blockingSender) Send(msg string, _ *types.Params) []error {
	b.calls <- msg
	<-b.release
	return []error{nil}
}

func TestQueueLimits(t *testing.T) {
	bs := &blockingSender{release: make(chan struct{}), calls: make(chan string, 100)}
	defer close(bs.release)
	res := newResults()
	d := &dest{name: "notify.urls[0] (fake://…)", s: bs, hanging: make(chan struct{}, maxHanging)}
	n, err := newNotifier(Options{OnResult: res.add}, []*dest{d}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The sender blocks until the test ends: a RunFinished that waited for it would never return.
	// The bound below only tells such a hang from a slow machine; no speed is asserted.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range queueSize + maxHanging + 10 {
			n.RunFinished(changedReport())
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("RunFinished blocks while the sender hangs")
	}
	var timeouts, hanging, full int
	for range queueSize + maxHanging + 10 {
		switch err := res.next(t); {
		case errors.Is(err, ErrTimeout):
			timeouts++
		case errors.Is(err, ErrHanging):
			hanging++
		case errors.Is(err, ErrQueueFull):
			full++
		default:
			t.Errorf("OnResult = %v", err)
		}
	}
	if timeouts != maxHanging || full == 0 || hanging == 0 {
		t.Errorf("timeouts %d (want %d), hanging-dropped %d, queue-full %d (want both > 0)", timeouts, maxHanging, hanging, full)
	}
	if got := len(bs.calls); got != maxHanging {
		t.Errorf("sender called %d times, want %d (then it is left alone)", got, maxHanging)
	}
	n.Close()
	n.Close()
	n.RunFinished(changedReport()) // after Close: dropped, no panic
}

func TestNoURLs(t *testing.T) {
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.RunFinished(changedReport())
	n.Startup("v1")
	n.Close()
	var nilN *Notifier
	nilN.RunFinished(changedReport())
	nilN.Close()
}
