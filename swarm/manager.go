package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	mobyswarm "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/keylock"
)

// DefaultTimeout is how long an update may take to converge by default (update.service_timeout).
const DefaultTimeout = 10 * time.Minute

// Options configure a Manager.
type Options struct {
	// Host names the manager's engine when one watcher has several ("" = the only one). Records
	// are journaled with it, and Recover resumes only this host's.
	Host string
	// Timeout bounds the wait for Swarm's rolling update, from the moment the update is sent, across
	// restarts of the watcher. Default DefaultTimeout.
	Timeout time.Duration
	// Poll is how often the wait asks the manager; default 1s.
	Poll   time.Duration
	Logger *slog.Logger // default slog.Default()
}

// Manager updates the services of one Swarm through one of its managers. It is safe for
// concurrent use; one service is never updated twice at once.
type Manager struct {
	d   Docker
	j   Journal
	o   Options
	log *slog.Logger

	// afterJournal, when set (by tests), runs after every journal write: the crash test kills
	// the process there.
	afterJournal func(step string)

	busy keylock.Locks // by service ID: one update of a service at a time
}

// New returns a Manager on the manager engine d with journal j.
func New(d Docker, j Journal, o Options) *Manager {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger
	if o.Host != "" {
		log = log.With("host", o.Host)
	}
	return &Manager{d: d, j: j, o: o, log: log}
}

// Spec says which service to update and how.
type Spec struct {
	ServiceID string
	// Image is the reference the service runs after the update, repo:tag@sha256:… so that every
	// node runs exactly that digest. With Rollback it is the image the previous spec has.
	Image string
	// RegistryAuth is X-Registry-Auth for a private image (the watcher's own credentials); "" keeps
	// the credentials the spec has (registryAuthFrom=spec).
	RegistryAuth string
	// Rollback asks Swarm to put the previous spec back (rollback=previous) instead of changing
	// the image, provided the spec's image is still Expect and the previous spec's is Image: the
	// spec before is the watcher's own update, and nobody changed the service since.
	Rollback bool
	Expect   string
	// NoWait sends the update and returns with it journaled as waiting, for Recover to wait for:
	// the watcher's own service, whose rolling update replaces the process that sent it.
	NoWait bool
}

// Outcome is how a service update ended.
type Outcome string

const (
	OutcomeUpdated    Outcome = "updated"     // every task runs the new image (Swarm: completed)
	OutcomeRolledBack Outcome = "rolled_back" // Swarm's own rollback ran: the service runs the previous image
	OutcomeFailed     Outcome = "failed"      // see Err
	OutcomeSent       Outcome = "sent"        // NoWait: sent, journaled as waiting
)

// Error says why an update failed; its stage is always failure.StageService (or a journal or
// interruption reason in that stage).
type Error struct {
	Reason  failure.Reason
	Message string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Message }

