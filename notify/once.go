package notify

import (
	"log/slog"
	"sync"

	"github.com/watcher-dev/watcher/updater"
)

// Which lines a message carries: those whose outcome notify.on lists, minus the waiting updates
// already told. A waiting update (update_available in monitor mode, pending_approval, skipped
// outside a window, ...) is reported by every run until it is applied; people want to hear of it
// once per container and digest, so its notice is remembered (in the state file when there is
// one) and the next runs stay quiet until it changes. A container that settles (up to date, or
// updated) is forgotten, so that a later wait is news again. Containers are known by
// ContainerReport.Key: a name, or host/name when hosts are configured.

// outcomesOn is notify.on as a set; nil = every outcome but up_to_date.
func outcomesOn(on []updater.Outcome) map[updater.Outcome]bool {
	set := map[updater.Outcome]bool{}
	if len(on) == 0 {
		for _, o := range []updater.Outcome{updater.OutcomeUpdated, updater.OutcomeUpdateAvailable, updater.OutcomePendingApproval,
			updater.OutcomeSkipped, updater.OutcomeFailed, updater.OutcomeRolledBack, updater.OutcomeRestarted, updater.OutcomeHandedOver} {
			set[o] = true
		}
		return set
	}
	for _, o := range on {
		set[o] = true
	}
	return set
}

// selectLines returns a copy of r with only the lines to send, and the notices they tell; nil
// when there is nothing to send. The notices are remembered at once: two runs in a row must not
// both tell the same news (the sender forgets them again if no destination took the message).
func (n *Notifier) selectLines(r *updater.Report) (*updater.Report, map[string]string) {
	out := *r
	out.Containers = nil
	told := map[string]string{}
	for _, c := range r.Containers {
		key := c.Key()
		if c.Settled() {
			n.notices.settle(key)
		}
		if !n.on[c.Outcome] {
			continue
		}
		if c.Waiting() {
			if !n.notices.tell(key, c.Notice()) {
				continue
			}
			told[key] = c.Notice()
		}
		out.Containers = append(out.Containers, c)
	}
	if out.Error != "" && !n.on[updater.OutcomeFailed] {
		out.Error = ""
	}
	if len(out.Containers) == 0 && out.Error == "" && !(n.on[updater.OutcomeFailed] && len(r.Unreachable()) > 0) {
		return nil, nil
	}
	return &out, told
}

// onceNotices is what was told about each waiting container, written through to the store.
type onceNotices struct {
	mu    sync.Mutex
	store Notices // nil = memory only
	log   *slog.Logger
	told  map[string]string
}

func loadNotices(s Notices, log *slog.Logger) *onceNotices {
	o := &onceNotices{store: s, log: log, told: map[string]string{}}
	if s == nil {
		return o
	}
	rows, err := s.Notices()
	if err != nil {
		log.Warn("notify: could not read what was notified before; waiting updates may be told again", "err", err)
	}
	for k, v := range rows {
		o.told[k] = string(v)
	}
	return o
}

// tell records notice for key and reports whether it is news (not the notice last told).
func (o *onceNotices) tell(key, notice string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.told[key] == notice {
		return false
	}
	o.told[key] = notice
	o.save(key, []byte(notice))
	return true
}

// settle forgets key: its wait ended.
func (o *onceNotices) settle(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.told[key]; ok {
		delete(o.told, key)
		o.save(key, nil)
	}
}

// forget undoes tell for notices no destination received, unless a later run told another.
func (o *onceNotices) forget(told map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for key, notice := range told {
		if o.told[key] == notice {
			delete(o.told, key)
			o.save(key, nil)
		}
	}
}

// save writes one notice through (o.mu held).
func (o *onceNotices) save(key string, data []byte) {
	if o.store == nil {
		return
	}
	if err := o.store.PutNotice(key, data); err != nil {
		o.log.Warn("notify: could not store what was notified; it may be told again after a restart", "container", key, "err", err)
	}
}
