package updater

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/watcher-dev/watcher/failure"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
)

// cycle is one run's work: observe, check, plan, apply, clean up. It fills rep, and returns the
// watcher's own update when there is one to hand over (after everything else: see Execute).
func (u *Updater) cycle(ctx context.Context, req Request, rep *Report) (self *Candidate) {
	obs, err := u.observe(ctx)
	if err != nil {
		rep.Error = "docker engine: " + err.Error()
		u.log.Error("run could not observe the engine", "run", rep.ID, "err", err)
		return nil
	}
	targets := selectTargets(obs.Watched, req)
	lines := make(map[string]*ContainerReport, len(targets))
	var queries []registry.Query
	var queried, tagged []*Target // tagged: under patch/minor/major (policy.go)
	for _, t := range targets {
		line := &ContainerReport{Name: t.Name, ID: t.ID, Image: t.Image, Policy: t.Settings.Policy, Mode: t.Settings.Mode, Outcome: OutcomeFailed}
		lines[t.Name] = line
		switch {
		case t.SettingsErr != nil:
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: failure.InvalidLabel, Message: t.SettingsErr.Error()}
		case t.image == nil || t.image.err != nil:
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: failure.ImageInspectError, Message: fmt.Sprint("inspecting the container's image: ", t.image.errOrMissing())}
		case t.Settings.Policy != PolicyDigest:
			tagged = append(tagged, t)
		default:
			line.OldDigest = localDigest(t)
			queries = append(queries, registry.Query{Ref: t.Image, Platform: t.image.platform(), RepoDigests: t.image.RepoDigests, ImageID: t.ImageID})
			queried = append(queried, t)
		}
	}

	results := u.checker.Check(ctx, queries)
	var cands []Candidate
	for i, res := range results {
		t := queried[i]
		line := lines[t.Name]
		if res.LocalDigest != "" {
			line.OldDigest = res.LocalDigest
		}
		line.NewDigest = res.Digest
		switch {
		case res.Reason == failure.InvalidReference:
			line.Outcome, line.Message = OutcomeSkipped, res.Message
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: res.Reason, Message: res.Message}
		case res.Reason != "":
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: res.Reason, Message: res.Message}
		case !res.UpdateAvailable:
			line.Outcome = OutcomeUpToDate
		case t.Settings.MinAge > 0 && u.tooNew(ctx, t, res, line):
			// line says why: skipped "too new (age …)", or failed reading the creation time
		default:
			cause := fmt.Sprintf("digest %s -> %s", shortDigest(line.OldDigest), shortDigest(res.Digest))
			if c := u.decide(req, line, Candidate{Target: t, NewDigest: res.Digest, Cause: cause}); c != nil {
				cands = append(cands, *c)
			}
		}
	}
	cands = append(cands, u.checkTagPolicies(ctx, req, tagged, lines)...) // carry NewImage: repo:newtag
	if i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Target.Self }); i >= 0 {
		self = &cands[i]
		cands = slices.Delete(slices.Clone(cands), i, i+1)
		lines[self.Target.Name].Outcome, lines[self.Target.Name].Message = OutcomeSkipped, "the watcher's own update waits for the rest of the run"
	}
	for _, t := range targets {
		u.setStatus(statusOf(t, lines[t.Name]))
	}

	if len(cands) > 0 && ctx.Err() == nil {
		u.applyCandidates(ctx, obs, cands, lines)
	}
	for _, t := range targets {
		rep.Containers = append(rep.Containers, *lines[t.Name])
	}
	// Dependents restarted or recreated that are not themselves watched get a line too.
	for _, name := range sortedKeys(lines) {
		if t := obs.byName[name]; t != nil && !slices.Contains(targets, t) {
			rep.Containers = append(rep.Containers, *lines[name])
		}
	}
	return self
}

func (u *Updater) applyCandidates(ctx context.Context, obs *Observed, cands []Candidate, lines map[string]*ContainerReport) {
	// Ordering needs links and ipc/pid modes, which only inspect shows: inspect the running
	// containers now that there is something to order (an unchanged cycle never pays for this).
	var running []*Target
	for _, t := range obs.All {
		if t.State == "running" || t.Watched {
			running = append(running, t)
		}
	}
	if err := u.inspectTargets(ctx, running); err != nil {
		for _, c := range cands {
			lines[c.Target.Name].Failure = &Failure{Stage: failure.StageCheck, Reason: failure.ImageInspectError, Message: err.Error()}
		}
		return
	}
	plan := buildPlan(obs, cands)
	for _, s := range plan.Skipped {
		line := lines[s.Target.Name]
		line.Outcome, line.Message = OutcomeSkipped, s.Why
	}
	if plan.Steps() > 0 {
		u.log.Info("applying plan", "steps", plan.Steps(), "groups", len(plan.Groups), "plan", plan.String())
	}
	superseded := u.apply(ctx, plan, lines)
	if u.opts.Cleanup && len(superseded) > 0 {
		u.cleanup(ctx, superseded)
	}
}

