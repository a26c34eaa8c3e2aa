package updater

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/watcher-dev/watcher/failure"
)

// The inventory: what each host holds, asked of every host at once, each within
// Options.HostTimeout, so that a host that is down, slow or answering errors holds up nobody.
// What an unreachable host held is what the last runs found there (the known states).

// hostView is one host as a run or a query found it: what it showed, or why it could not be seen.
type hostView struct {
	h   *host
	obs *Observed
	err error
}

// listHosts lists the containers of hosts (observe: with their images, for a run), all at once.
// A host whose engine was lost (a transaction may have been in flight) is recovered before a
// run observes it again; the start's recovery is the daemon's (Recover), before any run.
func (u *Updater) listHosts(ctx context.Context, hs []*host, observe bool) []hostView {
	out := make([]hostView, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() {
			out[i] = hostView{h: h}
			if observe && h.needsRecovery() {
				if err := h.ping(ctx, u.opts.HostTimeout); err != nil {
					out[i].err = err
					return
				}
				u.recoverHosts(ctx, []*host{h}, false)
			}
			hctx, cancel := context.WithTimeout(ctx, u.opts.HostTimeout)
			defer cancel()
			if observe {
				out[i].obs, out[i].err = h.observe(hctx, u.opts)
			} else {
				out[i].obs, out[i].err = h.list(hctx, u.opts)
			}
			if out[i].err != nil && hctx.Err() != nil && ctx.Err() == nil {
				out[i].err = fmt.Errorf("no answer within %s: %w", u.opts.HostTimeout, out[i].err)
			}
			if ctx.Err() == nil {
				h.mark(out[i].err)
			}
		})
	}
	wg.Wait()
	u.oneManagerPerSwarm(out)
	return out
}

// checkWatched returns an *UnknownHostError naming requested hosts that do not exist, or a
// *NotWatchedError naming the requested containers that are not watched and the requested images
// that no watched container runs. On a host that cannot be reached, the containers the last runs
// found there count: the run reports them unreachable. Pushed references no watched container
// runs are dropped from the request: a registry tells of every push, and only when none of them
// concerns a watched container is that an error.
func (u *Updater) checkWatched(ctx context.Context, req Request) (Request, error) {
	hs, err := u.pickHosts(req.Hosts)
	if err != nil || (len(req.Containers) == 0 && len(req.Images) == 0 && len(req.Pushed) == 0) {
		return req, err
	}
	views := u.listHosts(ctx, hs, false)
	if !u.Named() && views[0].err != nil {
		return req, views[0].err
	}
	var watched []*Container
	for _, v := range views {
		if v.err != nil {
			for _, st := range u.knownOn(v.h) {
				watched = append(watched, &Container{Kind: st.Kind, Host: st.Host, Name: st.Name, Image: st.Image, Settings: Settings{Policy: st.Policy}})
			}
			continue
		}
		watched = append(watched, v.obs.Watched...)
	}
	if len(req.Pushed) > 0 {
		pushed := req.Pushed
		req.Pushed = slices.DeleteFunc(slices.Clone(pushed), func(p string) bool {
			return !slices.ContainsFunc(watched, func(t *Container) bool { return matchesPushed(t, []string{p}) })
		})
		if len(req.Pushed) == 0 && len(req.Containers) == 0 && len(req.Images) == 0 {
			return req, &NotWatchedError{Names: pushed}
		}
	}
	var missing []string
	for _, n := range req.Containers {
		if !slices.ContainsFunc(watched, func(t *Container) bool { return t.Name == n }) {
			missing = append(missing, n)
		}
	}
	for _, img := range req.Images {
		if !slices.ContainsFunc(watched, func(t *Container) bool { return matchesImage(t.Image, []string{img}) }) {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return req, &NotWatchedError{Names: missing}
	}
	return req, nil
}

// Containers returns every watched container, on the hosts named (every host when none is),
// with the latest state a run found for it. The containers of a host that cannot be reached are
// the ones the last runs found there, in state unknown with that host's failure.
// A state is decorated with what the state file says now (approvals, the last update's time).
func (u *Updater) Containers(ctx context.Context, hosts ...string) ([]ContainerStatus, error) {
	hs, err := u.pickHosts(hosts)
	if err != nil {
		return nil, err
	}
	views := u.listHosts(ctx, hs, false)
	if !u.Named() && views[0].err != nil {
		return nil, views[0].err
	}
	u.loadStatus()
	var out []ContainerStatus
	for _, v := range views {
		if v.err != nil {
			for _, st := range u.knownOn(v.h) {
				out = append(out, unreachableStatus(st, v.err))
			}
			continue
		}
		out = append(out, u.statusesOf(v.obs)...)
	}
	approvals, records := u.approvals(), u.allRecords()
	for i := range out {
		u.decorate(&out[i], approvals, records)
	}
	return out, nil
}

// statusesOf is what is known of each watched container of one observation, by name.
func (u *Updater) statusesOf(obs *Observed) []ContainerStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []ContainerStatus
	for _, name := range sortedKeys(obs.byName) {
		t := obs.byName[name]
		if !t.Watched {
			continue
		}
		known, ok := u.status[t.key()]
		// What a run found holds while the container is the one it saw (or is being replaced);
		// a container replaced or recreated outside the watcher since then is "unknown" again.
		if ok && (known.ID == t.ID || known.State == StateUpdating) {
			out = append(out, known)
			continue
		}
		st := t.status(StateUnknown)
		st.LastError = known.LastError
		out = append(out, st)
	}
	for _, name := range sortedKeys(obs.svcByName) {
		if t := obs.svcByName[name]; t.Watched {
			out = append(out, u.serviceStatus(t))
		}
	}
	return out
}

