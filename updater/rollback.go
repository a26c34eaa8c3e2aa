package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/store"
)

// A manual rollback puts a container back on the image it ran before its last committed update.
// Every committed update leaves a record (UpdateRecords) of what the container ran before, and
// the superseded images update.keep_images keeps. A rollback is then a run of its own with one
// candidate, the previous image, planned and applied like any update (dependents restarted,
// opted-out ones respected, a journaled and verified transaction, undone if it fails). Its record
// then remembers the digest it undid, which later runs do not apply again unless forced.

// UpdateRecords keeps each container's last committed update (store.Store). It is found on the
// History by type assertion; without it there is nothing to roll back and nothing kept.
type UpdateRecords interface {
	PutUpdate(key string, data []byte) error // nil data forgets key
	Update(key string) ([]byte, error)       // store.ErrNotFound when none
	Updates() (map[string][]byte, error)
}

var _ UpdateRecords = (*store.Store)(nil)

// updateRecord is one container's last committed update, by Container.key (its name, or
// host/name when hosts are configured).
type updateRecord struct {
	ContainerID string // the container the update (or rollback) made
	ImageID     string // the image it runs since
	// Image is a Swarm service's spec image since the update (repo:tag@sha256:…): a rollback asks
	// Swarm for the previous spec only while the service still has it.
	Image  string    `json:",omitempty"`
	Digest string    `json:",omitempty"` // the digest it was updated to
	At     time.Time // when it committed
	// Previous is what it ran before; nil once a rollback consumed it.
	Previous *previousImage `json:",omitempty"`
	// Kept are superseded image IDs kept for a rollback (update.keep_images), newest first.
	Kept []string `json:",omitempty"`
	// RolledBack is the digest a manual rollback undid: later runs hold it unless forced.
	RolledBack string `json:",omitempty"`
}

// previousImage is what a container ran before an update.
type previousImage struct {
	Image   string // the reference (repo:tag) it ran
	ImageID string
	Digest  string `json:",omitempty"` // the registry digest of that image; "" = unknown
}

// NoRollbackError says why a container cannot be rolled back: it has no committed update the
// watcher remembers, or it was changed outside the watcher since (the API answers 409).
type NoRollbackError struct{ Name, Why string }

func (e *NoRollbackError) Error() string { return e.Name + ": nothing to roll back: " + e.Why }

func (u *Updater) records() UpdateRecords {
	r, _ := u.history.(UpdateRecords)
	return r
}

// record reads name's update record; nil when there is none.
func (u *Updater) record(name string) (*updateRecord, error) {
	rs := u.records()
	if rs == nil {
		return nil, nil
	}
	b, err := rs.Update(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r updateRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the update record of %s is unreadable: %w", name, err)
	}
	return &r, nil
}

// allRecords reads every update record, by container name (unreadable ones are skipped).
func (u *Updater) allRecords() map[string]*updateRecord {
	out := map[string]*updateRecord{}
	rs := u.records()
	if rs == nil {
		return out
	}
	rows, err := rs.Updates()
	if err != nil {
		u.log.Warn("could not read the update records", "err", err)
	}
	for name, b := range rows {
		var r updateRecord
		if json.Unmarshal(b, &r) == nil {
			out[name] = &r
		}
	}
	return out
}

func (u *Updater) putRecord(name string, r *updateRecord) {
	rs := u.records()
	if rs == nil {
		return
	}
	b, err := json.Marshal(r)
	if err == nil {
		err = rs.PutUpdate(name, b)
	}
	if err != nil {
		u.log.Warn("could not store the update record; a rollback of this update will not be possible", "container", name, "err", err)
	}
}

// pinned maps containers to the digest a manual rollback undid.
func (u *Updater) pinned() map[string]string {
	out := map[string]string{}
	for name, r := range u.allRecords() {
		if r.RolledBack != "" {
			out[name] = r.RolledBack
		}
	}
	return out
}

