package updater

import (
	"encoding/json"
	"maps"
	"time"
)

// What GET /v1/containers shows: the latest state a run found each watched container in, kept in
// memory and, where the History can (LastKnown), in the state file, so a restarted daemon still
// knows what is up to date and what has an update available.

// LastKnown keeps each watched container's last known state across restarts (store.Store). It
// is found on the History by type assertion. Values are opaque to it, keyed by container name.
type LastKnown interface {
	// PutLastKnown records states in one write; with prune, every name not among them is
	// forgotten (a run over every watched container saw all there are).
	PutLastKnown(states map[string][]byte, prune bool) error
	// LastKnown returns every recorded state.
	LastKnown() (map[string][]byte, error)
}

// status is c's state as /v1/containers shows it, with what the observation alone says.
func (c *Container) status(state State) ContainerStatus {
	st := ContainerStatus{Host: c.Host, Name: c.Name, ID: c.ID, Image: c.Image, Policy: c.Settings.Policy, Mode: c.Settings.Mode, State: state}
	if c.isService() {
		st.Kind = KindService
		r := c.service.Replicas
		st.Replicas = &r
	}
	return st
}

// key is how the known states name st: as Container.key names its container or service.
func (st ContainerStatus) key() string {
	return Target{Kind: st.Kind, Host: st.Host, Name: st.Name}.String()
}

// statusOf is the state c is in after what its report line says. Only an update moves the
// container to the new image and digest; after a rollback it still runs the old ones.
func statusOf(c *Container, line *ContainerReport) ContainerStatus {
	st := c.status(stateOf(line))
	st.ID = firstNonEmpty(line.NewID, c.ID)
	st.LocalDigest, st.RemoteDigest = line.OldDigest, line.NewDigest
	if line.Replicas != nil {
		st.Replicas = line.Replicas
	}
	if line.Outcome == OutcomeUpdated {
		st.Image, st.LocalDigest = firstNonEmpty(line.NewImage, c.Image), line.NewDigest
		st.UpdatedAt = time.Now().UTC()
	} else if line.NewImage != "" && line.NewDigest != line.OldDigest {
		st.NewImage = line.NewImage
	}
	st.LastError, st.Message = line.Failure, line.Message
	st.CheckedAt = time.Now().UTC()
	return st
}

func stateOf(line *ContainerReport) State {
	switch line.Outcome {
	case OutcomeUpToDate, OutcomeUpdated, OutcomeRestarted:
		return StateUpToDate
	case OutcomeUpdateAvailable, OutcomePendingApproval:
		return StateUpdateAvailable
	case OutcomeFailed, OutcomeRolledBack:
		return StateFailed
	case OutcomeSkipped:
		if line.NewDigest != "" && line.NewDigest != line.OldDigest {
			return StateUpdateAvailable // held (outside a window, ...): the update waits
		}
	}
	return StateUnknown
}

// setStatus records st for c when c is watched (dependents the watcher restarts are not listed),
// with what the state file adds (decorate), and tells the live observers when it changed.
func (u *Updater) setStatus(c *Container, st ContainerStatus) {
	u.setStatusWith(c, st, nil)
}

// stateFile is what decorate reads from the state file, read once for many containers.
type stateFile struct {
	approvals map[string]*Approval
	records   map[string]*updateRecord
}

func (u *Updater) readStateFile() *stateFile {
	return &stateFile{approvals: u.approvals(), records: u.allRecords()}
}

// setStatusWith is setStatus with the state file read already (nil: read it now).
func (u *Updater) setStatusWith(c *Container, st ContainerStatus, sf *stateFile) {
	if !c.Watched {
		return
	}
	if sf == nil {
		sf = u.readStateFile()
	}
	u.decorate(&st, sf.approvals, sf.records)
	u.mu.Lock()
	old, had := u.status[c.key()]
	u.status[c.key()] = st
	u.mu.Unlock()
	if !had || !sameStatus(old, st) {
		u.live(func(o LiveObserver) { o.ContainerChanged(st) })
	}
}

// decorate adds to st what the state file knows of its container: the update waiting for (or
// decided by) a person, and when the watcher last updated it.
func (u *Updater) decorate(st *ContainerStatus, approvals map[string]*Approval, records map[string]*updateRecord) {
	st.Approval = nil
	key := st.key()
	a := approvals[key]
	if a != nil && st.State != StateUpToDate && (st.RemoteDigest == "" || st.RemoteDigest == a.Digest) {
		st.Approval = a
	}
	if r := records[key]; r != nil && st.UpdatedAt.IsZero() {
		st.UpdatedAt = r.At
	}
}

