package swarm

import (
	"context"
	"slices"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/watcher-dev/watcher/failure"
)

// Recover finishes the service updates an earlier process journaled on this host and did not
// see end (it crashed, was stopped, or was the service's own task and was replaced): each is
// waited for, never sent again, until its journaled deadline. The rule for a record:
//
//   - "wait": the update was sent; wait for it.
//   - "send": it may or may not have reached the manager. If the spec has the update's image at a
//     later version, it did: wait for it. If the spec still has the image before, it did not:
//     nothing changed, and the next run finds the update again. Anything else: the service was
//     changed outside the watcher, which is left as it is.
//
// A manager that does not answer leaves its records for the next Recover. The waits run at
// once, one per service; Recover returns when all have ended.
func (m *Manager) Recover(ctx context.Context) []Result {
	recs, err := m.records()
	if err != nil {
		m.log.Error("could not read the service journal; unfinished service updates are not resumed", "err", err)
		return nil
	}
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			unlock, err := m.busy.Lock(ctx, id)
			if err != nil {
				out[i] = Result{ServiceID: id, Name: recs[id].Name, Outcome: OutcomeFailed, Recovered: true,
					Err: fail(failure.Interrupted, "the watcher is stopping; the update is resumed at its next start")}
				return
			}
			defer unlock()
			out[i] = m.resume(ctx, recs[id])
		})
	}
	wg.Wait()
	return out
}

// resume finishes an update an earlier process journaled.
func (m *Manager) resume(ctx context.Context, rec *record) Result {
	start := time.Now()
	res := Result{TxID: rec.TxID, ServiceID: rec.ServiceID, Name: rec.Name, Outcome: OutcomeFailed, Previous: rec.Previous,
		Image: rec.Image, Version: rec.Version, Recovered: true}
	m.log.Info("resuming an unfinished service update", "service", rec.Name, "id", short(rec.ServiceID), "txid", rec.TxID, "step", rec.Step, "deadline", rec.Deadline)
	if rec.Step == stepSend {
		cctx, cancel := context.WithTimeout(ctx, callBound(rec.Deadline))
		svc, err := m.inspect(cctx, rec.ServiceID)
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			m.forget(rec)
			res.Err = fail(failure.ServiceChanged, "the service was removed since the watcher began updating it")
			return res
		case err != nil:
			res.Err = fail(failure.Interrupted, "the manager does not answer (%v); the update is resumed when it does", err)
			return res
		case !arrived(svc, rec) && image(svc.Spec) == rec.Previous:
			m.forget(rec)
			res.Err = fail(failure.Interrupted, "the watcher stopped before the update reached the manager; nothing changed, and the next run finds the update again")
			return res
		case !arrived(svc, rec):
			m.forget(rec)
			res.Err = fail(failure.ServiceChanged, "the service's image was changed to %s outside the watcher since it began the update; that change stands", image(svc.Spec))
			return res
		}
	}
	r := m.finish(ctx, rec, start)
	r.Recovered = true
	return r
}
