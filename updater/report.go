package updater

import (
	"errors"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/failure"
)

// Outcome is what a run did with one container. Results start pessimistic (failed) and are raised
// only when the step that earns the better outcome succeeds.
type Outcome string

const (
	OutcomeUpdated         Outcome = "updated"          // replaced and verified, old one removed
	OutcomeUpToDate        Outcome = "up_to_date"       // registry has the digest the container runs
	OutcomeUpdateAvailable Outcome = "update_available" // newer image exists; monitor mode or dry run
	OutcomeSkipped         Outcome = "skipped"          // not checked or not applied; Message says why
	OutcomeFailed          Outcome = "failed"           // could not check or update; Failure says where
	OutcomeRolledBack      Outcome = "rolled_back"      // update failed and the old container runs again
	OutcomeRestarted       Outcome = "restarted"        // a dependent restarted after what it depends on
	OutcomeHandedOver      Outcome = "handed_over"      // the watcher's own update: its successor runs and finishes it
	// OutcomePendingApproval: the update waits for a person's approval (update.approve); like
	// update_available it is notified once per container and digest.
	OutcomePendingApproval Outcome = "pending_approval"
)

// Key is how the line's container is known across runs: its name, or host/name when hosts are
// configured (the target as plans print it).
func (c ContainerReport) Key() string {
	return Target{Kind: c.Kind, Host: c.Host, Name: c.Name}.String()
}

// Waiting reports whether the line tells of an update that is not applied and that the next
// runs will tell of again while nothing changes: update_available (monitor mode, the watcher's
// own container), pending_approval, or skipped (outside a window, another watcher instance, a
// digest a rollback undid, ...). Notifications tell each such state once (see Notice).
func (c ContainerReport) Waiting() bool {
	switch c.Outcome {
	case OutcomeUpdateAvailable, OutcomePendingApproval, OutcomeSkipped:
		return true
	}
	return false
}

// Settled reports whether the line ends a waiting state: the container runs what the registry
// has (up to date, or updated to it).
func (c ContainerReport) Settled() bool {
	return c.Outcome == OutcomeUpToDate || c.Outcome == OutcomeUpdated
}

// Notice is what a waiting line says, as notifications remember it: the same notice again is
// not news. Another digest, image, outcome or reason is.
func (c ContainerReport) Notice() string {
	reason := ""
	if c.Failure != nil {
		reason = string(c.Failure.Reason)
	}
	return strings.Join([]string{string(c.Outcome), reason, c.NewImage, c.NewDigest}, " ")
}

// Failure names where and why something went wrong, in package failure's vocabulary (docs/api.md
// lists every stage and reason).
type Failure struct {
	Stage   failure.Stage  `json:"stage"`
	Reason  failure.Reason `json:"reason"`
	Message string         `json:"message"`
}

// ContainerReport is one container's (or Swarm service's) line in a run report.
type ContainerReport struct {
	Kind      Kind          `json:"kind,omitempty"` // "service" for a Swarm service; absent for a container
	Host      string        `json:"host,omitempty"` // the engine's name when hosts are configured
	Name      string        `json:"name"`
	ID        string        `json:"id"`               // the container ID at the start of the run
	NewID     string        `json:"new_id,omitempty"` // the replacement's ID after an update
	Image     string        `json:"image"`            // reference the container runs (repo:tag)
	NewImage  string        `json:"new_image,omitempty"`
	Policy    string        `json:"policy,omitempty"`
	Mode      string        `json:"mode,omitempty"`
	OldDigest string        `json:"old_digest,omitempty"`
	NewDigest string        `json:"new_digest,omitempty"`
	Outcome   Outcome       `json:"outcome"`
	Message   string        `json:"message,omitempty"` // skipped: why; rolled_back: what failed
	Failure   *Failure      `json:"failure,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	Downtime  time.Duration `json:"downtime_ns,omitempty"` // old stopped -> new started
	// Replicas are a service's tasks: after an update, how many run its image.
	Replicas *Replicas `json:"replicas,omitempty"`
	Hooks    []HookRun `json:"hooks,omitempty"` // lifecycle hooks run, in order
}

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // the cron schedule
	TriggerHTTP     Trigger = "http"     // POST /v1/update
	TriggerOnce     Trigger = "once"     // watcher once
	TriggerCheck    Trigger = "check"    // watcher check (a dry run)
	TriggerRecovery Trigger = "recovery" // a starting daemon finished transactions a crash left
	TriggerWebhook  Trigger = "webhook"  // POST /v1/webhooks/{kind}: a registry said a tag was pushed
	TriggerRollback Trigger = "rollback" // watcher rollback, POST /v1/rollback
	TriggerApprove  Trigger = "approve"  // POST /v1/approve: a run that applies an approved update
)

// Report is one run: what triggered it, when, and a line per container it looked at.
type Report struct {
	ID         string            `json:"id"`
	Trigger    Trigger           `json:"trigger"`
	DryRun     bool              `json:"dry_run,omitempty"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Containers []ContainerReport `json:"containers"`
	// Watched is how many containers the engine held that this watcher watches, as the run saw
	// them (whatever the request's filter); nil when the run did not observe the engine (a
	// recovery run, or the engine was unreachable).
	Watched *int `json:"watched,omitempty"`
	// WatchedServices is how many Swarm services it watches, counted as Watched counts containers
	// (which do not include them).
	WatchedServices int `json:"watched_services,omitempty"`
	// Plan is what the run decided to do, hold and leave (nil when there was nothing to decide).
	Plan  *Plan  `json:"plan,omitempty"`
	Error string `json:"error,omitempty"` // the run as a whole failed (no engine reachable)
	// Hosts are the engines the run looked at, when hosts are configured: which answered.
	Hosts []HostReport `json:"hosts,omitempty"`
}