// apply runs the plan: groups concurrently, each group's steps in order. update.parallel bounds
// how many containers are in their disruptive phase at once (pull, stop, create, start): a step
// holds a slot until its new container has started (lifecycle's Spec.Started), then gives it up
// while it verifies, so verify windows of many containers overlap instead of queueing behind each
// other. A failed step never stops the others; a dependent whose parent was never stopped is not
// restarted.
func (u *Updater) apply(ctx context.Context, plan *Plan, lines map[string]*ContainerReport) (superseded []string) {
	var mu sync.Mutex // guards lines, replaced, untouched and superseded
	replaced := map[string]string{}
	untouched := map[string]bool{} // steps that ended without stopping their container
	slots := make(chan struct{}, u.opts.Parallel)
	var wg sync.WaitGroup
	for _, group := range plan.Groups {
		wg.Add(1)
		go func(group []*Step) {
			defer wg.Done()
			for _, s := range group {
				t := s.Target
				mu.Lock()
				line := lines[t.Name]
				if line == nil {
					line = &ContainerReport{Name: t.Name, ID: t.ID, Image: t.Image, Outcome: OutcomeFailed}
					lines[t.Name] = line
				}
				var stillParent string
				for _, d := range s.DependsOn {
					if untouched[d] {
						stillParent = d
					}
				}
				repl := make(map[string]string, len(replaced))
				for k, v := range replaced {
					repl[k] = v
				}
				mu.Unlock()

				release, ok := acquire(ctx, slots)
				if !ok {
					mu.Lock()
					line.Outcome, line.Message, line.Failure = OutcomeSkipped, "the watcher is stopping; not started", nil
					untouched[t.Name] = true
					mu.Unlock()
					continue
				}
				if s.Op != OpUpdate && stillParent != "" {
					release()
					mu.Lock()
					line.Outcome, line.Message = OutcomeSkipped, stillParent+" was not replaced; nothing to restart for"
					untouched[t.Name] = true
					mu.Unlock()
					continue
				}
				l := u.log.With("container", t.Name, "id", short(t.ID))
				start := time.Now()
				u.setStatus(ContainerStatus{Name: t.Name, ID: t.ID, Image: t.Image, Policy: t.Settings.Policy, Mode: t.Settings.Mode, State: StateUpdating})
				switch s.Op {
				case OpUpdate, OpRecreate:
					sp := u.spec(s, repl)
					sp.Started = release
					res := u.life.Replace(ctx, sp)
					release() // lifecycle calls Started exactly once; this covers a Replacer that does not
					mu.Lock()
					u.record(line, s, res)
					if res.NewID != "" && res.NewID != t.ID {
						replaced[t.ID] = res.NewID
					}
					if res.Outcome == lifecycle.OutcomeUpdated && s.Op == OpUpdate && res.OldImageID != "" && res.OldImageID != res.NewImageID {
						superseded = append(superseded, res.OldImageID)
					}
					if !res.Stopped {
						untouched[t.Name] = true
					}
					mu.Unlock()
					l.Info("container "+string(s.Op), "outcome", res.Outcome, "new_id", short(res.NewID), "downtime", res.Downtime, "err", errString(res.Err))
				case OpRestart:
					err := u.life.Restart(ctx, t.ID, t.Settings.StopSignal, t.Settings.StopTimeout)
					release()
					mu.Lock()
					if err != nil {
						line.Outcome = OutcomeFailed
						line.Failure = &Failure{Stage: err.Stage, Reason: err.Reason, Message: err.Detail()}
					} else {
						line.Outcome, line.Message, line.Failure = OutcomeRestarted, s.Cause, nil
					}
					mu.Unlock()
					l.Info("container restarted", "cause", s.Cause, "err", errString(err))
				}
				mu.Lock()
				line.Duration = time.Since(start)
				u.setStatus(ContainerStatus{Name: t.Name, ID: firstNonEmpty(line.NewID, t.ID), Image: firstNonEmpty(line.NewImage, t.Image), Policy: t.Settings.Policy, Mode: t.Settings.Mode,
					LocalDigest: line.NewDigest, RemoteDigest: line.NewDigest, State: stateOf(line), LastError: line.Failure})
				mu.Unlock()
			}
		}(group)
	}
	wg.Wait()
	return superseded
}

// acquire takes one of the slots, or gives up when ctx ends (the watcher is stopping). The
// returned release may be called any number of times; only the first gives the slot back.
func acquire(ctx context.Context, slots chan struct{}) (release func(), ok bool) {
	if ctx.Err() != nil {
		return nil, false
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-slots }) }, true
}

