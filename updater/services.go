package updater

import (
	"context"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/swarm"
)

// Applying a plan's service steps: each is one update through the host's service updater,
// which waits for Swarm's rolling update (swarm.Manager.Update). A step holds one of the host's
// service slots for the whole wait.

// updateService runs a service step and records its outcome on its line.
func (a *applier) updateService(ctx context.Context, s *Step, line *ContainerReport, release func()) {
	defer release()
	h := a.u.hostOf(s.c)
	res := h.Services.Update(ctx, a.u.serviceSpec(s))
	a.mu.Lock()
	recordService(line, s, res)
	if res.Outcome == swarm.OutcomeUpdated {
		a.committed = append(a.committed, committed{step: s, svc: &res, line: line})
	}
	a.mu.Unlock()
	h.log.Info("service "+map[bool]string{false: "update", true: "rollback"}[s.Rollback]+" ended", "service", s.c.Name, "id", short(s.c.ID),
		"outcome", res.Outcome, "image", res.Image, "running", res.Replicas.Running, "desired", res.Replicas.Desired,
		"duration", res.Duration.Round(time.Millisecond), "err", serviceErr(res.Err))
}

// serviceSpec is the service update of a step: the spec's image set to repo:tag@sha256:new, with
// the watcher's credentials for the registry; for a manual rollback, Swarm's previous spec.
func (u *Updater) serviceSpec(s *Step) swarm.Spec {
	t := s.c
	if s.Rollback {
		return swarm.Spec{ServiceID: t.ID, Image: s.NewImage, Expect: t.service.Spec, Rollback: true}
	}
	ref := firstNonEmpty(s.NewImage, t.Image)
	sp := swarm.Spec{ServiceID: t.ID, Image: ref + "@" + s.NewDigest}
	if auth, err := u.checker.PullAuth(ref); err == nil {
		sp.RegistryAuth = auth
	} else {
		u.log.Warn("no registry credentials for the service update; the service's own are used", "service", t.Name, "image", ref, "err", err)
	}
	return sp
}

// recordService turns a service update's result into the step's report line.
func recordService(line *ContainerReport, s *Step, res swarm.Result) {
	r := Replicas{Mode: "replicated", Desired: res.Replicas.Desired, Running: res.Replicas.Running}
	if res.Replicas.Global {
		r.Mode = "global"
	}
	if res.Replicas.Desired > 0 || res.Outcome != swarm.OutcomeFailed {
		line.Replicas = &r
	}
	if img := trimDigest(s.NewImage); img != "" && img != s.c.Image {
		line.NewImage = img
	}
	line.Failure, line.Message = nil, ""
	if res.Err != nil {
		line.Failure = &Failure{Stage: failure.StageService, Reason: res.Err.Reason, Message: res.Err.Message}
	}
	switch res.Outcome {
	case swarm.OutcomeUpdated:
		line.Outcome = OutcomeUpdated
		if s.Rollback {
			line.Message = "Swarm put the previous spec back (" + res.Image + ")"
		}
	case swarm.OutcomeRolledBack:
		line.Outcome, line.Message = OutcomeRolledBack, "Swarm rolled the update back; the service runs "+res.Previous+" again"
	default:
		line.Outcome = OutcomeFailed
	}
}

// recoveredServiceLine is the report line of a service update Recover finished.
func recoveredServiceLine(h *host, r swarm.Result) ContainerReport {
	line := ContainerReport{Kind: KindService, Host: h.Name, Name: r.Name, ID: r.ServiceID, Image: trimDigest(r.Previous),
		OldDigest: pinnedDigest(r.Previous), NewDigest: pinnedDigest(r.Image), Outcome: OutcomeFailed,
		Message: "finished a service update the watcher was interrupted in (transaction " + r.TxID + ")"}
	if img := trimDigest(r.Image); img != line.Image {
		line.NewImage = img
	}
	recordService(&line, &Step{c: &Container{Image: line.Image}}, r)
	if line.Message == "" {
		line.Message = "finished a service update the watcher was interrupted in (transaction " + r.TxID + ")"
	}
	return line
}

// handOverService runs the update of the watcher's own service (the plan's last step): the
// update is sent and journaled as waiting, the run's report stored with the line handed_over,
// and the store and listener released (Options.Release), as for a container's self-update. Swarm
// then replaces this process's task; the new task's Recover waits for the update to end and
// reports it. It returns true once released; otherwise the line says what failed.
func (u *Updater) handOverService(ctx context.Context, rep *Report, s *Step, line *ContainerReport) bool {
	t := s.c
	u.setStatus(t, t.status(StateUpdating))
	u.log.Info("updating the watcher's own service: Swarm replaces its task, the new one finishes the update", "service", t.Name, "cause", s.Cause)
	start := time.Now()
	sp := u.serviceSpec(s)
	sp.NoWait = true
	res := u.hostOf(t).Services.Update(ctx, sp)
	if res.Outcome != swarm.OutcomeSent {
		recordService(line, s, res)
		line.Duration = time.Since(start)
		u.setStatus(t, statusOf(t, line))
		return false
	}
	line.Outcome, line.Failure = OutcomeHandedOver, nil
	line.Message = "Swarm replaces this watcher's task (" + s.Cause + "); the new task waits for the update to end and reports it"
	line.Duration = time.Since(start)
	if err := u.release(ctx, rep, ServiceSuccessor(t.ID)); err != nil {
		// The update is on its way: Swarm replaces this task whatever happens here, and the next
		// start resumes the wait from the journal.
		u.log.Error("the watcher's own service update was sent, but releasing the state file failed", "err", err)
		return false
	}
	u.tell(rep)
	return true
}

// trimDigest is a reference without the digest it pins (repo:tag@sha256:… -> repo:tag).
func trimDigest(ref string) string {
	if base, _, ok := strings.Cut(ref, "@"); ok && strings.ContainsRune(base[strings.LastIndexByte(base, '/')+1:], ':') {
		return base
	}
	return ref
}

// digestOf is the digest a reference pins, "" when none.
func pinnedDigest(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ""
}

// repoDigest is ref's repository with digest d (registry/repo@sha256:…).
func repoDigest(ref, d string) string {
	r, err := name.ParseReference(trimDigest(ref))
	if err != nil || d == "" {
		return ""
	}
	return r.Context().Name() + "@" + d
}

func serviceErr(e *swarm.Error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}