// HostReport is one engine's part in a run.
type HostReport struct {
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	Watched   int    `json:"watched"` // containers watched there, as the run saw them
	// WatchedServices are the Swarm services watched there (a manager).
	WatchedServices int    `json:"watched_services,omitempty"`
	Error           string `json:"error,omitempty"` // why it could not be observed
}

// Unreachable returns the names of the hosts the run could not reach.
func (r *Report) Unreachable() []string {
	var out []string
	for _, h := range r.Hosts {
		if !h.Reachable {
			out = append(out, h.Name)
		}
	}
	return out
}

// Count returns how many containers ended with outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, c := range r.Containers {
		if c.Outcome == o {
			n++
		}
	}
	return n
}

// Failed reports whether any container could not be checked or updated, a host could not be
// reached, or the run itself failed: `watcher once` exits 1 then. A rollback is a failed update too.
func (r *Report) Failed() bool {
	return r.Error != "" || r.Count(OutcomeFailed) > 0 || r.Count(OutcomeRolledBack) > 0 || len(r.Unreachable()) > 0
}

// Changed reports whether the run changed or failed something worth telling people about.
func (r *Report) Changed() bool {
	return r.Failed() || r.Count(OutcomeUpdated) > 0 || r.Count(OutcomeUpdateAvailable) > 0 || r.Count(OutcomeRestarted) > 0 || r.Count(OutcomeHandedOver) > 0
}

// Request says what a run should look at. The zero Request is "every watched container"; the
// filters add up: a container is looked at when any of them selects it.
type Request struct {
	// Hosts are the hosts to look at (names), empty = every host; the filters below select among
	// the watched containers of those hosts.
	Hosts      []string
	Containers []string // names (without the leading slash), on any of the hosts
	Images     []string // image references as containers name them
	// Pushed are references a registry said were pushed (webhooks), with or without a tag: the
	// containers running that repository and tag (any tag under a tag policy). Trigger drops the
	// ones no watched container runs instead of refusing them.
	Pushed []string
	// Schedules are the cron specs whose tick asked for the run: the containers checked on them
	// (their watcher.schedule label, else Options.Schedule).
	Schedules []string
	Trigger   Trigger
	DryRun    bool // plan only: report update_available instead of updating
	// Force lifts the holds a person may lift for this request's containers: maintenance windows,
	// and the digest a manual rollback undid (POST /v1/update?force=true).
	Force bool

	forced []Request // after a merge: the filters of the merged requests that were forced
	// rollback names the container a rollback run puts back on its previous image (Rollback), and
	// rollbackKind says whether it is a container or a service of that name.
	rollback     string
	rollbackKind Kind
}

// State is a watched container's state as GET /v1/containers shows it.
type State string

const (
	StateUpToDate        State = "up_to_date"
	StateUpdateAvailable State = "update_available"
	StateUpdating        State = "updating"
	StateFailed          State = "failed"
	StateUnknown         State = "unknown"
)

// ContainerStatus is the latest known state of one watched container or Swarm service.
type ContainerStatus struct {
	Kind         Kind      `json:"kind,omitempty"` // "service" for a Swarm service; absent for a container
	Host         string    `json:"host,omitempty"` // the engine's name when hosts are configured
	Name         string    `json:"name"`
	ID           string    `json:"id"`
	Image        string    `json:"image"`
	Policy       string    `json:"policy"`
	Mode         string    `json:"mode"`
	LocalDigest  string    `json:"local_digest,omitempty"`
	RemoteDigest string    `json:"remote_digest,omitempty"`
	State        State     `json:"state"`
	LastError    *Failure  `json:"last_error,omitempty"`
	CheckedAt    time.Time `json:"checked_at,omitzero"`
	// Replicas are a service's tasks, as the manager's service list shows them.
	Replicas *Replicas `json:"replicas,omitempty"`
	// NewImage is the reference an available update moves to under a tag policy ("" = the same).
	NewImage string `json:"new_image,omitempty"`
	// Message is what the last run said of it besides a failure: why an update is held, ...
	Message string `json:"message,omitempty"`
	// UpdatedAt is when the watcher last committed an update of it (zero: none recorded).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Approval is the update it waits for a person's decision on, or the decision (approve.go).
	Approval *Approval `json:"approval,omitempty"`
}

// Observer is told about every finished run (metrics, notifications). It must not block for long:
// slow work belongs on its own goroutine.
type Observer interface {
	RunFinished(r *Report)
}

// NotWatchedError is returned by a trigger that names containers the daemon does not watch.
type NotWatchedError struct{ Names []string }

func (e *NotWatchedError) Error() string {
	return "not watched: " + strings.Join(e.Names, ", ")
}

// ErrRunNotFound is returned when a run id is not in memory or history.
var ErrRunNotFound = errors.New("run not found")

// ErrHandedOver is returned by a trigger after the watcher handed over to its successor.
var ErrHandedOver = errors.New("this watcher handed over to its successor (self-update); trigger the successor instead")
