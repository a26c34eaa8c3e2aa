package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/failure"
)

// Journal steps, in the order a transaction takes them. Each is written to the journal before
// it is taken; a record's Step is the last one started.
const (
	stepSnapshot = "snapshot"
	stepPull     = "pull"
	stepCreate   = "create"    // the new container, under a temporary name
	stepStop     = "stop"      // the old container
	stepSetAside = "set_aside" // rename old -> <name>-watcher-<txid>
	stepRename   = "rename"    // rename new -> <name>
	stepStart    = "start"
	// Start-first (startfirst.go): the new container is started and verified under its temporary
	// name while the old one serves; then set_aside, rename, disconnect and stop follow.
	stepStartNew        = "start_new"
	stepVerifyNew       = "verify_new"
	stepDisconnect      = "disconnect" // the old container off its networks, then a drain before its stop
	stepHandover        = "handover"   // self-update: the store and listener are released, the successor started
	stepVerify          = "verify"
	stepCommit          = "commit"
	stepRollback        = "rollback"         // decided: undo (Cause says why)
	stepRollbackRemove  = "rollback_remove"  // remove the containers this transaction created
	stepRollbackRestore = "rollback_restore" // old container back under its name, or recreated
	stepRollbackStart   = "rollback_start"   // start it and see it run
	stepDone            = "done"
)

// record is a transaction's journal entry: enough to finish or undo it from a fresh process.
type record struct {
	TxID        string
	Host        string `json:",omitempty"` // the engine (Options.Host); "" = the only one, or written before hosts
	ContainerID string // the container being replaced
	Name        string // its name, without "/"
	Step        string
	Seq         int // journal writes so far

	Spec specRecord

	Snapshot   json.RawMessage `json:",omitempty"` // the old container's inspect, verbatim
	OldImage   *ImageDetails   `json:",omitempty"`
	OldImageID string          `json:",omitempty"`
	NewImage   string          `json:",omitempty"` // reference the new container is created from
	NewImageID string          `json:",omitempty"`
	NewID      string          `json:",omitempty"` // the new container, once created
	RestoredID string          `json:",omitempty"` // old container recreated from the snapshot on rollback
	AutoRemove bool            `json:",omitempty"`
	WasRunning bool            `json:",omitempty"`
	Stopped    bool            `json:",omitempty"` // the old container's stop was asked for
	// Disconnected: a start-first update took the old container off its networks (a rollback
	// connects it again, from the snapshot).
	Disconnected bool `json:",omitempty"`
	// Handover marks a self-update: ContainerID is the watcher that started it (the
	// predecessor), NewID its successor, and the successor finishes it (see handover.go).
	Handover bool `json:",omitempty"`

	Cause    *errRecord `json:",omitempty"` // why the transaction is rolled back or failed
	Outcome  Outcome    `json:",omitempty"` // set with stepDone
	Downtime time.Duration

	Started time.Time
	Updated time.Time
}

// specRecord is the Spec minus credentials.
type specRecord struct {
	Image         string
	PullRef       string            `json:",omitempty"`
	ImageID       string            `json:",omitempty"`
	Recreate      bool              `json:",omitempty"`
	Replaced      map[string]string `json:",omitempty"`
	StopSignal    string            `json:",omitempty"`
	StopTimeout   *time.Duration    `json:",omitempty"`
	Verify        time.Duration     `json:",omitempty"`
	HealthTimeout time.Duration     `json:",omitempty"`
	Rollback      bool              `json:",omitempty"`
	StartFirst    bool              `json:",omitempty"`
}

type errRecord struct {
	Stage   failure.Stage
	Reason  failure.Reason
	Message string
	// Verdict: the failure is the new container's own (it could not run, exited, was killed for
	// memory, is unhealthy, crash-loops), not the engine's or the connection's: rolling forward
	// would only fail again (see cannotGoBack).
	Verdict bool `json:",omitempty"`
}

// causeOf is e as the journal keeps it.
func causeOf(e *Error) *errRecord {
	return &errRecord{Stage: e.Stage, Reason: e.Reason, Message: oneLine(e), Verdict: isVerdict(e.Reason) && !e.notTried}
}

