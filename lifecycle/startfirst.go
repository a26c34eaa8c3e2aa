package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
)

// defaultDrain is how long a start-first update's old container, taken off its networks (the
// engine's DNS no longer answers with it, so new connections go to the new container), is left
// running before its stop signal: work it was doing that needs no network (writes to its
// volumes) gets a moment to end before the signal asks it to shut down.
const defaultDrain = time.Second

// Start-first (Spec.StartFirst) reorders the transaction so the service is never down:
//
//	create under the temporary name, on the old container's networks with its aliases
//	start_new    start it; the old one still serves, and both answer the aliases
//	verify_new   verify it (a failure removes only the new container: the old one never stopped)
//	set_aside    the old container, still running, renamed <name>-watcher-<txid>
//	rename       the new container takes the name
//	disconnect   the old container off its networks (DNS stops answering with it), a drain
//	stop         the old container stopped
//	commit       the old container removed
//
// The old one is renamed before it is disconnected so that the container's name, too, resolves
// at every instant (to the old container, then to the new one). Recovery (resumeStartFirst):
// interrupted before set_aside, the update is undone; from set_aside to stop, it is finished
// when the new container runs (it was verified) and undone otherwise — a rollback connects the
// old container to its networks again.

// advanceStartFirst takes a start-first update from create to commit (or rollback).
func (t *txn) advanceStartFirst(ctx context.Context, old container.InspectResponse) Result {
	r := t.r
	if e := t.createNew(ctx, old); e != nil {
		return t.fail(ctx, e)
	}
	if err := t.journal(stepStartNew); err != nil {
		return t.fail(ctx, newError(r.ContainerID, failure.StageStart, failure.StoreError, "writing the journal", err))
	}
	exited, e := t.startNew(ctx)
	if e != nil {
		return t.fail(ctx, e)
	}
	t.markStarted()
	if err := t.journal(stepVerifyNew); err != nil {
		return t.fail(ctx, newError(r.ContainerID, failure.StageVerify, failure.StoreError, "writing the journal", err))
	}
	kept := t.verify(ctx, r.NewID, exited)
	if kept != nil {
		if r.Spec.Rollback || kept.Reason != failure.Unhealthy || !t.running(ctx, r.NewID) || ctx.Err() != nil {
			return t.fail(ctx, kept)
		}
		t.log().Warn("new container failed its health gate; kept (rollback disabled)", "err", kept)
	}
	if e := t.switchOver(ctx, old); e != nil {
		return t.fail(ctx, e)
	}
	return t.commit(ctx, kept)
}

// switchOver hands the service from the old container to the verified new one: set aside, the
// name, the networks, the stop. Each step finds what an interrupted run of it left, so recovery
// rolls an interrupted switch forward with it.
func (t *txn) switchOver(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	if e := t.setAside(ctx); e != nil {
		return e
	}
	if e := t.nameNew(ctx); e != nil {
		return e
	}
	r.Stopped, r.Disconnected = true, true // what depends on the old container is disturbed from here
	if err := t.journal(stepDisconnect); err != nil {
		return newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", err)
	}
	if err := t.disconnectOld(ctx); err != nil {
		return newError(r.ContainerID, failure.StageStop, failure.KillContainerError, "taking the old container off its networks", err)
	}
	t.log().Debug("old container off its networks; draining", "drain", t.m.drain)
	time.Sleep(t.m.drain) // not cut short by ctx: a graceful stop of the watcher finishes the switch
	if err := t.journal(stepStop); err != nil {
		return newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", err)
	}
	return t.stopOld(ctx, old)
}