// serviceStatus is what is known of watched service t: what the last run found, with the tasks
// as the service list shows them now. u.mu is held.
func (u *Updater) serviceStatus(t *Container) ContainerStatus {
	known, ok := u.status[t.key()]
	if !ok || known.ID != t.ID {
		lastErr := known.LastError
		known = t.status(StateUnknown)
		known.LastError = lastErr
	}
	r := t.service.Replicas
	known.Replicas = &r
	return known
}

// knownOn returns the last known states of the watched containers on h, by name.
func (u *Updater) knownOn(h *host) []ContainerStatus {
	u.loadStatus()
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []ContainerStatus
	for _, key := range sortedKeys(u.status) {
		if st := u.status[key]; st.Host == h.Name && h.Name != "" {
			out = append(out, st)
		}
	}
	return out
}

// unreachableFailure is the failure every container of an unreachable host is reported with.
func unreachableFailure(err error) *Failure {
	return &Failure{Stage: failure.StageHost, Reason: failure.EngineUnreachable,
		Message: "the engine does not answer (" + err.Error() + "); nothing on this host was checked or changed"}
}

// unreachableStatus is st while its host cannot be reached.
func unreachableStatus(st ContainerStatus, err error) ContainerStatus {
	st.State, st.LastError = StateUnknown, unreachableFailure(err)
	return st
}

// unreachableLines are the report lines of an unreachable host's containers (those the last
// runs found there, filtered as the request asks), and their states become unknown.
func (u *Updater) unreachableLines(v hostView, req Request) []ContainerReport {
	var out []ContainerReport
	for _, st := range u.knownOn(v.h) {
		if (len(req.Containers) > 0 || len(req.Images) > 0) && !slices.Contains(req.Containers, st.Name) && !matchesImage(st.Image, req.Images) {
			continue
		}
		out = append(out, ContainerReport{Kind: st.Kind, Host: st.Host, Name: st.Name, ID: st.ID, Image: st.Image, Policy: st.Policy, Mode: st.Mode,
			OldDigest: st.LocalDigest, Outcome: OutcomeFailed, Failure: unreachableFailure(v.err), Replicas: st.Replicas})
		u.mu.Lock()
		u.status[st.key()] = unreachableStatus(st, v.err)
		u.mu.Unlock()
	}
	return out
}
