package updater

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/watcher-dev/watcher/store"
)

// Approvals. update.approve (or a container's watcher.approve label) names the kinds of update
// that wait for a person: digest (same tag, new digest), patch, minor, major (a move to a newer
// version tag, by the first number that changed). Such an update is not applied: the plan holds
// it as pending_approval, and the state file keeps the exact digest it would apply. Then:
//
//   - Approve (POST /v1/approve) marks that digest approved and asks for a run of the container,
//     which applies it like any update (maintenance windows still apply);
//   - Reject (POST /v1/reject) marks it rejected: runs hold it (skipped) until a newer digest
//     appears, which waits for approval again;
//   - when the registry moved on meanwhile, what was approved or rejected lapses: the new digest
//     is a new pending entry, and the report line says so.
//
// An entry is forgotten once the container runs what the registry has (up to date or updated).
// A manual rollback is a person's decision too: approvals never hold it.

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
)

// Approval is an update that waits for (or got) a person's decision, as the state file keeps it
// and GET /v1/containers shows it.
type Approval struct {
	State     string    `json:"state"`               // pending, approved or rejected
	Digest    string    `json:"digest"`              // the exact digest the decision is about
	NewImage  string    `json:"new_image,omitempty"` // the reference it moves to ("" = the same)
	Kind      string    `json:"kind"`                // digest, patch, minor or major
	Since     time.Time `json:"since"`               // when it started waiting
	DecidedAt time.Time `json:"decided_at,omitzero"` // when it was approved or rejected
	// Lapsed is a digest approved or rejected earlier that the registry moved on from.
	Lapsed string `json:"lapsed,omitempty"`
}

// ApprovalRecords keeps the approvals across restarts (store.Store), by container. It is found
// on the History by type assertion; without it nothing can wait for approval, and updates that
// would are held with a line saying so.
type ApprovalRecords interface {
	PutApproval(key string, data []byte) error // nil data forgets key
	Approvals() (map[string][]byte, error)
}

var _ ApprovalRecords = (*store.Store)(nil)

// NoApprovalError says that a container has no update waiting for a decision (the API answers 409).
type NoApprovalError struct{ Name, Why string }

func (e *NoApprovalError) Error() string { return e.Name + ": " + e.Why }

// approvalKinds are the values update.approve and watcher.approve accept.
var approvalKinds = []string{PolicyDigest, PolicyPatch, PolicyMinor, PolicyMajor}

