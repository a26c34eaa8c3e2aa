package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/updater"
)

// scrapeV1 fetches Watchtower's GET /v1/metrics with the token, as its Prometheus jobs do.
func scrapeV1(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeAt(t, h, "/v1/metrics")
}

func TestWatchtowerMetrics(t *testing.T) {
	m := NewMetrics()
	s, _ := newTestServer(newFake(), Options{Token: testToken, Metrics: m})
	h := s.Handler()
	if res := serve(t, h, "GET", "/v1/metrics", "", nil); res.code != http.StatusUnauthorized {
		t.Errorf("GET /v1/metrics without the token = %d, want 401 (as Watchtower's)", res.code)
	}
	fams := scrapeV1(t, h)
	for _, name := range []string{"watchtower_containers_scanned", "watchtower_containers_updated", "watchtower_containers_failed",
		"watchtower_scans_total", "watchtower_scans_skipped", "watcher_updates_total"} {
		if sample(t, fams, name) != 0 {
			t.Errorf("%s before any run = %v, want 0", name, sample(t, fams, name))
		}
	}

	m.RunFinished(&updater.Report{ID: "r1", Trigger: "schedule", Containers: []updater.ContainerReport{
		{Name: "a", Outcome: updater.OutcomeUpToDate},
		{Name: "b", Outcome: updater.OutcomeUpdated},
		{Name: "c", Outcome: updater.OutcomeRolledBack, Failure: &updater.Failure{Stage: failure.StageVerify, Reason: failure.ContainerExited}},
		{Name: "d", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StageCheck, Reason: failure.ManifestUnknown}},
		{Name: "e", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StagePull, Reason: failure.ErrImagePull}},
		{Name: "f", Outcome: updater.OutcomeUpdateAvailable},
		{Name: "g", Outcome: updater.OutcomeSkipped, NewDigest: "sha256:1"}, // checked, then held
		{Name: "h", Outcome: updater.OutcomeSkipped},                        // never checked
		{Name: "i", Outcome: updater.OutcomeRestarted},
	}})
	want := map[string]float64{
		"watchtower_containers_scanned": 6, // a b c e f g
		"watchtower_containers_updated": 1, // b
		"watchtower_containers_failed":  2, // c e
		"watchtower_scans_total":        1,
		"watchtower_scans_skipped":      0,
	}
	check := func(when string) {
		t.Helper()
		fams := scrapeV1(t, h)
		for name, v := range want {
			if got := sample(t, fams, name); got != v {
				t.Errorf("%s: %s = %v, want %v", when, name, got, v)
			}
		}
	}
	check("after a run")

	// A run that failed as a whole, and a scheduled run that could not start, are skipped scans.
	m.RunFinished(&updater.Report{ID: "r2", Trigger: "schedule", Error: "engine unreachable"})
	m.ScanSkipped()
	want = map[string]float64{"watchtower_containers_scanned": 0, "watchtower_containers_updated": 0,
		"watchtower_containers_failed": 0, "watchtower_scans_total": 3, "watchtower_scans_skipped": 2}
	check("after two skipped runs")
	var nilMetrics *Metrics
	nilMetrics.ScanSkipped()
}

// TestWatchtowerImageList: ?image= takes Watchtower's comma list, bounded, each entry checked.
func TestWatchtowerImageList(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken, RateLimit: -1})
	res := serve(t, s.Handler(), "POST", "/v1/update?image=foo/bar,ghcr.io/acme/baz:2&image=foo/bar", "Bearer "+testToken, nil)
	if res.code != http.StatusAccepted {
		t.Fatalf("POST ?image=a,b = %d %s", res.code, res.body)
	}
	if got := f.lastRequest(t).Images; !slices.Equal(got, []string{"foo/bar", "ghcr.io/acme/baz:2"}) {
		t.Errorf("images = %v, want [foo/bar ghcr.io/acme/baz:2]", got)
	}
	for _, target := range []string{
		"/v1/update?image=foo/bar,,baz",
		"/v1/update?image=foo/bar,foo:a:b@c",
		"/v1/update?image=" + strings.Repeat("a,", maxValues) + "a",
	} {
		if res := serve(t, s.Handler(), "POST", target, "Bearer "+testToken, nil); res.code != http.StatusBadRequest {
			t.Errorf("POST %.60s… = %d, want 400", target, res.code)
		}
	}

}
