package updater

import (
	"context"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/lifecycle"
)

var containerIDInPath = regexp.MustCompile(`(?:/containers/|/docker/|docker-)([0-9a-f]{64})(?:/|\.scope|$)`)

// DetectSelf finds the watcher's own container, so a cycle never replaces the process running
// it. It reads the engine-managed mounts (/etc/hostname and friends live under
// .../containers/<id>/), then cgroup paths, then falls back to the hostname, which defaults to the
// short container ID. Every guess is confirmed by inspecting it; "" means not in a container of
// this engine.
func DetectSelf(ctx context.Context, e Engine) string {
	var candidates []string
	for _, f := range []string{"/proc/self/mountinfo", "/proc/self/cgroup"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range containerIDInPath.FindAllStringSubmatch(string(b), -1) {
			candidates = append(candidates, m[1])
		}
	}
	if h, err := os.Hostname(); err == nil && hexID.MatchString(h) {
		candidates = append(candidates, h)
	}
	seen := map[string]bool{}
	for _, c := range candidates {
		if seen[c] {
			continue
		}
		seen[c] = true
		if res, err := e.ContainerInspect(ctx, c, client.ContainerInspectOptions{}); err == nil {
			return res.Container.ID
		}
	}
	return ""
}

// A container whose image carries this OCI title label runs a watcher (the container inherits
// the image's labels). Another instance's container is never replaced: it updates itself.
const (
	WatcherImageLabel = "org.opencontainers.image.title"
	WatcherImageTitle = "watcher"
	// WatchtowerLabel=true marks a Watchtower container (its image sets it), or one a Watchtower
	// deployment marked as its updater: an instance too, never replaced by another.
	WatchtowerLabel = "com.centurylinklabs.watchtower"
)

// isWatchtower reports whether labels carry Watchtower's instance label.
func isWatchtower(labels map[string]string) bool {
	b, err := parseBool(labels[WatchtowerLabel])
	return err == nil && b
}

// SelfReplacer hands the watcher's own container over to a successor (lifecycle.Manager). It is
// found on the Replacer by type assertion.
type SelfReplacer interface {
	Handover(ctx context.Context, s lifecycle.Spec, release func(ctx context.Context, successorID string) error) lifecycle.Result
}

var _ SelfReplacer = (*lifecycle.Manager)(nil)

// canHandOver: the watcher knows its container, the daemon can give up its store and listener,
// and lifecycle can hand over on h.
func (u *Updater) canHandOver(h *host) bool {
	_, ok := h.Life.(SelfReplacer)
	return ok && u.selfID != "" && u.opts.Release != nil
}

// release stores rep as this process's last word and gives the store and listener to the
// successor (Options.Release); until it fails, no run starts.
func (u *Updater) release(ctx context.Context, rep *Report, successor string) error {
	rep.FinishedAt = time.Now().UTC()
	u.setHandedOver(true)
	u.store(rep)
	err := u.opts.Release(ctx, successor)
	if err != nil {
		u.setHandedOver(false)
	}
	return err
}

func (u *Updater) setHandedOver(v bool) {
	u.mu.Lock()
	u.handedOver = v
	u.mu.Unlock()
}

// handOver runs the watcher's own update (the plan's last step). On success the run's report is
// stored with the watcher's line handed_over before the store is released, observers are told
// once the release succeeded, and handOver returns true: nothing else may use the store.
// Otherwise the line says what failed (nothing of the attempted handover is left on it) and the
// caller finishes the report, storing it over the handed_over one and telling observers only then.
func (u *Updater) handOver(ctx context.Context, rep *Report, s *Step) bool {
	t := s.c
	i := slices.IndexFunc(rep.Containers, func(l ContainerReport) bool { return l.ID == t.ID })
	if i < 0 {
		return false
	}
	line := &rep.Containers[i]
	if ctx.Err() != nil {
		line.Outcome, line.Message = OutcomeSkipped, "the watcher is stopping; its own update waits for the next run"
		return false
	}
	if t.isService() {
		return u.handOverService(ctx, rep, s, line)
	}
	u.setStatus(t, t.status(StateUpdating))
	u.log.Info("updating the watcher itself: handing over to a successor", "container", t.Name, "id", short(t.ID), "cause", s.Cause)
	start := time.Now()
	released := false
	res := u.hostOf(t).Life.(SelfReplacer).Handover(ctx, u.spec(s, nil), func(ctx context.Context, successor string) error {
		before := *line
		line.Outcome, line.Failure, line.NewID = OutcomeHandedOver, nil, successor
		line.Message = "successor " + short(successor) + " started (" + s.Cause + "); it verifies itself and removes this container, see its history"
		if s.NewImage != "" && s.NewImage != t.Image {
			line.NewImage = s.NewImage
		}
		line.Duration = time.Since(start)
		if err := u.release(ctx, rep, successor); err != nil {
			*line = before // lifecycle rolls back; record says how that ended
			return err
		}
		released = true
		u.tell(rep)
		return nil
	})
	if released {
		return true
	}
	record(line, s, res)
	line.Duration = time.Since(start)
	u.setStatus(t, statusOf(t, line))
	return false
}