// ParseApproveKinds reads a comma list of update kinds (watcher.approve); "" is none.
func ParseApproveKinds(v string) ([]string, error) {
	var out []string
	for _, k := range strings.Split(v, ",") {
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			continue
		}
		if !slices.Contains(approvalKinds, k) {
			return nil, fmt.Errorf("unknown update kind %q; want any of %s", k, strings.Join(approvalKinds, ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// versionStep is the kind of a move from version cur to v of the same shape: major, minor or
// patch by the first number that changed (a pre-release to its release is a patch).
func versionStep(cur, v version) string {
	for i := range cur.nums {
		if cur.nums[i] != v.nums[i] {
			switch i {
			case 0:
				return PolicyMajor
			case 1:
				return PolicyMinor
			}
			break
		}
	}
	return PolicyPatch
}

// approvalKey is the key of c's approval in the state file: its target, "host/name" with hosts.
func approvalKey(c *Container) string { return c.key() }

// approvalBook reads and writes the approvals; one mutex orders the plan's pending entries and
// people's decisions, so a decision is never overwritten by a run that planned before it.
type approvalBook struct {
	mu sync.Mutex
}

func (u *Updater) approvalStore() ApprovalRecords {
	r, _ := u.history.(ApprovalRecords)
	return r
}

// approvals reads every approval, by key (unreadable ones are skipped).
func (u *Updater) approvals() map[string]*Approval {
	out := map[string]*Approval{}
	rs := u.approvalStore()
	if rs == nil {
		return out
	}
	rows, err := rs.Approvals()
	if err != nil {
		u.log.Warn("could not read the approvals", "err", err)
	}
	for key, b := range rows {
		var a Approval
		if json.Unmarshal(b, &a) == nil {
			out[key] = &a
		}
	}
	return out
}

func (u *Updater) putApproval(key string, a *Approval) error {
	rs := u.approvalStore()
	if rs == nil {
		return nil
	}
	var b []byte
	if a != nil {
		var err error
		if b, err = json.Marshal(a); err != nil {
			return err
		}
	}
	return rs.PutApproval(key, b)
}

// approvalHold is the hold of an update that waits for a person, or nil when it needs no
// approval or its digest was approved. approvals nil: the state file cannot keep them.
func approvalHold(c Candidate, approvals map[string]*Approval) *Hold {
	t := c.Container
	if c.Kind == "" || !slices.Contains(t.Settings.Approve, c.Kind) {
		return nil
	}
	hold := func(o Outcome, why string) *Hold { return &Hold{Target: t.Target(), Outcome: o, Why: why} }
	if approvals == nil {
		return hold(OutcomeSkipped, fmt.Sprintf("a %s update waits for approval, but no state file keeps approvals (%s)", c.Kind, c.Cause))
	}
	q := "?container=" + t.Name
	if t.Host != "" {
		q += "&host=" + t.Host
	}
	ask := "approve: POST /v1/approve" + q + "; reject: POST /v1/reject" + q
	a := approvals[approvalKey(t)]
	switch {
	case a != nil && a.Digest == c.NewDigest && a.State == ApprovalApproved:
		return nil
	case a != nil && a.Digest == c.NewDigest && a.State == ApprovalRejected:
		return hold(OutcomeSkipped, fmt.Sprintf("rejected at %s: %s is not applied; a newer digest waits for approval again (%s)",
			a.DecidedAt.Format(time.RFC3339), shortDigest(a.Digest), c.Cause))
	case a != nil && a.Digest != c.NewDigest && a.State != ApprovalPending:
		return hold(OutcomePendingApproval, fmt.Sprintf("the %s of %s lapsed: the registry moved on to %s, which waits for approval (%s); %s",
			map[string]string{ApprovalApproved: "approval", ApprovalRejected: "rejection"}[a.State], shortDigest(a.Digest), shortDigest(c.NewDigest), c.Cause, ask))
	}
	return hold(OutcomePendingApproval, fmt.Sprintf("a %s update waits for approval (%s); %s", c.Kind, c.Cause, ask))
}

// notePending records the updates this plan holds for approval: a new pending entry for each
// digest no entry is about yet (one about another digest lapses). A dry run records nothing.
func (u *Updater) notePending(cands []Candidate, o planOptions) {
	if o.DryRun || o.Approvals == nil {
		return
	}
	u.book.mu.Lock()
	defer u.book.mu.Unlock()
	now := u.opts.Now().UTC()
	current := u.approvals()
	for _, c := range cands {
		h := approvalHold(c, o.Approvals)
		if h == nil || h.Outcome != OutcomePendingApproval {
			continue
		}
		key := approvalKey(c.Container)
		old := current[key]
		if old != nil && old.Digest == c.NewDigest {
			continue // a decision made while this run planned stands
		}
		a := &Approval{State: ApprovalPending, Digest: c.NewDigest, NewImage: c.NewImage, Kind: c.Kind, Since: now}
		if old != nil && old.State != ApprovalPending {
			a.Lapsed = old.Digest
		}
		if err := u.putApproval(key, a); err != nil {
			u.log.Warn("could not record the update waiting for approval", "container", key, "err", err)
		}
	}
}

// settleApprovals forgets the approvals of targets that now run what the registry has.
func (u *Updater) settleApprovals(targets []*Container, lines map[string]*ContainerReport) {
	if u.approvalStore() == nil {
		return
	}
	u.book.mu.Lock()
	defer u.book.mu.Unlock()
	current := u.approvals()
	for _, t := range targets {
		key := approvalKey(t)
		if l := lines[key]; l != nil && l.Settled() && current[key] != nil {
			if err := u.putApproval(key, nil); err != nil {
				u.log.Warn("could not forget a settled approval", "container", key, "err", err)
			}
		}
	}
}

// Approve approves the update container name (on host, "" = whichever host has it) waits for,
// its exact digest, and asks for a run of it, which applies the update unless the registry moved
// on meanwhile (then the approval lapses and the new digest waits). An *UnknownHostError,
// *NotWatchedError or *NoApprovalError says why nothing was done.
func (u *Updater) Approve(ctx context.Context, host, name string) (Approval, string, <-chan struct{}, error) {
	c, a, err := u.decide(ctx, host, name, ApprovalApproved)
	if err != nil {
		return a, "", nil, err
	}
	req := Request{Trigger: TriggerApprove, Containers: []string{name}}
	if c.Host != "" {
		req.Hosts = []string{c.Host}
	}
	id, done, err := u.Trigger(ctx, req)
	return a, id, done, err
}

// Reject rejects the update container name (on host) waits for: runs hold it until a newer
// digest appears.
func (u *Updater) Reject(ctx context.Context, host, name string) (Approval, error) {
	_, a, err := u.decide(ctx, host, name, ApprovalRejected)
	return a, err
}

// decide records a person's decision about the update container name waits for. A rejected
// update may still be approved (a change of mind), an approved one rejected until it is applied.
func (u *Updater) decide(ctx context.Context, host, name, state string) (*Container, Approval, error) {
	c, err := u.findContainer(ctx, host, name)
	if err != nil {
		return nil, Approval{}, err
	}
	if u.approvalStore() == nil {
		return nil, Approval{}, &NoApprovalError{Name: name, Why: "no state file keeps approvals"}
	}
	u.book.mu.Lock()
	key := approvalKey(c)
	a := u.approvals()[key]
	if a == nil {
		u.book.mu.Unlock()
		return nil, Approval{}, &NoApprovalError{Name: key, Why: "no update waits for approval (the next run that finds one records it)"}
	}
	a.State, a.DecidedAt = state, u.opts.Now().UTC()
	err = u.putApproval(key, a)
	u.book.mu.Unlock()
	if err != nil {
		return nil, Approval{}, fmt.Errorf("recording the decision: %w", err)
	}
	u.log.Info("update "+state, "container", key, "digest", a.Digest, "image", a.NewImage, "kind", a.Kind)
	u.noteDecision(c, a)
	return c, *a, nil
}

// noteDecision shows a decision in the container's known state at once (and tells the live
// observers), before the next run looks at it.
func (u *Updater) noteDecision(c *Container, a *Approval) {
	u.loadStatus()
	u.mu.Lock()
	st, ok := u.status[c.key()]
	u.mu.Unlock()
	if !ok || st.ID != c.ID {
		return
	}
	st.Approval = a
	u.setStatus(c, st)
}