// disconnectOld takes the old container off every network it is still on. A container or
// endpoint already gone is not an error.
func (t *txn) disconnectOld(ctx context.Context) error {
	ins, err := t.inspect(ctx, t.r.ContainerID)
	if cerrdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if ins.NetworkSettings == nil || noNetworks(ins) {
		return nil
	}
	for _, n := range sortedNetworks(ins.NetworkSettings.Networks) {
		_, err := t.m.d.NetworkDisconnect(ctx, n, client.NetworkDisconnectOptions{Container: ins.ID})
		if err != nil && !cerrdefs.IsNotFound(err) && !t.offNetwork(ctx, n) {
			return fmt.Errorf("network %s: %w", n, err)
		}
	}
	return nil
}

// offNetwork reports whether the old container is (now) off network n: an error's answer is
// not the truth (a lost answer to a disconnect the engine made).
func (t *txn) offNetwork(ctx context.Context, n string) bool {
	ins, err := t.inspect(ctx, t.r.ContainerID)
	if err != nil || ins.NetworkSettings == nil {
		return cerrdefs.IsNotFound(err)
	}
	_, on := ins.NetworkSettings.Networks[n]
	return !on
}

// reconnectOld connects the old container again to the networks of its snapshot it is not on,
// with its aliases, links and driver options (a start-first update refuses static addresses,
// so there are none to give back).
func (t *txn) reconnectOld(ctx context.Context) error {
	r := t.r
	snap, err := r.snapshot()
	if err != nil || snap.NetworkSettings == nil || noNetworks(snap) {
		return err
	}
	ins, err := t.inspect(ctx, r.ContainerID)
	if err != nil {
		return err
	}
	short := r.ContainerID[:min(12, len(r.ContainerID))]
	for _, n := range sortedNetworks(snap.NetworkSettings.Networks) {
		if ins.NetworkSettings != nil && ins.NetworkSettings.Networks[n] != nil {
			continue
		}
		ep := snap.NetworkSettings.Networks[n]
		fresh := &network.EndpointSettings{Links: slices.Clone(ep.Links), DriverOpts: ep.DriverOpts}
		for _, a := range ep.Aliases {
			if a != short {
				fresh.Aliases = append(fresh.Aliases, a)
			}
		}
		if _, err := t.m.d.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: r.ContainerID, EndpointConfig: fresh}); err != nil {
			return fmt.Errorf("connecting the old container to network %s again: %w", n, err)
		}
	}
	r.Disconnected = false
	return nil
}

// noNetworks: the container has no network of its own to leave (network_mode none; host and
// container:X are refused before).
func noNetworks(ins container.InspectResponse) bool {
	return ins.HostConfig != nil && ins.HostConfig.NetworkMode.IsNone()
}