// afterUpdates records the committed updates (what each container ran before, for a rollback;
// a rollback's record remembers the digest it undid instead) and, with update.cleanup, removes
// the images they superseded that no container uses or keeps: each container keeps its
// update.keep_images newest superseded images, and none after a rollback (the image rolled back
// from holds a digest that is not applied again).
func (u *Updater) afterUpdates(ctx context.Context, done []committed, rollback bool) {
	records := u.allRecords()
	keepImages := u.opts.KeepImages
	if u.records() == nil {
		keepImages = 0 // nothing remembers them: a kept image could never be rolled back to
	}
	superseded := map[*host][]string{}
	for _, d := range done {
		name, h := d.step.c.key(), u.hostOf(d.step.c)
		if d.svc != nil {
			records[name] = u.recordService(name, d, rollback)
			continue
		}
		rec := &updateRecord{ContainerID: d.res.NewID, ImageID: d.res.NewImageID, Digest: d.step.NewDigest, At: time.Now().UTC()}
		var kept []string
		if old := records[name]; old != nil {
			kept = old.Kept
		}
		if rollback {
			rec.RolledBack = d.line.OldDigest
			d.line.Message = "rolled back by hand to " + strings.TrimPrefix(d.step.Cause, "rollback to ")
		} else {
			rec.Previous = &previousImage{Image: d.step.c.Image, ImageID: d.res.OldImageID, Digest: d.line.OldDigest}
			kept = append([]string{d.res.OldImageID}, kept...)
		}
		kept = slices.DeleteFunc(slices.Compact(kept), func(id string) bool { return id == "" || id == rec.ImageID })
		if n := min(len(kept), keepImages); n < len(kept) {
			superseded[h] = append(superseded[h], kept[n:]...)
			kept = kept[:n]
		}
		if d.res.OldImageID != rec.ImageID {
			superseded[h] = append(superseded[h], d.res.OldImageID)
		}
		rec.Kept = kept
		records[name] = rec
		u.putRecord(name, rec)
	}
	if !u.opts.Cleanup {
		return
	}
	for h, ids := range superseded {
		keep := map[string]bool{}
		for key, r := range records {
			if recordOn(key, h) {
				for _, id := range r.Kept {
					keep[id] = true
				}
			}
		}
		h.cleanup(ctx, ids, keep)
	}
}

// recordService records a service's committed update: the spec image before it (Swarm keeps
// that spec as its previous one, which a rollback asks for), or for a rollback the digest it undid.
func (u *Updater) recordService(key string, d committed, rollback bool) *updateRecord {
	rec := &updateRecord{ContainerID: d.svc.ServiceID, Image: d.svc.Image, Digest: pinnedDigest(d.svc.Image), At: time.Now().UTC()}
	if rollback {
		rec.RolledBack = d.line.OldDigest
	} else {
		rec.Previous = &previousImage{Image: d.svc.Previous, Digest: pinnedDigest(d.svc.Previous)}
	}
	u.putRecord(key, rec)
	return rec
}

// recordOn reports whether the update record under key is of a container on h: its key is
// "h/name", or any key when no hosts are configured (h is the only one, named "").
func recordOn(key string, h *host) bool {
	if h.Name == "" {
		return true
	}
	host, _, ok := strings.Cut(key, "/")
	return ok && host == h.Name
}

