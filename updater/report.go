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
)

// Failure names where and why something went wrong, in package failure's vocabulary (docs/api.md
// lists every stage and reason).
type Failure struct {
	Stage   failure.Stage  `json:"stage"`
	Reason  failure.Reason `json:"reason"`
	Message string         `json:"message"`
}

// ContainerReport is one container's line in a run report.
type ContainerReport struct {
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
	Hooks     []HookRun     `json:"hooks,omitempty"`       // lifecycle hooks run, in order
}

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule" // the cron schedule
	TriggerHTTP     Trigger = "http"     // POST /v1/update
	TriggerOnce     Trigger = "once"     // watcher once
	TriggerCheck    Trigger = "check"    // watcher check (a dry run)
	TriggerRecovery Trigger = "recovery" // a starting daemon finished transactions a crash left
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
	// Plan is what the run decided to do, hold and leave (nil when there was nothing to decide).
	Plan  *Plan  `json:"plan,omitempty"`
	Error string `json:"error,omitempty"` // the run as a whole failed (engine unreachable)
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

// Failed reports whether any container could not be checked or updated, or the run itself failed:
// `watcher once` exits 1 then. A rollback is a failed update too.
func (r *Report) Failed() bool {
	return r.Error != "" || r.Count(OutcomeFailed) > 0 || r.Count(OutcomeRolledBack) > 0
}

// Changed reports whether the run changed or failed something worth telling people about.
func (r *Report) Changed() bool {
	return r.Failed() || r.Count(OutcomeUpdated) > 0 || r.Count(OutcomeUpdateAvailable) > 0 || r.Count(OutcomeRestarted) > 0 || r.Count(OutcomeHandedOver) > 0
}

// Request says what a run should look at. The zero Request is "every watched container".
type Request struct {
	Containers []string // names (without the leading slash); empty = all
	Images     []string // image references as containers name them; empty = all
	Trigger    Trigger
	DryRun     bool // plan only: report update_available instead of updating
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

// ContainerStatus is the latest known state of one watched container.
type ContainerStatus struct {
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
