package lifecycle

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// keepFinished is how long finished journal records are kept (they make a repeated Replace of a
// replaced container a no-op).
const keepFinished = 7 * 24 * time.Hour

// defaultSettle is how long Recover lets an interrupted transaction's last engine request
// finish (Manager.settle; tests that crash before any request is sent set it to 0).
const defaultSettle = 3 * time.Second

// Recover drives every unfinished journaled transaction to commit or rollback, and prunes old
// finished records. Call it before any cycle: after a crash or kill -9 at any instant it leaves
// each container running on the old image or the new one, with no temporary containers left.
//
// The rule: a transaction that had not stopped the old container is undone (the old one never
// stopped); one interrupted while verifying has its new container verified again, then
// committed or undone; one that was committing is committed; anything else is rolled back.
// A self-update follows handover.go's rules; when they say this process must step back, Recover
// returns at once with that OutcomeHandedOver result last.
func (m *Manager) Recover(ctx context.Context) []Result {
	entries, err := m.s.Journals()
	if err != nil {
		m.log.Error("reading the journal", "err", err)
		return nil
	}
	var out []Result
	defer m.sweep(ctx)
	for _, e := range entries {
		var r record
		if err := json.Unmarshal(e.Data, &r); err != nil {
			m.log.Error("unreadable journal record; left for a human", "tx", e.TxID, "container", m.nameOf(ctx, e.ContainerID), "id", shortID(e.ContainerID), "err", err)
			continue
		}
		if r.finished() {
			if time.Since(r.Updated) > keepFinished {
				_ = m.s.DeleteJournal(e.TxID)
			}
			continue
		}
		if !m.mine(ctx, &r) {
			continue
		}
		unlock, err := m.lock(ctx, r.ContainerID)
		if err != nil {
			break
		}
		res := m.resume(ctx, &r, nil)
		unlock()
		out = append(out, res)
		if res.Outcome == OutcomeHandedOver && m.o.SelfID != "" && res.OldID == m.o.SelfID {
			// This process is a self-update's predecessor and must give the journal up at
			// once: its successor finishes the rest.
			return out
		}
	}
	return out
}

// mine reports whether the unfinished transaction r is this Manager's to finish: journaled on
// its host, or — when one side has no host name, because hosts were configured (or removed)
// since — about a container this engine holds. Container IDs are unique across engines, so only the engine that
// ran such a transaction holds one of its containers (the old one, the new one, the one restored
// on rollback, or one labelled with its id); finishing it anywhere else could recreate the old
// container from its snapshot on the wrong engine.
func (m *Manager) mine(ctx context.Context, r *record) bool {
	if r.Host == m.o.Host {
		return true
	}
	if r.Host != "" && m.o.Host != "" {
		return false
	}
	for _, id := range []string{r.ContainerID, r.NewID, r.RestoredID} {
		if id == "" {
			continue
		}
		if _, err := m.d.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
			return true
		}
	}
	t := &txn{m: m, r: r}
	for _, label := range []string{r.TxID, restoredLabel(r.TxID)} {
		if cs, err := t.mine(ctx, label); err == nil && len(cs) > 0 {
			return true
		}
	}
	m.log.Warn("an unfinished update journaled under another host configuration is not on this engine; left for the engine that holds it",
		"host", m.o.Host, "journaled_host", r.Host, "tx", r.TxID, "container", r.Name, "id", shortID(r.ContainerID))
	return false
}