func sortedNetworks(eps map[string]*network.EndpointSettings) []string {
	var names []string
	for n, ep := range eps {
		if ep != nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// resumeStartFirst finishes a start-first update interrupted between create and the stop (ok
// false: the step is one the ordinary rules handle). Before set_aside the old container never
// stopped: undone. From set_aside on, the new container had passed its verify: finished when it
// still runs, undone otherwise.
func (t *txn) resumeStartFirst(ctx context.Context, interrupted func(failure.Stage) *Error) (Result, bool) {
	r := t.r
	switch r.Step {
	case stepCreate, stepStartNew, stepVerifyNew:
		stage := map[string]failure.Stage{stepCreate: failure.StageCreate, stepStartNew: failure.StageStart, stepVerifyNew: failure.StageVerify}[r.Step]
		return t.rollback(ctx, interrupted(stage)), true
	case stepSetAside, stepRename, stepDisconnect, stepStop:
	default:
		return Result{}, false
	}
	if r.NewID == "" || !t.running(ctx, r.NewID) {
		if r.Step == stepStop {
			t.settleStop(ctx) // no start of the old container while a stop may still be in flight
		}
		return t.rollback(ctx, interrupted(failure.StageStop)), true
	}
	old, err := r.snapshot()
	if err != nil {
		return t.rollback(ctx, newError(r.ContainerID, failure.StageRollback, failure.RollbackFailed, "the journal's snapshot is unreadable", err)), true
	}
	t.log().Info("finishing the switch to the verified new container")
	t.forwarded = true
	if e := t.switchOver(ctx, old); e != nil {
		return t.rollback(ctx, e), true
	}
	return t.commit(ctx, nil), true
}

// refuseStartFirst says why the container in the snapshot cannot be updated start-first (two
// copies of it cannot run side by side), or nil. Nothing has been touched yet.
func (t *txn) refuseStartFirst(ctx context.Context) *Error {
	r := t.r
	old, err := r.snapshot()
	if err != nil {
		return newError(r.ContainerID, failure.StageCheck, failure.ImageInspectError, "reading the container's snapshot", err)
	}
	why := startFirstConflict(old, r.configuredMAC())
	if why == "" {
		why, err = t.netnsParentOf(ctx)
		if err != nil {
			return newError(r.ContainerID, failure.StagePlan, failure.Interrupted, "listing the containers that may share its network namespace", err)
		}
	}
	if why == "" {
		return nil
	}
	return newError(r.ContainerID, failure.StagePlan, failure.Unsupported,
		"start-first cannot run two copies of this container side by side: "+why+"; nothing was changed (remove the label watcher.update-order=start-first to update it stop-first)", nil)
}

// startFirstConflict is what in a container's own configuration a second copy would collide
// with, or "".
func startFirstConflict(old container.InspectResponse, mac string) string {
	hc := old.HostConfig
	if hc != nil {
		switch mode := hc.NetworkMode; {
		case mode.IsHost():
			return "it uses the host's network"
		case mode.IsContainer():
			return "it shares the network namespace of " + strings.TrimPrefix(string(mode), "container:")
		}
		if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
			return "it publishes ports on the host"
		}
	}
	if mac != "" {
		return "it has a static MAC address " + mac
	}
	if hc != nil && hc.AutoRemove {
		if d := anonymousVolume(old); d != "" {
			// A start-first rollback that finds a container the user made on the name keeps ours
			// stopped aside; stopping a --rm container removes it with its anonymous volumes, and
			// the new container, their other holder, is gone by then.
			return "it is removed when it stops (--rm) and keeps data in an anonymous volume at " + d
		}
	}
	if old.NetworkSettings != nil {
		for _, n := range sortedNetworks(old.NetworkSettings.Networks) {
			if c := old.NetworkSettings.Networks[n].IPAMConfig; c != nil && (c.IPv4Address.IsValid() || c.IPv6Address.IsValid()) {
				return "it has a static IP address on network " + n
			}
		}
	}
	return ""
}

// anonymousVolume is the path of one of the container's anonymous volumes (an image VOLUME, a
// `-v /path`, or a volume mount without a source), or "".
func anonymousVolume(old container.InspectResponse) string {
	named := map[string]bool{} // destinations the user gave a source
	if hc := old.HostConfig; hc != nil {
		for _, b := range hc.Binds {
			if d := bindDestination(b); d != "" {
				named[d] = true
			}
		}
		for _, m := range hc.Mounts {
			if m.Source != "" {
				named[m.Target] = true
			}
		}
	}
	var dests []string
	for _, mp := range old.Mounts {
		if mp.Type == mount.TypeVolume && !named[mp.Destination] {
			dests = append(dests, mp.Destination)
		}
	}
	slices.Sort(dests)
	if len(dests) == 0 {
		return ""
	}
	return dests[0]
}

// netnsParentOf names a container that runs in the replaced container's network namespace
// (network_mode container:<it>), or "".
func (t *txn) netnsParentOf(ctx context.Context) (string, error) {
	r := t.r
	res, err := t.m.d.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return "", err
	}
	for _, c := range res.Items {
		ref, ok := strings.CutPrefix(c.HostConfig.NetworkMode, "container:")
		if ok && (ref == r.Name || ref == "/"+r.Name || (len(ref) >= 12 && strings.HasPrefix(r.ContainerID, ref))) {
			return "container " + primaryName(c.Names) + " runs in its network namespace", nil
		}
	}
	return "", nil
}
