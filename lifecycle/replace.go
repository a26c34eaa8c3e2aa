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
	"github.com/moby/moby/client"
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

// Replace runs the transaction DESIGN.md describes: snapshot, pull, create (under a temporary
// name), stop, set aside, rename, start, verify, then commit or roll back. Every step is
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
	t := &txn{m: m, auth: s.RegistryAuth, started: started, r: &record{TxID: newTxID(), Host: m.o.Host, ContainerID: s.ContainerID,
		Spec: toSpecRecord(s), Started: time.Now()}}
	return body(t, ctx)
}

func (t *txn) run(ctx context.Context) Result {
	r := t.r
	old, done := t.prepare(ctx)
	if done != nil {
		return *done
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
	if err := t.journal(stepSnapshot); err != nil {
		return end(t.finish(newError(r.ContainerID, failure.StageCheck, failure.StoreError, "writing the journal", err), OutcomeFailed))
	}
	if strings.Contains(r.Name, nameMarker) {
		return end(t.finish(newError(r.ContainerID, failure.StageCheck, failure.ContainerNotFound,
			fmt.Sprintf("%q is a temporary container of an update, not a service", r.Name), nil), OutcomeFailed))
	}
	oldImg, err := t.imageInfo(ctx, old.Image)
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

// setAside journals step set_aside, then renames the old container to <name>-watcher-<txid>.
func (t *txn) setAside(ctx context.Context) *Error {
	r := t.r
	if err := t.journal(stepSetAside); err != nil {
		return newError(r.ContainerID, failure.StageStop, failure.StoreError, "writing the journal", err)
	}
	if err := t.claimName(ctx, r.ContainerID, asideName(r.Name, r.TxID), failure.StageStop); err != nil {
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

// imageInfo inspects an image for its defaults and platform.
func (t *txn) imageInfo(ctx context.Context, ref string) (*imageInfo, error) {
	img, err := t.m.d.ImageInspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	info := &imageInfo{ID: img.ID, OS: img.Os, Architecture: img.Architecture, Variant: img.Variant, RepoTags: img.RepoTags}
	info.Config = img.Config
	return info, nil
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
// made already. It is not started.
func (t *txn) create(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	if mine, err := t.byLabel(ctx, r.TxID); err == nil && len(mine) > 0 {
		r.NewID = mine[0].ID
		return nil
	}
	plan, err := buildCreate(old, r.configuredMAC(), r.OldImage, r.NewImage, r.Spec.Replaced, t.m.d.ClientVersion(), r.TxID)
	if err != nil {
		return newError(r.ContainerID, failure.StageCreate, failure.CreateContainerConfigError, "building the create request", err)
	}
	for _, w := range plan.Warnings {
		t.log().Warn(w)
	}
	name := tempName(r.Name, r.TxID)
	res, err := t.m.d.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: plan.Config, HostConfig: plan.Host, NetworkingConfig: plan.Network})
	if err != nil {
		return classifyCreate(r.ContainerID, err)
	}
	r.NewID = res.ID
	for n, ep := range plan.Connect {
		if _, err := t.m.d.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: ep}); err != nil {
			return classifyCreate(r.ContainerID, fmt.Errorf("connecting network %s: %w", n, err))
		}
	}
	return nil
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

// stopOld stops the replaced container with its stop signal and timeout. Stopped (304) and gone
// (404) are success. For AutoRemove the wait for "removed" is registered before the stop, and
// 409 "removal ... already in progress" means going away; it is waited out and never removed.
func (t *txn) stopOld(ctx context.Context, old container.InspectResponse) *Error {
	r := t.r
	var waitGone func() error
	if r.AutoRemove {
		waitGone = t.waitRemoved(ctx, r.ContainerID)
	}
	opts := client.ContainerStopOptions{Signal: r.Spec.StopSignal, Timeout: t.stopTimeout(old.Config)}
	_, err := t.m.d.ContainerStop(ctx, r.ContainerID, opts)
	switch {
	case err == nil, cerrdefs.IsNotFound(err), isRemovalInProgress(err):
	default:
		ins, ierr := t.inspect(ctx, r.ContainerID)
		if !cerrdefs.IsNotFound(ierr) && (ierr != nil || ins.State.Running) {
			return newError(r.ContainerID, failure.StageStop, failure.KillContainerError, "", err)
		}
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
	msg := ""
	if ins, ierr := t.inspect(ctx, r.NewID); ierr == nil && ins.State != nil && ins.State.ExitCode != 0 {
		msg = exitMessage(ins.State.ExitCode)
	}
	return nil, newError(r.ContainerID, failure.StageStart, failure.RunContainerError, msg, err)
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
	if err := t.goAway(ctx, r.ContainerID, "", t.stopTimeoutSeconds()); err != nil {
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

// finish journals the end of the transaction and returns its Result.
func (t *txn) finish(e *Error, outcome Outcome) Result {
	r := t.r
	r.Outcome = outcome
	if e != nil {
		r.Cause = &errRecord{Stage: e.Stage, Reason: e.Reason, Message: oneLine(e)}
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