func (u *Updater) spec(s *Step, replaced map[string]string) lifecycle.Spec {
	t := s.Target
	sp := lifecycle.Spec{
		ContainerID:   t.ID,
		Image:         firstNonEmpty(s.NewImage, t.Image),
		Replaced:      replaced,
		StopSignal:    t.Settings.StopSignal,
		StopTimeout:   t.Settings.StopTimeout,
		Verify:        t.Settings.Verify,
		HealthTimeout: t.Settings.HealthTimeout,
		Rollback:      u.opts.Rollback,
	}
	if s.Op == OpRecreate {
		sp.Recreate = true
		return sp
	}
	if ref, err := name.ParseReference(sp.Image); err == nil && s.NewDigest != "" {
		sp.PullRef = ref.Context().Name() + "@" + s.NewDigest
	}
	if auth, err := u.checker.PullAuth(sp.Image); err == nil {
		sp.RegistryAuth = auth
	} else {
		u.log.Warn("no registry credentials for the pull; trying anonymously", "image", sp.Image, "err", err)
	}
	return sp
}

// record turns a lifecycle result into the container's report line.
func (u *Updater) record(line *ContainerReport, s *Step, res lifecycle.Result) {
	line.Downtime = res.Downtime
	if res.NewID != "" && res.NewID != line.ID {
		line.NewID = res.NewID
	}
	if s.NewImage != "" && s.NewImage != s.Target.Image {
		line.NewImage = s.NewImage
	}
	if res.Err != nil {
		line.Failure = &Failure{Stage: res.Err.Stage, Reason: res.Err.Reason, Message: res.Err.Message}
	} else {
		line.Failure = nil
	}
	switch res.Outcome {
	case lifecycle.OutcomeUpdated:
		if s.Op == OpRecreate {
			line.Outcome, line.Message = OutcomeRestarted, "recreated: "+s.Cause
		} else {
			line.Outcome = OutcomeUpdated
		}
	case lifecycle.OutcomeUnchanged:
		line.Outcome, line.Message = OutcomeUpToDate, "the tag moved but this platform's image is the same"
	case lifecycle.OutcomeRolledBack:
		line.Outcome, line.Message = OutcomeRolledBack, "the new container failed; the old one runs again"
	default:
		line.Outcome = OutcomeFailed
	}
}

// cleanup removes images superseded by this run's updates when no container (running or not)
// still uses them. It never forces: an image some container needs stays.
func (u *Updater) cleanup(ctx context.Context, superseded []string) {
	list, err := u.engine.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		u.log.Warn("cleanup skipped: could not list containers", "err", err)
		return
	}
	used := map[string]bool{}
	for _, c := range list.Items {
		used[c.ImageID] = true
	}
	for _, id := range union(superseded, nil) {
		if used[id] {
			continue
		}
		if _, err := u.engine.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
			u.log.Warn("could not remove a superseded image", "image", id, "err", err)
		} else if err == nil {
			u.log.Info("removed superseded image", "image", id)
		}
	}
}

func selectTargets(ts []*Target, req Request) []*Target {
	if len(req.Containers) == 0 && len(req.Images) == 0 {
		return ts
	}
	var out []*Target
	for _, t := range ts {
		if slices.Contains(req.Containers, t.Name) || matchesImage(t.Image, req.Images) {
			out = append(out, t)
		}
	}
	return out
}

// matchesImage compares references after normalising them (nginx == docker.io/library/nginx:latest).
// A filter without a tag matches every tag of that repository.
func matchesImage(image string, filters []string) bool {
	ref, err := name.ParseReference(image)
	if err != nil {
		return slices.Contains(filters, image)
	}
	for _, f := range filters {
		fr, err := name.ParseReference(f)
		if err != nil {
			continue
		}
		if fr.Context().Name() != ref.Context().Name() {
			continue
		}
		if !strings.Contains(strings.TrimPrefix(f, fr.Context().RegistryStr()), ":") || fr.Identifier() == ref.Identifier() {
			return true
		}
	}
	return false
}

func localDigest(t *Target) string {
	ref, err := name.ParseReference(t.Image)
	if err != nil || t.image == nil {
		return ""
	}
	for _, rd := range t.image.RepoDigests {
		if d, err := name.NewDigest(rd); err == nil && d.Context().Name() == ref.Context().Name() {
			return d.DigestStr()
		}
	}
	return ""
}

func (i *imageInfo) platform() v1.Platform {
	return v1.Platform{OS: i.OS, Architecture: i.Arch, Variant: i.Variant}
}

func (i *imageInfo) errOrMissing() error {
	if i == nil {
		return fmt.Errorf("image not found")
	}
	return i.err
}

func statusOf(t *Target, line *ContainerReport) ContainerStatus {
	return ContainerStatus{Name: t.Name, ID: t.ID, Image: t.Image, Policy: t.Settings.Policy, Mode: t.Settings.Mode,
		LocalDigest: line.OldDigest, RemoteDigest: line.NewDigest, State: stateOf(line), LastError: line.Failure, CheckedAt: time.Now().UTC()}
}

func stateOf(line *ContainerReport) State {
	switch line.Outcome {
	case OutcomeUpToDate, OutcomeUpdated, OutcomeRestarted:
		return StateUpToDate
	case OutcomeUpdateAvailable:
		return StateUpdateAvailable
	case OutcomeFailed, OutcomeRolledBack:
		return StateFailed
	}
	return StateUnknown
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	if d == "" {
		return "none"
	}
	return d
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func errString(e *lifecycle.Error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}
