package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/swarm"
)

// Host is one engine an Updater watches, as NewHosts is given it. Several hosts share one
// registry check (one request per distinct image across them all) and one history; everything
// else is the host's own: its client, its transactions (lifecycle keys its journal records by
// host), its update.parallel slots, and whether it answers. A host that cannot be reached is
// reported, and never delays or fails the others beyond Options.HostTimeout.
type Host struct {
	Name   string   // unique; "" = the only engine (no hosts configured), named nowhere
	Engine Engine   // its client (internal/engine negotiates the API version per engine)
	Life   Replacer // its transactions; nil = only checked (watcher check)
	// Services updates the Swarm services of a manager (swarm.Manager); nil = they are only
	// checked.
	Services ServiceUpdater
	// Selection, when set, replaces Options.Selection on this host (a hosts entry's scope).
	Selection *Selection
}

// HostStatus is what the updater knows of one engine (GET /readyz lists them when hosts are
// configured).
type HostStatus struct {
	Name      string    `json:"name"`
	Reachable bool      `json:"reachable"`
	Since     time.Time `json:"since,omitzero"` // when it last became reachable or unreachable
	Error     string    `json:"-"`              // why not (logs and run reports, never GET /readyz)
}

// podmanEngine is what internal/engine's client tells about Podman's Docker-compatible API.
type podmanEngine interface{ Podman() bool }

// host is one engine at run time: what New was given, its slots, and its state. It is the unit
// everything engine-side hangs off: the observation of its containers (observe.go), its plan
// (each host is planned on its own: dependencies never cross engines), its transactions and
// recovery, and its cleanup.
type host struct {
	Host
	sel   Selection
	slots chan struct{} // update.parallel for this engine
	// svcSlots bound the services updated at once through this manager (update.parallel too):
	// an update's wait takes minutes, and must not hold the containers' slots.
	svcSlots chan struct{}
	log      *slog.Logger

	mu     sync.Mutex
	status HostStatus
	// lost: the engine stopped answering (or did not answer at start) and it has transactions,
	// possibly unfinished, to recover when it is back. The start's own recovery is Recover's.
	lost bool

	swarm swarmRole       // what the engine is in a swarm, as last asked (role)
	said  map[string]bool // what sayOnce said

	recovering sync.Mutex // one Recover of this host at a time

	inv *inventory // its containers from the engine's events, once FollowEvents runs (follow.go)
}

func newHost(h Host, o Options) *host {
	sel := o.Selection
	if h.Selection != nil {
		sel = *h.Selection
	}
	log := o.Logger
	if h.Name != "" {
		log = log.With("host", h.Name)
	}
	out := &host{Host: h, sel: sel, slots: make(chan struct{}, o.Parallel), svcSlots: make(chan struct{}, o.Parallel), log: log,
		status: HostStatus{Name: h.Name, Reachable: true}}
	out.inv = newInventory(out, o)
	return out
}

// podman reports whether the engine is Podman's Docker-compatible API.
func (h *host) podman() bool {
	p, ok := h.Engine.(podmanEngine)
	return ok && p.Podman()
}

// ping asks the engine whether it answers, within timeout, and records the answer.
func (h *host) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := h.Engine.Ping(ctx, client.PingOptions{})
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	h.mark(err)
	return err
}

// mark records whether the engine answered. An engine that stops answering may have been
// stopped with a transaction in flight: it is recovered again once it is back.
func (h *host) mark(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reachable := err == nil
	changed := reachable != h.status.Reachable
	if changed || h.status.Since.IsZero() {
		h.status.Since = time.Now().UTC()
	}
	switch {
	case changed && !reachable && h.Name == "":
		h.log.Error("docker engine unreachable", "err", err)
	case changed && !reachable:
		h.log.Error("docker engine unreachable; its containers are reported, the other hosts go on", "err", err)
	case changed:
		h.log.Info("docker engine answers again")
	}
	h.status.Reachable = reachable
	h.status.Error = ""
	if err != nil {
		h.status.Error = err.Error()
		h.lost = h.Life != nil
	}
}

