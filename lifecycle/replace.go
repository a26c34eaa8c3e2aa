package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/watcher-dev/watcher/failure"
)

// detachedTimeout bounds the work done after the caller's context ended (graceful stop): the
// current transaction is undone (or committed, if it got that far) on a context of its own.
const detachedTimeout = 60 * time.Second

// txn is one transaction in progress.
type txn struct {
	m       *Manager
	r       *record
	auth    string // registry auth for the pull; never journaled
	started func() // Spec.Started, at most once (see once); nil in Recover
	// forwarded: this transaction was rolled forward once (rollForward); a failure after that is
	// rolled back, never forward again.
	forwarded bool
	// fresh: begun by this process and its create not yet tried, so no container of it can exist
	// and create need not look for one (one engine request less per update).
	fresh bool
	// given are the caller's Spec.OldImage and Spec.Events (never journaled; nil in Recover).
	givenImage *ImageDetails
	events     EventSource
}

// log is the transaction's logger: every line carries the transaction and the container it
// replaces, by name ("container", without the leading "/") and short ID ("id"). The name is ""
// until the snapshot has read it.
func (t *txn) log() *slog.Logger {
	return t.m.log.With("tx", t.r.TxID, "container", t.r.Name, "id", shortID(t.r.ContainerID))
}

// markStarted tells the caller the disruptive part is over (Spec.Started).
func (t *txn) markStarted() {
	if t.started != nil {
		t.started()
	}
}

// once returns a func that calls f the first time it is called, and does nothing if f is nil.
func once(f func()) func() {
	if f == nil {
		return func() {}
	}
	return sync.OnceFunc(f)
}

func (t *txn) verifyWindow() time.Duration {
	if t.r.Spec.Verify > 0 {
		return t.r.Spec.Verify
	}
	return t.m.o.Verify
}

func (t *txn) healthTimeout() time.Duration {
	if t.r.Spec.HealthTimeout > 0 {
		return t.r.Spec.HealthTimeout
	}
	return t.m.o.HealthTimeout
}

// stopTimeout in whole seconds (rounded up); nil means the container's own.
func (t *txn) stopTimeout(old *container.Config) *int {
	var d time.Duration
	switch {
	case t.r.Spec.StopTimeout != nil:
		d = *t.r.Spec.StopTimeout
	case old != nil && old.StopTimeout != nil:
		return nil
	default:
		d = t.m.o.StopTimeout
	}
	s := int((d + time.Second - 1) / time.Second)
	return &s
}

func (t *txn) stopTimeoutSeconds() int {
	ins, _ := t.r.snapshot()
	if p := t.stopTimeout(ins.Config); p != nil {
		return *p
	}
	if ins.Config != nil && ins.Config.StopTimeout != nil {
		return *ins.Config.StopTimeout
	}
	return 10
}

// Replace runs the update transaction (docs/architecture.md): snapshot, pull, create (under a
// temporary name), stop, set aside, rename, start, verify, then commit or roll back. Every step is
// journaled before it is taken. It never panics and never returns without a Result; the Result's
// Err says which stage failed and why.
//
// Replace on a container whose last transaction is unfinished finishes that one instead (as
// Recover would); on a container a committed transaction already replaced it returns that
// transaction's Result again and does nothing.
func (m *Manager) Replace(ctx context.Context, s Spec) Result {
	started := once(s.Started)
	defer started() // when the transaction ended before its new container was started
	return m.transact(ctx, s, started, (*txn).run)
}

