package updater

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/registry"
)

// recordingChecker is a fakeChecker that keeps every query it was asked.
type recordingChecker struct {
	fakeChecker
	mu      sync.Mutex
	queries []registry.Query
}

func (r *recordingChecker) Check(ctx context.Context, qs []registry.Query) []registry.Result {
	r.mu.Lock()
	r.queries = append(r.queries, qs...)
	r.mu.Unlock()
	return r.fakeChecker.Check(ctx, qs)
}

// An engine that reports the platform manifest a container was created from (the containerd
// image store) lets the check prove "unchanged" without a request: the digest reaches the query.
func TestManifestDigestReachesTheCheck(t *testing.T) {
	r := newSelfRig(nil)
	const manifest = "sha256:9999999999999999999999999999999999999999999999999999999999999999"
	r.engine.containers[1].ImageManifestDescriptor = &ocispec.Descriptor{Digest: manifest}
	checker := &recordingChecker{}
	u := New(r.engine, checker, nil, nil, Options{Logger: discardLogger()})
	u.Execute(context.Background(), "", Request{Trigger: TriggerCheck, DryRun: true})
	got := map[string]string{}
	for _, q := range checker.queries {
		got[q.Ref] = q.ManifestDigest
	}
	if got[otherImage] != manifest || got[selfImage] != "" {
		t.Errorf("queries' ManifestDigest = %q, want %s for %s only", got, manifest, otherImage)
	}
}

// Report.Watched, which sets watcher_containers_watched, counts the containers the run found
// watched: not the dependents it restarted, and the same whatever the request's filter.
func TestReportCountsWatchedOnly(t *testing.T) {
	r := newSelfRig(nil)
	r.engine.containers = append(r.engine.containers, container.Summary{ID: "dep-id", Names: []string{"/dep"}, Image: otherImage, ImageID: "sha256:appimage",
		State: container.StateRunning, Labels: map[string]string{LabelEnable: "false", LabelFollow: "true", LabelDependsOn: "app"}})
	rep := r.u.Execute(context.Background(), "", Request{Trigger: TriggerOnce})
	if l := lineOf(rep, "dep-id"); l == nil || l.Outcome != OutcomeRestarted {
		t.Fatalf("dep line = %+v, want restarted after app (it follows app)", l)
	}
	if rep.Watched == nil || *rep.Watched != 2 || len(rep.Containers) != 3 {
		t.Errorf("report: watched %v with %d lines, want 2 watched (watcher, app) and 3 lines", rep.Watched, len(rep.Containers))
	}
	r.checker.set(nil)
	filtered := r.u.Execute(context.Background(), "", Request{Trigger: TriggerHTTP, Containers: []string{"app"}})
	if filtered.Watched == nil || *filtered.Watched != 2 || len(filtered.Containers) != 1 {
		t.Errorf("filtered report: watched %v with %d lines, want 2 watched and 1 line", filtered.Watched, len(filtered.Containers))
	}
}

// When the containers cannot be inspected for ordering, the updates that need ordering are not
// applied and say why; what the plan holds without the graph is still reported as held.
func TestInspectFailureHoldsOnlyWhatNeedsOrder(t *testing.T) {
	r := newSelfRig(nil)
	r.engine.inspectErr = errors.New("engine hiccup")
	r.engine.containers = append(r.engine.containers, container.Summary{ID: "mon-id", Names: []string{"/mon"}, Image: otherImage, ImageID: "sha256:appimage",
		State: container.StateRunning, Labels: map[string]string{LabelMode: ModeMonitor}})
	rep := r.u.Execute(context.Background(), "", Request{Trigger: TriggerOnce})
	if l := lineOf(rep, otherID); l == nil || l.Outcome != OutcomeFailed || l.Failure == nil || l.Failure.Reason != failure.ImageInspectError {
		t.Errorf("app line = %+v, want failed with ImageInspectError", l)
	}
	if l := lineOf(rep, "mon-id"); l == nil || l.Outcome != OutcomeUpdateAvailable {
		t.Errorf("mon line = %+v, want update_available (monitor mode needs no ordering)", l)
	}
	if calls := r.life.calls(); len(calls) != 0 {
		t.Errorf("replacer calls = %q, want none", calls)
	}
}
