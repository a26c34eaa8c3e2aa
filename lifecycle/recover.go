package lifecycle

import (
	"context"
	"encoding/json"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// keepFinished is how long finished journal records are kept (they make a repeated Replace of a
// replaced container a no-op).
const keepFinished = 7 * 24 * time.Hour

// Recover drives every unfinished journaled transaction to commit or rollback, and prunes old
// finished records. Call it before any cycle: after a crash or kill -9 at any instant it leaves
// each container running on the old image or the new one, with no temporary containers left.
//
// The rule: a transaction that had not stopped the old container is undone (the old one never
// stopped); one interrupted while verifying has its new container verified again, then
// committed or undone; one that was committing is committed; anything else is rolled back.
func (m *Manager) Recover(ctx context.Context) []Result {
	entries, err := m.s.Journals()
	if err != nil {
		m.log.Error("reading the journal", "err", err)
		return nil
	}
	var out []Result
	for _, e := range entries {
		var r record
		if err := json.Unmarshal(e.Data, &r); err != nil {
			m.log.Error("unreadable journal record; left for a human", "tx", e.TxID, "container", e.ContainerID, "err", err)
			continue
		}
		if r.finished() {
			if time.Since(r.Updated) > keepFinished {
				_ = m.s.DeleteJournal(e.TxID)
			}
			continue
		}
		unlock, err := m.lock(ctx, r.ContainerID)
		if err != nil {
			break
		}
		out = append(out, m.resume(ctx, &r))
		unlock()
	}
	return out
}

// resume finishes one unfinished transaction from its journal record.
func (m *Manager) resume(ctx context.Context, r *record) Result {
	t := &txn{m: m, r: r}
	m.log.Info("recovering an unfinished update", "tx", r.TxID, "container", r.Name, "step", r.Step)
	interrupted := func(stage string) *Error {
		return newError(r.ContainerID, stage, ReasonInterrupted, "the watcher stopped during step "+r.Step+"; undone on recovery", nil)
	}
	switch r.Step {
	case stepSnapshot, stepPull:
		// Nothing was created or stopped yet.
		return t.finish(interrupted(StagePull), OutcomeFailed)
	case stepVerify:
		if r.NewID != "" {
			ins, err := t.inspect(ctx, r.NewID)
			if err == nil && ins.State != nil && ins.State.Running && ins.Name == "/"+r.Name {
				if e := t.verify(ctx, r.NewID, nil); e != nil {
					return t.rollback(ctx, e)
				}
				return t.commit(ctx, nil)
			}
			if err != nil && !cerrdefs.IsNotFound(err) {
				return t.rollback(ctx, newError(r.ContainerID, StageVerify, ReasonInterrupted, "", err))
			}
		}
		return t.rollback(ctx, interrupted(StageVerify))
	case stepCommit:
		return t.commit(ctx, nil)
	case stepRollback, stepRollbackRemove, stepRollbackRestore, stepRollbackStart:
		return t.rollback(ctx, nil)
	case stepDone:
		return r.result()
	}
	stage := map[string]string{stepCreate: StageCreate, stepStop: StageStop, stepSetAside: StageStop,
		stepRename: StageCreate, stepStart: StageStart}[r.Step]
	if stage == "" {
		stage = StageRollback
	}
	return t.rollback(ctx, interrupted(stage))
}