// transact runs body as a new transaction on s.ContainerID, unless that container's last
// transaction is unfinished (it is finished instead, as Recover would) or committed (its Result
// is returned again and nothing is done).
func (m *Manager) transact(ctx context.Context, s Spec, started func(), body func(*txn, context.Context) Result) Result {
	unlock, err := m.lock(ctx, s.ContainerID)
	if err != nil {
		return Result{OldID: s.ContainerID, Outcome: OutcomeFailed, Err: newError(s.ContainerID, failure.StageCheck, failure.Interrupted, "", err)}
	}
	defer unlock()

	if s.ContainerID == "" {
		return Result{Outcome: OutcomeFailed, Err: newError("", failure.StageCheck, failure.ContainerNotFound, "no container ID given", nil)}
	}
	if prev, err := m.s.JournalsFor(s.ContainerID); err == nil && len(prev) > 0 {
		var r record
		if err := json.Unmarshal(prev[len(prev)-1].Data, &r); err == nil {
			if !r.finished() {
				return m.resume(ctx, &r, started)
			}
			if r.Outcome == OutcomeUpdated {
				return r.result()
			}
		}
	}
	t := &txn{m: m, auth: s.RegistryAuth, started: started, fresh: true, givenImage: s.OldImage, events: s.Events, r: &record{TxID: newTxID(), Host: m.o.Host, ContainerID: s.ContainerID,
		Spec: toSpecRecord(s), Started: time.Now()}}
	return body(t, ctx)
}

func (t *txn) run(ctx context.Context) Result {
	old, done := t.prepare(ctx)
	if done != nil {
		return *done
	}
	return t.advance(ctx, old)
}