// resume finishes one unfinished transaction from its journal record. started (Spec.Started of
// the Replace that found it, or nil) is called before a running new container is verified again.
func (m *Manager) resume(ctx context.Context, r *record, started func()) Result {
	t := &txn{m: m, r: r, started: started}
	t.log().Info("recovering an unfinished update", "step", r.Step)
	// A request the crashed process had sent (a create, stop, start) is carried out by the
	// engine all the same; after a crash a moment ago, give it time to land first.
	if d := time.Until(r.Updated.Add(m.settle)); d > 0 && r.Step != stepDone {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	interrupted := func(stage failure.Stage) *Error {
		return newError(r.ContainerID, stage, failure.Interrupted, "the watcher stopped during step "+r.Step+"; undone on recovery", nil)
	}
	if r.Handover && (r.Step == stepHandover || r.Step == stepVerify || r.Step == stepCommit) {
		return t.resumeHandover(ctx)
	}
	if r.Spec.StartFirst && r.WasRunning && !r.Handover {
		if res, ok := t.resumeStartFirst(ctx, interrupted); ok {
			return res
		}
	}
	switch r.Step {
	case stepSnapshot, stepPull:
		// Nothing was created or stopped yet.
		return t.finish(interrupted(failure.StagePull), OutcomeFailed)
	case stepVerify:
		if r.NewID != "" {
			ins, err := t.inspect(ctx, r.NewID)
			if err == nil && ins.State != nil && ins.State.Running && ins.Name == "/"+r.Name {
				t.markStarted()
				if e := t.verify(ctx, r.NewID, nil); e != nil {
					return t.rollback(ctx, e)
				}
				return t.commit(ctx, nil)
			}
			if err != nil && !cerrdefs.IsNotFound(err) {
				return t.rollback(ctx, newError(r.ContainerID, failure.StageVerify, failure.Interrupted, "", err))
			}
		}
		return t.rollback(ctx, interrupted(failure.StageVerify))
	case stepCommit:
		return t.commit(ctx, nil)
	case stepRollback, stepRollbackRemove, stepRollbackRestore, stepRollbackStart:
		return t.rollback(ctx, nil)
	case stepDone:
		return r.result()
	}
	stage := map[string]failure.Stage{stepCreate: failure.StageCreate, stepStop: failure.StageStop, stepSetAside: failure.StageStop,
		stepRename: failure.StageCreate, stepStart: failure.StageStart}[r.Step]
	if stage == "" {
		stage = failure.StageRollback
	}
	return t.resumeMidway(ctx, interrupted(stage))
}

// resumeMidway finishes a transaction interrupted between create and start. A stop the
// interrupted process asked for may still be going on in the engine: it is waited out first
// (settleStop). Then, when the old container is gone (AutoRemove took it, or a hand) while the
// new one, which holds its volumes, is there, the update is rolled forward; otherwise back.
func (t *txn) resumeMidway(ctx context.Context, cause *Error) Result {
	r := t.r
	if r.Step == stepStop {
		t.settleStop(ctx)
	}
	if r.Stopped && r.NewID != "" {
		if gone, err := t.oldGone(ctx); err == nil && gone {
			if _, err := t.inspect(ctx, r.NewID); err == nil {
				return t.rollForward(ctx, "the old container is gone and the new one holds its volumes")
			}
		}
	}
	return t.rollback(ctx, cause)
}

// settleStop waits while the old container still runs and a stop the interrupted process asked
// for (journaled at step stop) may still be in progress in the engine: until it does not run,
// or until such a stop must have ended (its timeout plus the margin after the journal write).
// Deciding earlier could undo the update just before the engine finishes the stop — and, for
// AutoRemove, removes the old container with its anonymous volumes once the new one, their
// other holder, is gone.
func (t *txn) settleStop(ctx context.Context) {
	if running, _ := t.untilStopped(ctx, t.r.ContainerID, t.stopDeadline(t.r.Updated)); running {
		t.log().Info("the old container still runs after any stop asked for must have ended: it was never stopped")
	}
}

// sweep removes containers a finished transaction created but does not keep: one whose create
// request the engine completed after the process that sent it died (and after the rollback
// looked). Only containers with that transaction's label and exact temporary name are candidates
// (txn.ours): a clone of one of ours carries the label too, and what a transaction kept is
// journaled by ID.
func (m *Manager) sweep(ctx context.Context) {
	res, err := m.d.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelTxID)})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		label := c.Labels[LabelTxID]
		txid := strings.TrimSuffix(label, "-rollback")
		e, err := m.s.Journal(txid)
		if err != nil {
			continue // not ours to judge (or its record was pruned)
		}
		var r record
		if json.Unmarshal(e.Data, &r) != nil || !r.finished() || c.ID == r.NewID || c.ID == r.RestoredID || c.ID == r.ContainerID {
			continue
		}
		t := &txn{m: m, r: &r}
		if !t.ours(c.ID, primaryName(c.Names), label) {
			continue
		}
		log := m.log.With("tx", txid, "container", primaryName(c.Names), "id", shortID(c.ID))
		log.Warn("removing a container left by an interrupted update")
		if err := t.goAway(ctx, c.ID, label, t.stopTimeoutSeconds()); err != nil {
			log.Error("removing a leftover container", "err", err)
		}
	}
}

// nameOf is container id's name without the leading "/", or "" if the engine cannot tell (for
// log lines that have only an ID).
func (m *Manager) nameOf(ctx context.Context, id string) string {
	res, err := m.d.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(res.Container.Name, "/")
}

// primaryName is a container's own name from a list's Names ("/name"; legacy links add
// "/other/alias" entries), without the leading "/".
func primaryName(names []string) string {
	for _, n := range names {
		if n = strings.TrimPrefix(n, "/"); n != "" && !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}