func fail(reason failure.Reason, format string, a ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// Replicas are a service's tasks as the update left them.
type Replicas struct {
	Global  bool // a global service: Desired counts the eligible nodes
	Desired int  // replicas, or eligible nodes (ready and active) with a task of the service
	Running int  // tasks running the update's image
}

// Result is what an update (or Recover) did.
type Result struct {
	TxID      string
	ServiceID string
	Name      string
	Outcome   Outcome
	Previous  string // the spec's image before the update
	Image     string // the image the update set
	Version   uint64 // the spec version it was sent against
	Replicas  Replicas
	Message   string // Swarm's own message (its rollback's reason, its update state)
	Err       *Error
	Duration  time.Duration
	Recovered bool // Recover finished it (an earlier process sent it)
}

// Update sends one ServiceUpdate that changes only the service's image (or, with Rollback, asks
// for rollback=previous) and waits until Swarm's rolling update has completed, rolled back or
// paused, or Options.Timeout has passed. The update is journaled before it is sent; an update of
// this service that an earlier process journaled is waited for instead of sending another.
func (m *Manager) Update(ctx context.Context, s Spec) Result {
	start := time.Now()
	res := Result{ServiceID: s.ServiceID, Image: s.Image, Outcome: OutcomeFailed}
	unlock, err := m.busy.Lock(ctx, s.ServiceID)
	if err != nil {
		res.Err = fail(failure.Interrupted, "the watcher is stopping; the update was not sent")
		return res
	}
	defer unlock()
	recs, err := m.records()
	if err != nil {
		res.Err = fail(failure.StoreError, "reading the service journal: %v; nothing was sent", err)
		return res
	}
	if rec := recs[s.ServiceID]; rec != nil {
		m.log.Info("an earlier update of this service is still journaled: waiting for it instead", "service", rec.Name, "txid", rec.TxID)
		return m.resume(ctx, rec)
	}
	rec, res := m.send(ctx, s, res)
	res.Duration = time.Since(start)
	if rec == nil || s.NoWait {
		return res
	}
	return m.finish(ctx, rec, start)
}

// send journals the update and sends it: rec is nil when nothing was sent (res says why).
func (m *Manager) send(ctx context.Context, s Spec, res Result) (*record, Result) {
	svc, err := m.inspect(ctx, s.ServiceID)
	if err != nil {
		res.Err = fail(failure.ServiceUpdateRefused, "inspecting the service: %v; nothing was sent", err)
		return nil, res
	}
	res.Name, res.Previous, res.Version = svc.Spec.Name, image(svc.Spec), svc.Version.Index
	if svc.Spec.TaskTemplate.ContainerSpec == nil {
		res.Err = fail(failure.ServiceUpdateRefused, "the service runs no container (a plugin service); nothing was sent")
		return nil, res
	}
	if s.Rollback {
		if why := m.notOurs(svc, s); why != "" {
			res.Err = fail(failure.ServiceChanged, "%s; nothing was sent", why)
			return nil, res
		}
	}
	rec := &record{TxID: newTxID(), Host: m.o.Host, ServiceID: svc.ID, Name: svc.Spec.Name, Previous: image(svc.Spec), Image: s.Image,
		Rollback: s.Rollback, Version: svc.Version.Index, Before: statusOf(svc.UpdateStatus), Started: time.Now().UTC()}
	rec.Deadline = rec.Started.Add(m.o.Timeout)
	res.TxID = rec.TxID
	if err := m.journal(rec, stepSend); err != nil {
		res.Err = fail(failure.StoreError, "%v; nothing was sent", err)
		return nil, res
	}
	if err := m.sendUpdate(ctx, rec, svc, s); err != nil {
		res.Err = err
		res.Version = rec.Version
		if err.Reason != failure.Interrupted {
			m.forget(rec)
		}
		return nil, res
	}
	res.Version = rec.Version
	if err := m.journal(rec, stepWait); err != nil {
		// Sent, but the journal does not say so: the record still says "send", and Recover
		// finds the sent update on the manager and waits for it. Wait here all the same.
		m.log.Error("the service update was sent but the journal could not record it", "service", rec.Name, "err", err)
	}
	m.log.Info("service update sent; Swarm rolls it out", "service", rec.Name, "id", short(rec.ServiceID), "image", rec.Image,
		"previous", rec.Previous, "version", rec.Version, "rollback", rec.Rollback, "timeout", m.o.Timeout)
	if s.NoWait {
		res.Outcome = OutcomeSent
	}
	return rec, res
}

// notOurs says why a rollback may not ask Swarm for the previous spec: the current spec's image
// is not the one the watcher's update set, or the previous spec is not what it replaced.
func (m *Manager) notOurs(svc mobyswarm.Service, s Spec) string {
	if cur := image(svc.Spec); cur != s.Expect {
		return fmt.Sprintf("the service runs %s, not %s that the watcher's update set: it was changed outside the watcher since", cur, s.Expect)
	}
	if svc.PreviousSpec == nil || image(*svc.PreviousSpec) != s.Image {
		prev := "none"
		if svc.PreviousSpec != nil {
			prev = image(*svc.PreviousSpec)
		}
		return fmt.Sprintf("Swarm's previous spec has image %s, not %s that the watcher's update replaced", prev, s.Image)
	}
	return ""
}

// sendUpdate sends the ServiceUpdate: the spec as the manager has it with only the image changed
// (or rollback=previous), at the version it was read at. An answer "update out of sequence"
// means someone else wrote the service in between: it is read again and the update sent once
// more, unless their change was to the image.
func (m *Manager) sendUpdate(ctx context.Context, rec *record, svc mobyswarm.Service, s Spec) *Error {
	for attempt := 0; ; attempt++ {
		_, err := m.d.ServiceUpdate(ctx, rec.ServiceID, updateOptions(svc, s))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fail(failure.Interrupted, "the watcher stopped while sending the update (%v); the next start finds out whether the manager took it", err)
		}
		if !isOutOfSequence(err) || attempt > 0 {
			return m.unsent(ctx, rec, err)
		}
		m.log.Info("service written meanwhile (update out of sequence): reading it again", "service", rec.Name, "version", rec.Version)
		if svc, err = m.inspect(ctx, rec.ServiceID); err != nil {
			return fail(failure.ServiceUpdateRefused, "reading the service again after an out-of-sequence answer: %v; nothing was sent", err)
		}
		if image(svc.Spec) != rec.Previous && !(s.Rollback && image(svc.Spec) == s.Expect) {
			return fail(failure.ServiceChanged, "the service's image was changed to %s while the update was being sent; nothing was sent", image(svc.Spec))
		}
		rec.Version, rec.Before = svc.Version.Index, statusOf(svc.UpdateStatus)
		if err := m.journal(rec, stepSend); err != nil {
			return fail(failure.StoreError, "%v; nothing was sent", err)
		}
	}
}