func (h *host) state() HostStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

// needsRecovery reports whether the engine was lost and its transactions wait for recovery.
func (h *host) needsRecovery() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// recover finishes the host's unfinished transactions and service updates: at start (always),
// and once per time the engine came back after it was lost (the others). The containers'
// transactions come first: a service update's wait may take minutes.
func (h *host) recover(ctx context.Context, atStart bool) recovered {
	h.recovering.Lock()
	defer h.recovering.Unlock()
	if h.Life == nil || (!atStart && !h.needsRecovery()) {
		return recovered{}
	}
	out := recovered{containers: h.Life.Recover(ctx)}
	if h.Services != nil {
		out.services = h.Services.Recover(ctx)
	}
	if ctx.Err() == nil {
		h.mu.Lock()
		h.lost = false
		h.mu.Unlock()
	}
	return out
}

// recovered is what one host's recovery finished.
type recovered struct {
	containers []lifecycle.Result
	services   []swarm.Result
}

// UnknownHostError is returned for a request that names hosts the updater does not have.
type UnknownHostError struct{ Names []string }

func (e *UnknownHostError) Error() string {
	return "unknown host: " + strings.Join(e.Names, ", ")
}

// pickHosts returns the hosts a request names (all of them when it names none), or an
// *UnknownHostError.
func (u *Updater) pickHosts(names []string) ([]*host, error) {
	if len(names) == 0 {
		return u.hosts, nil
	}
	var out []*host
	var unknown []string
	for _, n := range names {
		i := slices.IndexFunc(u.hosts, func(h *host) bool { return h.Name == n && n != "" })
		if i < 0 {
			unknown = append(unknown, n)
		} else if !slices.Contains(out, u.hosts[i]) {
			out = append(out, u.hosts[i])
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownHostError{Names: unknown}
	}
	return out, nil
}

// Hosts pings every engine (each within Options.HostTimeout, all at once) and returns what it
// found, in configuration order.
func (u *Updater) Hosts(ctx context.Context) []HostStatus {
	out := make([]HostStatus, len(u.hosts))
	var wg sync.WaitGroup
	for i, h := range u.hosts {
		wg.Go(func() {
			_ = h.ping(ctx, u.opts.HostTimeout)
			out[i] = h.state()
		})
	}
	wg.Wait()
	return out
}

// Named reports whether hosts are configured: then reports, statuses and metrics name them.
func (u *Updater) Named() bool { return u.hosts[0].Name != "" }

// Ready reports whether an engine answers: the one engine, or at least one of several hosts.
func (u *Updater) Ready(ctx context.Context) error {
	if !u.Named() {
		return u.hosts[0].ping(ctx, u.opts.HostTimeout)
	}
	var errs []error
	for _, s := range u.Hosts(ctx) {
		if s.Reachable {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %s", s.Name, s.Error))
	}
	return fmt.Errorf("no engine reachable: %w", errors.Join(errs...))
}

// WatchHosts recovers each host whose engine was unreachable as soon as it answers again,
// without waiting for the next run: an engine stopped in the middle of an update left that
// update's transaction unfinished. It checks every interval until ctx ends (the daemon runs it).
func (u *Updater) WatchHosts(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var back []*host
		for _, h := range u.hosts {
			if h.needsRecovery() && h.ping(ctx, u.opts.HostTimeout) == nil {
				back = append(back, h)
			}
		}
		if len(back) > 0 {
			u.recoverHosts(ctx, back, false)
		}
	}
}

// hostOf is the host c lives on; a Container made without an observation (a test's) is the only
// host's.
func (u *Updater) hostOf(c *Container) *host {
	if c.host != nil {
		return c.host
	}
	return u.hosts[0]
}