// ImageDetails is what a transaction needs of the old image: its ID, its platform (the pull asks
// for the same one) and the defaults its config gives a container (subtracted from the snapshot,
// so that the new image's own defaults apply). It is journaled with the transaction.
type ImageDetails struct {
	ID           string
	OS           string `json:",omitempty"`
	Architecture string `json:",omitempty"`
	Variant      string `json:",omitempty"`
	RepoTags     []string
	Config       *dockerspec.DockerOCIImageConfig `json:",omitempty"`
}

func toSpecRecord(s Spec) specRecord {
	return specRecord{Image: s.Image, PullRef: s.PullRef, ImageID: s.ImageID, Recreate: s.Recreate, Replaced: s.Replaced,
		StopSignal: s.StopSignal, StopTimeout: s.StopTimeout, Verify: s.Verify, HealthTimeout: s.HealthTimeout,
		Rollback: s.Rollback, StartFirst: s.StartFirst}
}

func (r *record) snapshot() (container.InspectResponse, error) {
	var ins container.InspectResponse
	err := json.Unmarshal(r.Snapshot, &ins)
	return ins, err
}

// configuredMAC is the MAC address the user set (Config.MacAddress, absent from the typed
// Config since API 1.52), or "".
func (r *record) configuredMAC() string {
	var v struct{ Config struct{ MacAddress string } }
	_ = json.Unmarshal(r.Snapshot, &v)
	return v.Config.MacAddress
}

func (r *record) finished() bool { return r.Step == stepDone }

func (r *record) result() Result {
	res := Result{TxID: r.TxID, Name: r.Name, OldID: r.ContainerID, NewID: r.NewID,
		OldImageID: r.OldImageID, NewImageID: r.NewImageID, Outcome: r.Outcome, Downtime: r.Downtime, Stopped: r.Stopped}
	if res.Outcome == "" {
		res.Outcome = OutcomeFailed
	}
	if res.NewID == "" {
		res.NewID = r.RestoredID // the old container, recreated from the snapshot on rollback
	}
	if r.Cause != nil && res.Outcome != OutcomeUpdated && res.Outcome != OutcomeUnchanged {
		res.Err = &Error{ContainerID: r.ContainerID, Stage: r.Cause.Stage, Reason: r.Cause.Reason, Message: r.Cause.Message}
	}
	return res
}

// Temporary names: asideName is the set-aside old container's, tempName the new container's
// before its rename, restoreName the old container's when it is recreated from the snapshot on
// rollback, before its rename.
func asideName(name, txid string) string   { return name + nameMarker + txid }
func tempName(name, txid string) string    { return name + nameMarker + txid + "-new" }
func restoreName(name, txid string) string { return name + nameMarker + txid + "-restore" }

// temporaryName matches exactly the names above: a transaction id is 9 base-36 digits of time
// and 6 hex digits (newTxID).
var temporaryName = regexp.MustCompile(`^.+` + nameMarker + `[0-9a-z]{9}[0-9a-f]{6}(-new|-restore)?$`)

// IsTemporaryName reports whether name (with or without its leading "/") is one an update gives
// a container for a while: "<name>-watcher-<txid>", optionally followed by "-new" or "-restore".
// A name that merely contains "-watcher-" (a compose project called "home-watcher") is not one:
// such containers are updated like any other.
func IsTemporaryName(name string) bool {
	return temporaryName.MatchString(strings.TrimPrefix(name, "/"))
}

// restoredLabel marks a container recreated from the snapshot during rollback.
func restoredLabel(txid string) string { return txid + "-rollback" }

// newTxID returns a transaction id that sorts by time and is valid in container names.
func newTxID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ts := strconv.FormatInt(time.Now().UnixMilli(), 36)
	return strings.Repeat("0", max(0, 9-len(ts))) + ts + hex.EncodeToString(b)
}

// journal writes r with step as the step about to be taken.
func (t *txn) journal(step string) error {
	r := t.r
	r.Step = step
	r.Seq++
	r.Updated = time.Now()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := t.m.s.PutJournal(r.TxID, r.ContainerID, b); err != nil {
		return err
	}
	if t.m.log.Enabled(context.Background(), slog.LevelDebug) {
		t.log().Debug("journal", "step", step, "seq", r.Seq, "since_start", time.Since(r.Started).Round(time.Millisecond))
	}
	if t.m.afterJournal != nil {
		t.m.afterJournal(r.Seq, step)
	}
	return nil
}
