package swarm

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	mobyswarm "github.com/moby/moby/api/types/swarm"

	"github.com/watcher-dev/watcher/store"
)

// Journal keeps the service updates in flight (store.Store): one record per service, written
// before the ServiceUpdate is sent and again once it was, forgotten when the update has ended.
type Journal interface {
	PutServiceJournal(key string, data []byte) error // nil data forgets key
	ServiceJournals() (map[string][]byte, error)
}

var _ Journal = (*store.Store)(nil)

// Journal steps. A record's Step is the last one started.
const (
	stepSend = "send" // the ServiceUpdate is about to be sent (or is being sent)
	stepWait = "wait" // it was sent: Swarm's rolling update is waited for
)

// record is one service update in flight: enough for a fresh process to tell whether it was sent
// and to wait for it (never to send it again).
type record struct {
	TxID      string
	Host      string `json:",omitempty"` // the manager's host name (Options.Host)
	ServiceID string
	Name      string
	Step      string
	// Previous is the spec's image before the update, Image the one the update sets (for a
	// rollback: the previous spec's image, which Swarm puts back).
	Previous string
	Image    string
	Rollback bool `json:",omitempty"`
	// Version is the spec version the ServiceUpdate was sent against (optimistic concurrency).
	Version uint64
	// Before is Swarm's update status before ours: a status that still reads the same belongs to
	// an earlier update, not to ours.
	Before   *status `json:",omitempty"`
	Started  time.Time
	Deadline time.Time // the wait ends here, whatever restarts happen in between
}

// status is the part of a service's UpdateStatus that tells one update from another.
type status struct {
	State     mobyswarm.UpdateState
	StartedAt time.Time
}

func statusOf(s *mobyswarm.UpdateStatus) *status {
	if s == nil {
		return nil
	}
	st := &status{State: s.State}
	if s.StartedAt != nil {
		st.StartedAt = *s.StartedAt
	}
	return st
}

// key is the record's journal key: the host and the service ID (one update per service at once).
func key(host, serviceID string) string { return host + "/" + serviceID }

// journal writes rec with step as the step about to be taken.
func (m *Manager) journal(rec *record, step string) error {
	rec.Step = step
	b, err := json.Marshal(rec)
	if err == nil {
		err = m.j.PutServiceJournal(key(rec.Host, rec.ServiceID), b)
	}
	if err != nil {
		return fmt.Errorf("writing the service journal: %w", err)
	}
	if m.afterJournal != nil {
		m.afterJournal(step)
	}
	return nil
}

// forget removes rec from the journal: the update has ended (its outcome is the caller's to report).
func (m *Manager) forget(rec *record) {
	if err := m.j.PutServiceJournal(key(rec.Host, rec.ServiceID), nil); err != nil {
		m.log.Warn("could not remove an ended service update from the journal; the next start waits for it once more", "service", rec.Name, "err", err)
	}
}

// records reads this host's records, by service ID; unreadable ones are logged and skipped.
func (m *Manager) records() (map[string]*record, error) {
	rows, err := m.j.ServiceJournals()
	if err != nil {
		return nil, err
	}
	out := map[string]*record{}
	for k, b := range rows {
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			m.log.Error("unreadable service journal record; left alone", "key", k, "err", err)
			continue
		}
		if r.Host == m.o.Host {
			out[r.ServiceID] = &r
		}
	}
	return out, nil
}

// newTxID returns an id that sorts by time, as lifecycle's transaction ids do.
func newTxID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ts := strconv.FormatInt(time.Now().UnixMilli(), 36)
	return strings.Repeat("0", max(0, 9-len(ts))) + ts + hex.EncodeToString(b)
}