// unsent is the error of a ServiceUpdate that failed, or nil when the update arrived all the
// same: an error without an answer (the connection dropped) leaves it unknown whether the
// manager took it, so the spec is read again.
func (m *Manager) unsent(ctx context.Context, rec *record, err error) *Error {
	if svc, ierr := m.inspect(ctx, rec.ServiceID); ierr == nil && arrived(svc, rec) {
		m.log.Warn("the manager answered the service update with an error, yet took it", "service", rec.Name, "err", err)
		return nil
	}
	return fail(failure.ServiceUpdateRefused, "the manager refused the update: %v; nothing changed", err)
}

// arrived reports whether the manager has rec's update: the spec has the image it sets (which
// the spec before it did not have) at a later version.
func arrived(svc mobyswarm.Service, rec *record) bool {
	return image(svc.Spec) == rec.Image && rec.Image != rec.Previous && svc.Version.Index > rec.Version
}

// updateOptions is the ServiceUpdate of s on svc.
func updateOptions(svc mobyswarm.Service, s Spec) client.ServiceUpdateOptions {
	o := client.ServiceUpdateOptions{Version: svc.Version, Spec: svc.Spec, RegistryAuthFrom: mobyswarm.RegistryAuthFromSpec}
	if s.Rollback {
		o.Rollback = "previous"
		return o
	}
	cs := *svc.Spec.TaskTemplate.ContainerSpec
	cs.Image = s.Image
	o.Spec.TaskTemplate.ContainerSpec = &cs
	o.EncodedRegistryAuth = s.RegistryAuth
	return o
}

func (m *Manager) inspect(ctx context.Context, id string) (mobyswarm.Service, error) {
	res, err := m.d.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	return res.Service, err
}

// isOutOfSequence recognises the manager's answer to a write at a stale version (500 on
// Docker 20.10, whose message is swarmkit's).
func isOutOfSequence(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "out of sequence") || cerrdefs.IsConflict(err))
}

// image is a spec's container image ("" for a plugin service).
func image(s mobyswarm.ServiceSpec) string {
	if s.TaskTemplate.ContainerSpec == nil {
		return ""
	}
	return s.TaskTemplate.ContainerSpec.Image
}

// digestOf is the digest a reference pins ("" when it pins none).
func digestOf(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		return ref[i+1:]
	}
	return ""
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