// advance takes steps 3 to the end: create, stop, set aside, rename, start, verify, commit (or
// roll back). Each step finds what an earlier, interrupted run of it left (the new container, a
// stopped or gone old one, names already taken), so Recover rolls an interrupted update forward
// with it too.
func (t *txn) advance(ctx context.Context, old container.InspectResponse) Result {
	r := t.r
	if r.Spec.StartFirst && r.WasRunning && !r.Handover {
		return t.advanceStartFirst(ctx, old)
	}
	// 3. create the new container under a temporary name while the old one still runs
	if e := t.createNew(ctx, old); e != nil {
		return t.fail(ctx, e)
	}

	// 4. stop the old one; downtime starts
	r.Stopped = true // from here on, what depends on it has been disturbed, whatever the outcome
	if err := t.journal(stepStop); err != nil {
		return t.fail(ctx, newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", err))
	}
	if e := t.stopOld(ctx, old); e != nil {
		return t.fail(ctx, e)
	}
	down := time.Now()

	// 5. set it aside (an AutoRemove container is gone already: the snapshot is the way back)
	if !r.AutoRemove {
		if e := t.setAside(ctx); e != nil {
			return t.fail(ctx, e)
		}
	}

	// 6. the new container takes the name
	if e := t.nameNew(ctx); e != nil {
		return t.fail(ctx, e)
	}

	// 7. start and verify (a container that was not running is replaced by one not running)
	if r.WasRunning {
		if err := t.journal(stepStart); err != nil {
			return t.fail(ctx, newError(r.ContainerID, failure.StageStart, failure.StoreError, "writing the journal", err))
		}
		exited, e := t.startNew(ctx)
		if e != nil {
			return t.fail(ctx, e)
		}
		r.Downtime = time.Since(down)
		t.markStarted()
		if err := t.journal(stepVerify); err != nil {
			return t.fail(ctx, newError(r.ContainerID, failure.StageVerify, failure.StoreError, "writing the journal", err))
		}
		if e := t.verify(ctx, r.NewID, exited); e != nil {
			if !r.Spec.Rollback && e.Reason == failure.Unhealthy && t.running(ctx, r.NewID) && ctx.Err() == nil {
				t.log().Warn("new container failed its health gate; kept (rollback disabled)", "err", e)
				return t.commit(ctx, e)
			}
			return t.fail(ctx, e)
		}
	}
	return t.commit(ctx, nil)
}

// prepare takes steps 1 and 2 of a transaction: snapshot the container and pull the new image.
// It returns the snapshot, or the transaction's final Result when it ended there (a failure, or
// an image that did not change).
func (t *txn) prepare(ctx context.Context) (container.InspectResponse, *Result) {
	r := t.r
	end := func(res Result) (container.InspectResponse, *Result) { return container.InspectResponse{}, &res }

	// 1. snapshot (the inspect changes nothing: it comes before the first journal write, so that
	// the record, and every log line, names the container from the start)
	res, err := t.m.d.ContainerInspect(ctx, r.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		reason := failure.ContainerNotFound
		if !cerrdefs.IsNotFound(err) {
			reason = failure.Interrupted
			if !isCtxErr(err) {
				reason = failure.ImageInspectError
			}
		}
		return end(t.finish(newError(r.ContainerID, failure.StageCheck, reason, "inspecting the container", err), OutcomeFailed))
	}
	old := res.Container
	r.Name = strings.TrimPrefix(old.Name, "/")
	r.Snapshot = res.Raw
	r.OldImageID = old.Image
	r.AutoRemove = old.HostConfig != nil && old.HostConfig.AutoRemove
	r.WasRunning = old.State != nil && (old.State.Running || old.State.Restarting)
	if e := t.refuse(ctx); e != nil {
		// Nothing was touched: not journaled, so that a refusal repeated every run leaves no trace.
		t.log().Warn("update refused", "err", e)
		return end(Result{TxID: r.TxID, Name: r.Name, OldID: r.ContainerID, OldImageID: r.OldImageID, Outcome: OutcomeFailed, Err: e})
	}
	if err := t.journal(stepSnapshot); err != nil {
		return end(t.finish(newError(r.ContainerID, failure.StageCheck, failure.StoreError, "writing the journal", err), OutcomeFailed))
	}
	oldImg, err := t.oldImage(ctx, old.Image)
	if err != nil {
		return end(t.finish(newError(r.ContainerID, failure.StageCheck, failure.ImageInspectError, "inspecting the old image "+shortID(old.Image), err), OutcomeFailed))
	}
	r.OldImage = oldImg

	// 2. pull
	if err := t.journal(stepPull); err != nil {
		return end(t.finish(newError(r.ContainerID, failure.StagePull, failure.StoreError, "writing the journal", err), OutcomeFailed))
	}
	if e := t.pull(ctx, old); e != nil {
		return end(t.finish(e, OutcomeFailed))
	}
	if !r.Spec.Recreate && r.NewImageID == r.OldImageID {
		t.log().Debug("image unchanged", "image", r.NewImage)
		res := t.finish(nil, OutcomeUnchanged)
		_ = t.m.s.DeleteJournal(r.TxID) // nothing happened: keep the journal to real changes
		return end(res)
	}
	return old, nil
}

// createNew journals step create, then creates the new container (create).
func (t *txn) createNew(ctx context.Context, old container.InspectResponse) *Error {
	if err := t.journal(stepCreate); err != nil {
		return newError(t.r.ContainerID, failure.StageCreate, failure.StoreError, "writing the journal", err)
	}
	return t.create(ctx, old)
}

// refuse says why the container in the snapshot must not be updated at all (or not in the order
// asked for), or nil.
func (t *txn) refuse(ctx context.Context) *Error {
	r := t.r
	if IsTemporaryName(r.Name) {
		return newError(r.ContainerID, failure.StageCheck, failure.ContainerNotFound,
			fmt.Sprintf("%q is a temporary container of an update, not a service", r.Name), nil)
	}
	if mac := r.configuredMAC(); mac != "" && versions.LessThan(t.m.d.ClientVersion(), "1.44") && !canCreateLegacyMAC(t.m.d) {
		return newError(r.ContainerID, failure.StagePlan, failure.Unsupported, fmt.Sprintf(
			"the container has a user-set MAC address %s, which this connection to the engine (API %s, below 1.44) cannot set on a new container; nothing was changed",
			mac, t.m.d.ClientVersion()), nil)
	}
	if r.Spec.StartFirst {
		return t.refuseStartFirst(ctx)
	}
	return nil
}

// setAside journals step set_aside, then renames the old container to <name>-watcher-<txid>.
// An old container that is gone already (removed by the engine or by hand) has nothing to set
// aside: the snapshot is the way back.
func (t *txn) setAside(ctx context.Context) *Error {
	r := t.r
	if err := t.journal(stepSetAside); err != nil {
		return newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", err)
	}
	err := t.claimName(ctx, r.ContainerID, asideName(r.Name, r.TxID), failure.StageStop)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return asError(err, r.ContainerID, failure.StageStop, failure.KillContainerError, "renaming the old container aside")
	}
	return nil
}

