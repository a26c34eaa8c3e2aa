package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/watcher-dev/watcher/internal/defaults"
	"github.com/watcher-dev/watcher/internal/keylock"
	"github.com/watcher-dev/watcher/store"
)

// Labels lifecycle puts on the containers it creates.
const (
	// LabelTxID marks a container as created by the transaction with this id (with "-rollback"
	// appended: recreated from the snapshot by its rollback). The label alone proves nothing —
	// `docker commit` images and label-copying clones inherit it — so a container is taken as a
	// transaction's own only when the journal recorded its ID, or when it has that transaction's
	// exact temporary name as well (a create the journal did not see complete); see txn.ours.
	// Nothing else is ever removed, except the replaced container itself.
	LabelTxID = "watcher.txid"
)

// nameMarker is in every temporary name lifecycle gives a container (see IsTemporaryName): the
// set-aside old container is "<name>-watcher-<txid>", the new one before its rename
// "<name>-watcher-<txid>-new".
const nameMarker = "-watcher-"

// Options are the defaults for every update; a Spec can override the durations.
type Options struct {
	StopTimeout   time.Duration // for containers without their own StopTimeout; default 10s
	Verify        time.Duration // the new container must run this long; default 10s
	HealthTimeout time.Duration // longest wait for "healthy"; default 2m
	Logger        *slog.Logger  // default slog.Default()

	// SelfID is the watcher's own container ID ("" when it does not run in a container). Recover
	// needs it to tell, for a self-update in flight, whether it runs in the predecessor or the
	// successor (handover.go).
	SelfID string
	// SelfCheck, when set, is the successor's proof that it serves (its own /healthz), asked
	// after it has run for the verify window during a self-update.
	SelfCheck func(ctx context.Context) error

	// Host names the engine this Manager works on when one watcher has several ("" = the only
	// one). Its transactions are journaled with it, and Recover finishes only this host's (see
	// Manager.mine): several Managers share one journal, one per engine.
	Host string
}

// Journal is where transactions are written before each step (store.Store). Records are opaque
// bytes to it, keyed by transaction id and indexed by the replaced container's ID.
type Journal interface {
	PutJournal(txid, containerID string, data []byte) error
	Journal(txid string) (store.JournalEntry, error)
	Journals() ([]store.JournalEntry, error)
	JournalsFor(containerID string) ([]store.JournalEntry, error)
	DeleteJournal(txid string) error
}

var _ Journal = (*store.Store)(nil)

// Manager runs update transactions. It is safe for concurrent use; one container is never
// touched by two transactions at once.
type Manager struct {
	d   Docker
	s   Journal
	o   Options
	log *slog.Logger

	settle     time.Duration // see defaultSettle
	stopMargin time.Duration // see defaultStopMargin
	poll       time.Duration // verify's fallback poll, see verifyPoll
	drain      time.Duration // see defaultDrain
	// afterJournal, when set (by tests), runs after every successful journal write: the crash
	// tests kill the process there.
	afterJournal func(seq int, step string)

	busy keylock.Locks // by container ID: one transaction on a container at a time
}

// New returns a Manager on engine d with journal s.
func New(d Docker, s Journal, o Options) *Manager {
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaults.StopTimeout
	}
	if o.Verify <= 0 {
		o.Verify = defaults.Verify
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = defaults.HealthTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Manager{d: d, s: s, o: o, log: o.Logger, settle: defaultSettle, stopMargin: defaultStopMargin, poll: verifyPoll, drain: defaultDrain}
}

// lock waits until no other transaction works on container id, then claims it.
func (m *Manager) lock(ctx context.Context, id string) (unlock func(), err error) {
	return m.busy.Lock(ctx, id)
}