// Rollback asks for a run that puts container name (on host, "" = whichever host has it, the
// only one without hosts) back on the image it ran before its last committed update. It checks
// at once that there is one to go back to (an *UnknownHostError, a *NotWatchedError or a
// *NoRollbackError says why not), then queues the rollback behind the run in progress, if any:
// it is never merged with other requests. done is closed when it has finished; Run(id) then has
// its report (trigger rollback).
func (u *Updater) Rollback(ctx context.Context, host, name string) (string, <-chan struct{}, error) {
	c, err := u.findContainer(ctx, host, name)
	if err != nil {
		return "", nil, err
	}
	if _, err := u.rollbackTo(c, name); err != nil {
		return "", nil, err
	}
	var hosts []string
	if c.Host != "" {
		hosts = []string{c.Host}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.handedOver {
		return "", nil, ErrHandedOver
	}
	r := u.newRun(Request{Trigger: TriggerRollback, Hosts: hosts, Containers: []string{name}, rollback: name, rollbackKind: c.kind()})
	if u.running == nil {
		u.running = r
		go u.loop(r)
	} else {
		u.rollbacks = append(u.rollbacks, r)
	}
	return r.id, r.done, nil
}

// findContainer finds container name on host ("" = on whichever host has it). A host that does
// not answer cannot be asked; a name on several hosts must be given with its host.
func (u *Updater) findContainer(ctx context.Context, host, name string) (*Container, error) {
	var names []string
	if host != "" {
		names = []string{host}
	}
	hs, err := u.pickHosts(names)
	if err != nil {
		return nil, err
	}
	var found []*Container
	for _, v := range u.listHosts(ctx, hs, false) {
		if v.err != nil {
			if !u.Named() || host != "" {
				return nil, v.err
			}
			continue
		}
		// A container's name comes first; a service of that name is found on a host without one.
		if c := v.obs.byName[name]; c != nil {
			found = append(found, c)
		} else if c := v.obs.svcByName[name]; c != nil {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, &NotWatchedError{Names: []string{name}}
	case 1:
		return found[0], nil
	}
	var on []string
	for _, c := range found {
		on = append(on, c.Host)
	}
	return nil, &NoRollbackError{Name: name, Why: "there is one on each of the hosts " + strings.Join(on, ", ") + "; name the host (--host, ?host=)"}
}

// rollbackTo is c's previous image as its update record has it, or why there is none.
func (u *Updater) rollbackTo(c *Container, name string) (*updateRecord, error) {
	if c == nil || !c.Watched {
		return nil, &NotWatchedError{Names: []string{name}}
	}
	rec, err := u.record(c.key())
	switch {
	case err != nil:
		return nil, err
	case rec == nil && u.records() == nil:
		return nil, &NoRollbackError{Name: name, Why: "no state file keeps update records"}
	case rec == nil:
		return nil, &NoRollbackError{Name: name, Why: "the watcher has recorded no committed update of it"}
	case rec.Previous == nil && rec.RolledBack != "":
		return nil, &NoRollbackError{Name: name, Why: fmt.Sprintf("its last update (to %s) was already rolled back at %s",
			shortDigest(rec.RolledBack), rec.At.Format(time.RFC3339))}
	case rec.Previous == nil:
		return nil, &NoRollbackError{Name: name, Why: "the watcher has recorded no committed update of it"}
	case c.isService() && rec.Image != c.service.Spec:
		return nil, &NoRollbackError{Name: name, Why: fmt.Sprintf("its spec has image %s, not %s that its last update (%s) set: "+
			"it was changed outside the watcher since, so Swarm's previous spec is not the watcher's", c.service.Spec, rec.Image, rec.At.Format(time.RFC3339))}
	case !c.isService() && rec.ImageID != c.ImageID:
		return nil, &NoRollbackError{Name: name, Why: fmt.Sprintf("it runs image %s, not %s that its last update (%s) put there: "+
			"it was changed outside the watcher since, so the image before that update is not its previous one", short(trimAlgo(c.ImageID)), short(trimAlgo(rec.ImageID)), rec.At.Format(time.RFC3339))}
	}
	return rec, nil
}

// checkRollback is a rollback run's check: the one target's line and, when its record still
// holds, the candidate that puts the previous image back. The registry is not asked: the
// previous image is known by ID and digest.
func (u *Updater) checkRollback(targets []*Container) (map[string]*ContainerReport, []Candidate) {
	lines := map[string]*ContainerReport{}
	var cands []Candidate
	for _, t := range targets {
		line := newLine(t)
		lines[t.key()] = line
		rec, err := u.rollbackTo(t, t.Name)
		if err != nil {
			line.Outcome, line.Message = OutcomeSkipped, err.Error()
			continue
		}
		p := rec.Previous
		line.OldDigest, line.NewDigest = rec.Digest, p.Digest
		c := Candidate{Container: t, NewDigest: p.Digest, ImageID: p.ImageID,
			Cause: fmt.Sprintf("rollback to %s (%s), the image it ran before its update of %s", p.Image, shortDigest(firstNonEmpty(p.Digest, p.ImageID)), rec.At.Format(time.RFC3339))}
		if p.Image != t.Image {
			c.NewImage = p.Image
		}
		cands = append(cands, c)
	}
	return lines, cands
}

func trimAlgo(id string) string {
	if _, hex, ok := strings.Cut(id, ":"); ok {
		return hex
	}
	return id
}