// nameNew journals step rename, then gives the new container the service's name.
func (t *txn) nameNew(ctx context.Context) *Error {
	r := t.r
	if err := t.journal(stepRename); err != nil {
		return newError(r.ContainerID, failure.StageCreate, failure.StoreError, "writing the journal", err)
	}
	if err := t.claimName(ctx, r.NewID, r.Name, failure.StageCreate); err != nil {
		return asError(err, r.ContainerID, failure.StageCreate, failure.CreateContainerError, "renaming the new container")
	}
	return nil
}

// oldImage is the old image's details: the caller's (Spec.OldImage) when they are of image id,
// else inspected.
func (t *txn) oldImage(ctx context.Context, id string) (*ImageDetails, error) {
	if g := t.givenImage; g != nil && g.ID == id && id != "" {
		return g, nil
	}
	img, err := t.m.d.ImageInspect(ctx, id)
	if err != nil {
		return nil, err
	}
	return DetailsOf(img.InspectResponse), nil
}

// DetailsOf is what a transaction needs of an image, from its inspect.
func DetailsOf(img image.InspectResponse) *ImageDetails {
	return &ImageDetails{ID: img.ID, OS: img.Os, Architecture: img.Architecture, Variant: img.Variant, RepoTags: img.RepoTags, Config: img.Config}
}

// pull fetches the new image by digest (reading the stream to its end, where errors arrive),
// tags it as Spec.Image, and records its ID. With Recreate it only resolves the current image.
func (t *txn) pull(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	r.NewImage = r.Spec.Image
	if r.NewImage == "" {
		r.NewImage = old.Config.Image
	}
	if r.Spec.Recreate {
		img, err := t.m.d.ImageInspect(ctx, r.NewImage)
		if err != nil || img.ID != old.Image {
			// the reference moved (or is gone): recreate on the image the container runs
			r.NewImage = old.Image
		}
		r.NewImageID = old.Image
		return nil
	}
	from := r.Spec.PullRef
	if id := r.Spec.ImageID; id != "" {
		if img, err := t.m.d.ImageInspect(ctx, id); err == nil {
			return t.tag(ctx, img.ID)
		}
		if from == "" {
			return newError(r.ContainerID, failure.StagePull, failure.ErrImagePull,
				"image "+shortID(id)+" is gone and its registry digest is unknown, so it cannot be pulled again", nil)
		}
	}
	if from == "" {
		from = r.NewImage
	}
	opts := client.ImagePullOptions{RegistryAuth: t.auth}
	if p := r.OldImage; p != nil && p.OS != "" && p.Architecture != "" {
		opts.Platforms = []ocispec.Platform{{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}}
	}
	resp, err := t.m.d.ImagePull(ctx, from, opts)
	if err == nil {
		err = resp.Wait(ctx)
		_ = resp.Close()
	}
	if err != nil {
		return newError(r.ContainerID, failure.StagePull, failure.ErrImagePull, "pulling "+from, err)
	}
	return t.tag(ctx, from)
}

// tag names the image from (what was pulled, or an image ID) as the new reference, and records
// the new image's ID.
func (t *txn) tag(ctx context.Context, from string) *Error {
	r := t.r
	if from != r.NewImage {
		if _, err := t.m.d.ImageTag(ctx, client.ImageTagOptions{Source: from, Target: r.NewImage}); err != nil {
			return newError(r.ContainerID, failure.StagePull, failure.ErrImagePull, "tagging "+from+" as "+r.NewImage, err)
		}
	}
	img, err := t.m.d.ImageInspect(ctx, r.NewImage)
	if err != nil {
		return newError(r.ContainerID, failure.StagePull, failure.ImageInspectError, "inspecting "+r.NewImage, err)
	}
	r.NewImageID = img.ID
	return nil
}

