package notify

import (
	"strings"
	"sync"
	"testing"

	"github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/updater"
)

// memNotices is a Notices kept in memory, shared by the notifiers of one test as the state
// file is shared by a daemon's successive processes.
type memNotices struct {
	mu   sync.Mutex
	rows map[string][]byte
}

func (m *memNotices) PutNotice(key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == nil {
		delete(m.rows, key)
	} else {
		m.rows[key] = data
	}
	return nil
}

func (m *memNotices) Notices() (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range m.rows {
		out[k] = v
	}
	return out, nil
}

// recordingSender keeps what it was asked to send; fail makes it refuse.
type recordingSender struct {
	mu   sync.Mutex
	sent []string
	fail bool
}

func (s *recordingSender) Send(msg string, _ *types.Params) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return []error{errBoomSend}
	}
	s.sent = append(s.sent, msg)
	return nil
}

func (s *recordingSender) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

var errBoomSend = &sendError{kind: ErrSendFailed, detail: "refused"}

// notifierFor is a Notifier over one recording sender; Close flushes it.
func notifierFor(t *testing.T, s sender, o Options) *Notifier {
	t.Helper()
	n, err := newNotifier(o, []*dest{{name: "test", s: s, hanging: make(chan struct{}, maxHanging)}}, DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func line(name string, o updater.Outcome, digest string) updater.ContainerReport {
	return updater.ContainerReport{Name: name, Image: name + ":1", Outcome: o, NewDigest: digest}
}

func report(lines ...updater.ContainerReport) *updater.Report {
	return &updater.Report{ID: "r", Trigger: updater.TriggerSchedule, Containers: lines}
}

// TestNotifyOnce: a waiting update is told once per container and digest, across notifiers that
// share the store (restarts); a newer digest, another reason or a settled container makes it
// news again; outcomes that do not wait are told every time.
func TestNotifyOnce(t *testing.T) {
	store := &memNotices{rows: map[string][]byte{}}
	s := &recordingSender{}
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	outside := line("web", updater.OutcomeSkipped, d2)
	outside.Failure = &updater.Failure{Stage: failure.StagePlan, Reason: failure.OutsideWindow, Message: "outside"}
	steps := []struct {
		name string
		rep  *updater.Report
		want []string // containers in the message; nil = no message
	}{
		{"first wait", report(line("web", updater.OutcomeUpdateAvailable, d1), line("db", updater.OutcomeUpToDate, "")), []string{"web"}},
		{"same again", report(line("web", updater.OutcomeUpdateAvailable, d1)), nil},
		{"restart", nil, nil}, // a new notifier on the same store
		{"same after restart", report(line("web", updater.OutcomeUpdateAvailable, d1)), nil},
		{"newer digest", report(line("web", updater.OutcomeUpdateAvailable, d2)), []string{"web"}},
		{"held by a window now", report(outside), []string{"web"}},
		{"still outside", report(outside), nil},
		{"failures every time", report(outside, line("api", updater.OutcomeFailed, "")), []string{"api"}},
		{"failures every time 2", report(outside, line("api", updater.OutcomeFailed, "")), []string{"api"}},
		{"pending approval", report(line("web", updater.OutcomePendingApproval, d2)), []string{"web"}},
		{"approved, updated", report(line("web", updater.OutcomeUpdated, d2)), []string{"web"}},
		{"waits again: news", report(line("web", updater.OutcomeUpdateAvailable, d2)), []string{"web"}},
	}
	n := notifierFor(t, s, Options{Notices: store})
	sent := 0
	for _, st := range steps {
		if st.rep == nil {
			n.Close()
			n = notifierFor(t, s, Options{Notices: store})
			continue
		}
		n.RunFinished(st.rep)
		n.Close() // flush
		msgs := s.messages()
		switch {
		case st.want == nil && len(msgs) != sent:
			t.Errorf("%s: sent %q, want nothing", st.name, msgs[sent:])
		case st.want != nil && len(msgs) != sent+1:
			t.Errorf("%s: sent %d messages, want 1 naming %v", st.name, len(msgs)-sent, st.want)
		case st.want != nil:
			for _, c := range st.want {
				if !strings.Contains(msgs[sent], "- "+c+" (") {
					t.Errorf("%s: message lacks %s:\n%s", st.name, c, msgs[sent])
				}
			}
		}
		sent = len(msgs)
		n = notifierFor(t, s, Options{Notices: store}) // Close ended it; the store carries on
	}
	n.Close()
}

// TestNotifyOnceUndelivered: a waiting update no destination took is told again next run.
func TestNotifyOnceUndelivered(t *testing.T) {
	store := &memNotices{rows: map[string][]byte{}}
	s := &recordingSender{fail: true}
	n := notifierFor(t, s, Options{Notices: store})
	n.RunFinished(report(line("web", updater.OutcomeUpdateAvailable, "sha256:1")))
	n.Close()
	if rows, _ := store.Notices(); len(rows) != 0 {
		t.Errorf("after a failed send the store keeps %q; want it forgotten", rows)
	}
	s.fail = false
	n = notifierFor(t, s, Options{Notices: store})
	n.RunFinished(report(line("web", updater.OutcomeUpdateAvailable, "sha256:1")))
	n.Close()
	if got := s.messages(); len(got) != 1 {
		t.Errorf("after a failed send, the next run sent %d messages, want 1", len(got))
	}
}

// TestNotifyOn: notify.on chooses the lines; a run with none of them sends nothing, and a failed
// run is sent only when failed is chosen.
func TestNotifyOn(t *testing.T) {
	s := &recordingSender{}
	n := notifierFor(t, s, Options{On: []updater.Outcome{updater.OutcomeFailed, updater.OutcomeUpToDate}})
	n.RunFinished(report(line("web", updater.OutcomeUpdated, "sha256:1"))) // not chosen
	n.RunFinished(report(line("web", updater.OutcomeUpdated, "sha256:1"), line("db", updater.OutcomeUpToDate, "")))
	n.RunFinished(&updater.Report{ID: "x", Error: "docker engine unreachable"})
	n.Close()
	got := s.messages()
	if len(got) != 2 || !strings.Contains(got[0], "1 up to date") || strings.Contains(got[0], "- web") ||
		!strings.Contains(got[1], "docker engine unreachable") {
		t.Errorf("sent %q; want the up-to-date line alone, then the failed run", got)
	}
	s2 := &recordingSender{}
	n = notifierFor(t, s2, Options{On: []updater.Outcome{updater.OutcomeUpdated}})
	n.RunFinished(&updater.Report{ID: "x", Error: "docker engine unreachable"})
	n.Close()
	if got := s2.messages(); len(got) != 0 {
		t.Errorf("a failed run was sent although notify.on lacks failed: %q", got)
	}
}