// sameStatus reports whether two states of a container differ in nothing but when it was checked.
// It runs for every watched container every run, so it compares fields rather than encodings.
func sameStatus(a, b ContainerStatus) bool {
	if !a.UpdatedAt.Equal(b.UpdatedAt) || !sameFailure(a.LastError, b.LastError) || !sameApproval(a.Approval, b.Approval) {
		return false
	}
	a.CheckedAt, b.CheckedAt, a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	a.LastError, b.LastError, a.Approval, b.Approval = nil, nil, nil, nil
	return a == b
}

func sameFailure(a, b *Failure) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

func sameApproval(a, b *Approval) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	if !x.Since.Equal(y.Since) || !x.DecidedAt.Equal(y.DecidedAt) {
		return false
	}
	x.Since, y.Since, x.DecidedAt, y.DecidedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return x == y
}

// LiveObserver is an Observer that is also told as things happen (the dashboard's feed, GET
// /v1/events): a run starting, and a watched container's known state changing. Its calls must
// not block.
type LiveObserver interface {
	Observer
	// RunStarted gets the report of a run that starts: id, trigger and start time, no lines.
	RunStarted(r *Report)
	// ContainerChanged gets a watched container's new state (as GET /v1/containers shows it).
	ContainerChanged(st ContainerStatus)
}

// live calls f for every observer that is a LiveObserver.
func (u *Updater) live(f func(LiveObserver)) {
	for _, o := range u.opts.Observers {
		if l, ok := o.(LiveObserver); ok {
			f(l)
		}
	}
}

// stateRewrite is how long saveStatus may skip writing states that changed in nothing but when
// they were checked: a restarted daemon shows check times at most this old until its first run.
const stateRewrite = 10 * time.Minute

// saveStatus writes the states of this run's targets to the state file; a run over every watched
// container (all) also forgets containers that are gone — except on the hosts it could not reach
// (down), whose containers are kept as they were last seen. States that differ from the ones
// written last in nothing but their check time are not written again (a run with nothing new
// costs no write), unless that write is older than stateRewrite.
func (u *Updater) saveStatus(targets []*Container, all bool, down []hostView) {
	lk, ok := u.history.(LastKnown)
	if !ok {
		return
	}
	sts := map[string]ContainerStatus{}
	for _, v := range down {
		for _, st := range u.knownOn(v.h) {
			sts[st.key()] = st
		}
	}
	u.mu.Lock()
	for _, t := range targets {
		if st, ok := u.status[t.key()]; ok {
			sts[t.key()] = st
		}
	}
	u.mu.Unlock()
	u.savedMu.Lock()
	defer u.savedMu.Unlock()
	if u.saved.covers(sts, all) && time.Since(u.saved.at) < stateRewrite {
		return
	}
	states := make(map[string][]byte, len(sts))
	for key, st := range sts {
		if b, err := json.Marshal(st); err == nil {
			states[key] = b
		}
	}
	if err := lk.PutLastKnown(states, all); err != nil {
		u.log.Warn("could not store the containers' last known state", "err", err)
		u.saved = savedStates{}
		return
	}
	if all || u.saved.states == nil {
		u.saved = savedStates{states: sts, at: time.Now(), complete: all}
		return
	}
	maps.Copy(u.saved.states, sts)
}

// savedStates is what saveStatus wrote last, and whether that write covered every watched
// container (so a run over all of them can tell whether the state file holds exactly the
// containers it saw).
type savedStates struct {
	states   map[string]ContainerStatus
	at       time.Time
	complete bool
}

// covers reports whether the state file holds sts already, check times aside; with all, it must
// hold nothing else.
func (s savedStates) covers(sts map[string]ContainerStatus, all bool) bool {
	if s.states == nil || (all && (!s.complete || len(s.states) != len(sts))) {
		return false
	}
	for key, st := range sts {
		if old, ok := s.states[key]; !ok || !sameStatus(old, st) {
			return false
		}
	}
	return true
}

// loadStatus reads the last known states once, before the first run or status query, so what
// an earlier process found answers until a run finds something newer.
func (u *Updater) loadStatus() {
	u.loadOnce.Do(func() {
		lk, ok := u.history.(LastKnown)
		if !ok {
			return
		}
		rows, err := lk.LastKnown()
		if err != nil {
			u.log.Warn("could not read the containers' last known state", "err", err)
			return
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		for name, b := range rows {
			var st ContainerStatus
			if _, seen := u.status[name]; !seen && json.Unmarshal(b, &st) == nil {
				u.status[name] = st
			}
		}
	})
}