// create makes the new container under its temporary name, or finds the one this transaction
// made already (txn.ours). It is not started.
func (t *txn) create(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	if r.NewID != "" {
		if _, err := t.inspect(ctx, r.NewID); err == nil {
			return nil
		} else if !cerrdefs.IsNotFound(err) {
			return newError(r.ContainerID, failure.StageCreate, failure.CreateContainerError, "inspecting the new container", err)
		}
		r.NewID = "" // removed meanwhile (by hand): made again below
	}
	if !t.fresh {
		if mine, err := t.mine(ctx, r.TxID); err == nil && len(mine) > 0 {
			r.NewID = mine[0].ID
			return nil
		}
	}
	t.fresh = false // a create tried may have made one, answer lost
	plan, err := t.plan(ctx, old, r.NewImage, r.Spec.Replaced, r.TxID)
	if err != nil {
		return newError(r.ContainerID, failure.StageCreate, failure.CreateContainerConfigError, "building the create request", err)
	}
	id, err := t.createFrom(ctx, tempName(r.Name, r.TxID), plan)
	if id != "" {
		r.NewID = id
	}
	if err != nil {
		return classifyCreate(r.ContainerID, err)
	}
	return nil
}

// plan builds the create request for a container like old on image, labelled label, with the
// destinations that volumes_from provides left to it.
func (t *txn) plan(ctx context.Context, old container.InspectResponse, image string, replaced map[string]string, label string) (*createPlan, error) {
	in := createInput{MAC: t.r.configuredMAC(), OldImage: t.r.OldImage, Image: image, Replaced: replaced,
		API: t.m.d.ClientVersion(), Label: label}
	if old.HostConfig != nil && len(old.HostConfig.VolumesFrom) > 0 {
		from, err := t.volumesFromTargets(ctx, old.HostConfig.VolumesFrom, replaced)
		if err != nil {
			return nil, err
		}
		in.FromOthers = from
	}
	plan, err := buildCreate(old, in)
	if err != nil {
		return nil, err
	}
	for _, w := range plan.Warnings {
		t.log().Warn(w)
	}
	return plan, nil
}

// volumesFromTargets returns the container paths the volumes_from containers provide (by their
// replacements when replaced maps them): an image VOLUME at one of those is theirs, not an
// anonymous volume to mount again.
func (t *txn) volumesFromTargets(ctx context.Context, volumesFrom []string, replaced map[string]string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, vf := range volumesFrom {
		ref, _, _ := strings.Cut(vf, ":")
		if n := lookupReplaced(ref, replaced); n != "" {
			ref = n
		}
		src, err := t.inspect(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("inspecting volumes_from container %s: %w", ref, err)
		}
		for _, mp := range src.Mounts {
			out[mp.Destination] = true
		}
	}
	return out, nil
}

// createFrom creates a container named name from plan and connects its further networks. It
// returns the ID as soon as the engine gave one, even with an error after it.
func (t *txn) createFrom(ctx context.Context, name string, plan *createPlan) (string, error) {
	var id string
	var err error
	if plan.LegacyMAC != "" {
		id, err = createLegacyMAC(ctx, t.m.d, name, plan)
	} else {
		var res client.ContainerCreateResult
		res, err = t.m.d.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: plan.Config, HostConfig: plan.Host, NetworkingConfig: plan.Network})
		id = res.ID
	}
	if err != nil {
		return id, err
	}
	for n, ep := range plan.Connect {
		if _, err := t.m.d.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: id, EndpointConfig: ep}); err != nil {
			return id, fmt.Errorf("connecting network %s: %w", n, err)
		}
	}
	return id, nil
}

// classifyCreate: a request the engine rejects (4xx) is a config error, anything else not.
func classifyCreate(id string, err error) *Error {
	switch {
	case isNameInUse(err):
		return newError(id, failure.StageCreate, failure.CreateContainerError, "name held by a container this update did not create", err)
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsPermissionDenied(err), cerrdefs.IsNotFound(err):
		return newError(id, failure.StageCreate, failure.CreateContainerConfigError, "", err)
	}
	return newError(id, failure.StageCreate, failure.CreateContainerError, "", err)
}