// Spec says which container to replace and how.
type Spec struct {
	ContainerID string // the container to replace: an ID, never a name alone
	Image       string // reference to run, repo:tag (a new tag under semver policies)
	PullRef     string // what to pull: repo@sha256:... from the registry check; "" = Image
	// ImageID, when the engine still has that image, is run without a pull (tagged as Image): a
	// rollback to an image update.keep_images kept. Otherwise PullRef is pulled; without a
	// PullRef the transaction fails before anything is touched (Image's tag may have moved).
	ImageID      string
	RegistryAuth string // X-Registry-Auth for the pull, "" = anonymous; never journaled
	// Recreate skips the pull and recreates the container on its current image (for dependents
	// of a replaced container). Image may be "" (= the container's own reference).
	Recreate bool
	// Replaced maps old container IDs to new ones for containers replaced earlier in this run;
	// container:<id> network/ipc/pid modes and volumes_from entries are rewritten through it.
	Replaced map[string]string

	StopSignal    string         // "" = the container's own
	StopTimeout   *time.Duration // nil = the container's own StopTimeout, else Options.StopTimeout
	Verify        time.Duration  // 0 = Options.Verify
	HealthTimeout time.Duration  // 0 = Options.HealthTimeout
	// Rollback true (update.rollback, on by default) undoes any failure after the pull. False only keeps a new
	// container that is running but failed its health gate (Outcome failed, the old one removed):
	// a new container that exited, never ran or crash-loops is rolled back all the same, because a
	// failure must not leave the service down when the old container can run.
	Rollback bool
	// StartFirst (watcher.update-order=start-first) starts and verifies the new container under its
	// temporary name, on the old one's networks with its aliases, while the old one still serves;
	// only then is the old one set aside, taken off its networks and stopped (startfirst.go). A
	// container that publishes host ports, has a static IP or MAC address, shares another's
	// network namespace or lends its own is refused before anything is touched (Unsupported).
	// A container that is not running is replaced as usual.
	StartFirst bool

	// OldImage, when the caller has inspected the container's image already (the updater's
	// check), saves the transaction that inspect. Details of another image than the snapshot's
	// are ignored and the image is inspected. Never journaled as given: the record keeps what
	// the transaction used.
	OldImage *ImageDetails
	// Events, when not nil, is where verify hears of the new container's events instead of
	// opening a stream of its own on the engine: the daemon passes the stream it keeps open
	// anyway (one engine request less per update). It must behave as the engine's: replay from
	// Since, and end with an error when it can no longer deliver (verify then polls).
	Events EventSource

	// Started, if not nil, is called exactly once per Replace call: right after the new
	// container has been started, before it is verified — the end of the disruptive part (pull,
	// create, stop, rename, start) — or, when the transaction ends without getting there (any
	// failure up to and including the start, an unchanged image, a container that was not
	// running and so is not started, a Replace that finds its transaction already done), just
	// before Replace returns. When Replace finishes an unfinished earlier transaction instead,
	// it is called before that one's new container is verified again, or else at the end.
	// A rollback after a failed verify therefore runs after Started. The updater uses it to free
	// its update.parallel slot so that many verify windows overlap while at most N containers
	// are stopped, created or started at once. It runs on Replace's goroutine and should return
	// quickly; it is never journaled.
	Started func()
}

// Outcome is how a transaction ended.
type Outcome string

// Outcomes.
const (
	OutcomeUpdated    Outcome = "updated"     // the new container runs and the old one is gone
	OutcomeUnchanged  Outcome = "unchanged"   // the pulled image is the one the container runs
	OutcomeRolledBack Outcome = "rolled_back" // the update failed; the old container runs again
	OutcomeFailed     Outcome = "failed"      // failed before any change, or the rollback failed
	// OutcomeHandedOver: a self-update's successor runs (or was started) and finishes the
	// transaction; this process has released the journal and must only wait (see Handover).
	OutcomeHandedOver Outcome = "handed_over"
)

// Result reports one transaction.
type Result struct {
	TxID       string
	Name       string // the container's name, without the leading "/"
	OldID      string
	NewID      string // the container running after the transaction ("" if none was created)
	OldImageID string
	NewImageID string
	Outcome    Outcome
	Err        *Error        // nil on updated/unchanged
	Downtime   time.Duration // old container stopped -> new container started
	// Stopped: the old container was stopped (or its stop asked for) at some point, so whatever
	// depends on it was disturbed even when the update was rolled back. False means the old
	// container never stopped (a failure before the stop, an unchanged image).
	Stopped bool
	// SuccessorWait, on an OutcomeHandedOver result, is the longest a self-update's successor
	// verifies itself once it runs: its verify window plus its health timeout, as the journal
	// gives them to it. The predecessor waits by it (plus its own grace) — one source for both.
	SuccessorWait time.Duration
}