// stopOld stops the replaced container with its stop signal and timeout, and returns once it no
// longer runs (is gone, for AutoRemove). The step is finished even when the caller's context
// ends (the daemon shutting down): the engine carries a stop through whatever happens to the
// request, so a stop abandoned half-way would leave a container no later decision can trust.
// Nor is the request's answer trusted: a proxy's timeout, a cut connection or an error can hide a
// stop the engine goes on with, so the container's state decides, asked until a stop the engine
// received must have ended (stop timeout plus margin). A failed request is sent once more (one
// the engine never got is then carried out; one in progress is joined). 304 and 404 are success.
// For AutoRemove the wait for "removed" is registered before the stop, and 409 "removal ...
// already in progress" means going away: it is waited out and never removed.
func (t *txn) stopOld(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	ctx = context.WithoutCancel(ctx)
	deadline := t.stopDeadline(time.Now())
	var waitGone func() error
	if r.AutoRemove {
		waitGone = t.waitRemoved(ctx, r.ContainerID, time.Until(deadline)+removeWait)
	}
	opts := client.ContainerStopOptions{Signal: r.Spec.StopSignal, Timeout: t.stopTimeout(old.Config)}
	stopped, err := t.requestStop(ctx, opts, deadline)
	if err != nil {
		t.log().Warn("the stop request failed; asking again, and judging by the container's state", "err", err)
		// Journaled again, so that Recover's wait for a stop in flight counts from this request.
		if jerr := t.journal(stepStop); jerr != nil {
			return newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", jerr)
		}
		deadline = t.stopDeadline(time.Now())
		stopped, err = t.requestStop(ctx, opts, deadline)
	}
	running, ierr := false, error(nil)
	if !stopped {
		running, ierr = t.untilStopped(ctx, r.ContainerID, deadline)
	}
	if running || ierr != nil {
		switch {
		case ierr != nil:
			err = ierr
		case err == nil:
			err = errors.New("still running after its stop timeout")
		}
		return newError(r.ContainerID, failure.StageStop, failure.KillContainerError, "", err)
	}
	if waitGone != nil {
		if err := waitGone(); err != nil {
			ins, ierr := t.inspect(ctx, r.ContainerID)
			switch {
			case cerrdefs.IsNotFound(ierr):
			case ierr == nil && ins.State.Dead:
				if err := t.forceRemove(ctx, r.ContainerID); err != nil {
					return newError(r.ContainerID, failure.StageStop, failure.KillContainerError, "removing the dead AutoRemove container", err)
				}
			default:
				return newError(r.ContainerID, failure.StageStop, failure.KillContainerError, "AutoRemove container did not go away", err)
			}
		}
	}
	return nil
}

// requestStop sends one stop request, bounded by deadline; gone and going away are success.
// stopped is the engine's own success answer (204: it answers only once the container no longer
// runs; a proxy's error never looks like one), which needs no inspect to confirm; every other
// answer, even a 404, is checked against the container's state.
func (t *txn) requestStop(ctx context.Context, opts client.ContainerStopOptions, deadline time.Time) (stopped bool, err error) {
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_, err = t.m.d.ContainerStop(rctx, t.r.ContainerID, opts)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) || isRemovalInProgress(err) {
		return false, nil
	}
	return false, err
}

// startNew starts the new container. For AutoRemove containers a wait is registered first, so
// an exit code survives the engine's removal; the channel it returns yields that code.
func (t *txn) startNew(ctx context.Context) (<-chan int, *Error) {
	r := t.r
	var exited chan int
	if r.AutoRemove {
		exited = make(chan int, 1)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.verifyWindow()+t.healthTimeout()+removeWait)
		w := t.m.d.ContainerWait(wctx, r.NewID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
		go func() {
			defer cancel()
			select {
			case res := <-w.Result:
				exited <- int(res.StatusCode)
			case <-w.Error:
			}
		}()
	}
	var err error
	for attempt := 0; ; attempt++ {
		_, err = t.m.d.ContainerStart(ctx, r.NewID, client.ContainerStartOptions{})
		if err == nil {
			return exited, nil
		}
		// "Address already in use" (403): retried once, and only when the old container is
		// confirmed stopped: a stale endpoint may need a moment. Otherwise roll back.
		if attempt == 0 && cerrdefs.IsPermissionDenied(err) && strings.Contains(strings.ToLower(err.Error()), "already in use") && !t.running(ctx, r.ContainerID) {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		break
	}
	msg, tried := "", false
	if ins, ierr := t.inspect(ctx, r.NewID); ierr == nil && ins.State != nil {
		if st := ins.State; st.Running || (!neverStarted(st) && st.Status != container.StateCreated) {
			// The answer was lost (a cut connection, a proxy's error) but the engine started it:
			// verify judges it like any other.
			t.log().Warn("the start request failed, but the new container started; verifying it", "err", err)
			return exited, nil
		}
		if ins.State.ExitCode != 0 {
			msg = exitMessage(ins.State.ExitCode)
		}
		// The engine records why a start it tried failed; without that, the request never got
		// to try (a proxy's error, a cut connection): no verdict on the new container.
		tried = ins.State.Error != "" || ins.State.ExitCode != 0
	}
	e := newError(r.ContainerID, failure.StageStart, failure.RunContainerError, msg, err)
	e.notTried = !tried
	return nil, e
}

// running reports whether container id exists and runs.
func (t *txn) running(ctx context.Context, id string) bool {
	ins, err := t.inspect(ctx, id)
	return err == nil && ins.State != nil && ins.State.Running
}

// commit removes the set-aside container (never its volumes). The updater removes superseded
// images after the run (update.cleanup), when no container uses them any more.
// kept is the verify failure of a new container kept with rollback disabled, else nil.
func (t *txn) commit(ctx context.Context, kept *Error) Result {
	r := t.r
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
	}
	if err := t.journal(stepCommit); err != nil {
		t.log().Error("journal write failed at commit; continuing", "err", err)
	}
	if err := t.removeOld(ctx); err != nil {
		// The update stands; the old container is left set aside and Recover retries.
		t.log().Error("removing the old container failed", "err", err)
		res := r.result()
		res.Outcome = OutcomeUpdated
		return res
	}
	outcome := OutcomeUpdated
	if kept != nil {
		outcome = OutcomeFailed
	}
	return t.finish(kept, outcome)
}

// removeOld removes the replaced container at commit. One without AutoRemove (the snapshot says,
// and it cannot change) is removed with force at once; goAway's inspect would only tell what the
// snapshot does. An AutoRemove one is left to the engine's removal and waited for (goAway).
func (t *txn) removeOld(ctx context.Context) error {
	if !t.r.AutoRemove {
		return t.forceRemove(ctx, t.r.ContainerID)
	}
	return t.goAway(ctx, t.r.ContainerID, "", t.stopTimeoutSeconds())
}

// finish journals the end of the transaction and returns its Result.
func (t *txn) finish(e *Error, outcome Outcome) Result {
	r := t.r
	r.Outcome = outcome
	if e != nil {
		r.Cause = causeOf(e)
	}
	if err := t.journal(stepDone); err != nil {
		t.log().Error("journal write failed at the end of a transaction", "err", err)
	}
	res := r.result()
	if e != nil && outcome != OutcomeUpdated && outcome != OutcomeUnchanged {
		res.Err = e
	}
	if outcome == OutcomeFailed && e != nil && e.Reason != failure.RollbackFailed {
		res.Err = e
	}
	t.log().Info("update finished", "outcome", outcome, "downtime", r.Downtime, "err", errString(res.Err))
	return res
}

// asError keeps an *Error as it is and wraps anything else.
func asError(err error, id string, stage failure.Stage, reason failure.Reason, msg string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(id, stage, reason, msg, err)
}

// Detail is the error's message and underlying error on one line, without stage and reason.
func (e *Error) Detail() string { return oneLine(e) }

func oneLine(e *Error) string {
	s := e.Message
	if e.Err != nil {
		if s != "" {
			s += ": "
		}
		s += e.Err.Error()
	}
	return strings.Join(strings.Fields(s), " ")
}

func errString(e *Error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}
