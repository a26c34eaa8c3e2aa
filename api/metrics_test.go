package api

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/watcher-dev/watcher/updater"
)

// scrape fetches /metrics through the API (with the token) and parses the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeAt(t, h, "/metrics")
}

// scrapeAt is scrape of another path (Watchtower's /v1/metrics).
func scrapeAt(t *testing.T, h http.Handler, path string) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return fams
}

// sample returns the value of the family's series with the given label values (name=value pairs).
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	s, _ := newTestServer(newFake(), Options{Token: testToken, Metrics: m})
	h := s.Handler()

	// Before any run: every family is there, known results at 0.
	fams := scrape(t, h)
	for _, name := range []string{
		"watcher_containers_watched", "watcher_checks_total", "watcher_updates_total",
		"watcher_cycle_duration_seconds", "watcher_update_downtime_seconds",
		"watcher_last_cycle_timestamp_seconds", "watcher_notifications_total",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if _, ok := fams[name]; !ok {
			t.Errorf("metric %s missing before the first run", name)
		}
	}
	if v := sample(t, fams, "watcher_updates_total", "result", "rolled_back"); v != 0 {
		t.Errorf("updates_total{rolled_back} = %v, want 0", v)
	}

	start := time.Unix(1_700_000_000, 0)
	twelve := 12
	rep := &updater.Report{
		ID: "r1", Trigger: updater.TriggerSchedule, StartedAt: start, FinishedAt: start.Add(42 * time.Second), Watched: &twelve,
		Containers: []updater.ContainerReport{
			{Name: "a", Outcome: updater.OutcomeUpToDate},
			{Name: "b", Outcome: updater.OutcomeUpToDate},
			{Name: "c", Outcome: updater.OutcomeUpdated, Downtime: 1500 * time.Millisecond},
			{Name: "d", Outcome: updater.OutcomeUpdated, Downtime: 300 * time.Millisecond},
			{Name: "e", Outcome: updater.OutcomeRolledBack, Downtime: 2 * time.Second,
				Failure: &updater.Failure{Stage: failure.StageVerify, Reason: failure.ContainerExited}},
			{Name: "f", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StageCheck, Reason: failure.ManifestUnknown}},
			{Name: "g", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StageCheck, Reason: "bad label value!"}},
			{Name: "h", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StagePull, Reason: failure.ErrImagePull}},
			{Name: "i", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: failure.StageRollback, Reason: failure.RollbackFailed}},
			{Name: "j", Outcome: updater.OutcomeUpdateAvailable},
			{Name: "k", Outcome: updater.OutcomeSkipped},
			{Name: "l", Outcome: updater.OutcomeRestarted},
		},
	}
	m.RunFinished(rep)
	m.RegistryRequest("ghcr.io", "HEAD", 200)
	m.RegistryRequest("ghcr.io", "HEAD", 200)
	m.RegistryRequest("index.docker.io", "GET", 429)
	m.NotifyResult(nil)
	m.NotifyResult(errors.New("x"))
	m.NotifyResult(errors.New("y"))

	fams = scrape(t, h)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"watcher_containers_watched", nil, 12},
		{"watcher_checks_total", []string{"result", "up_to_date"}, 2},
		{"watcher_checks_total", []string{"result", "update_available"}, 6}, // c d e h i j
		{"watcher_checks_total", []string{"result", "ManifestUnknown"}, 1},
		{"watcher_checks_total", []string{"result", "failed"}, 1}, // g: its reason is no label value
		{"watcher_updates_total", []string{"result", "updated"}, 2},
		{"watcher_updates_total", []string{"result", "rolled_back"}, 1},
		{"watcher_updates_total", []string{"result", "failed"}, 1},
		{"watcher_updates_total", []string{"result", "rollback_failed"}, 1},
		{"watcher_cycle_duration_seconds", nil, 1},
		{"watcher_update_downtime_seconds", nil, 3},
		{"watcher_last_cycle_timestamp_seconds", nil, 1_700_000_042},
		{"watcher_registry_requests_total", []string{"host", "ghcr.io", "method", "HEAD", "code", "200"}, 2},
		{"watcher_registry_requests_total", []string{"host", "index.docker.io", "method", "GET", "code", "429"}, 1},
		{"watcher_notifications_total", []string{"result", "success"}, 1},
		{"watcher_notifications_total", []string{"result", "failure"}, 2},
	}
	for _, tt := range tests {
		if got := sample(t, fams, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	hist := fams["watcher_cycle_duration_seconds"].GetMetric()[0].GetHistogram()
	if math.Abs(hist.GetSampleSum()-42) > 1e-9 {
		t.Errorf("cycle duration sum = %v, want 42", hist.GetSampleSum())
	}
	down := fams["watcher_update_downtime_seconds"].GetMetric()[0].GetHistogram()
	if math.Abs(down.GetSampleSum()-3.8) > 1e-9 {
		t.Errorf("downtime sum = %v, want 3.8", down.GetSampleSum())
	}

	// containers_watched is what a run observed, not how many lines its report has: a filtered
	// HTTP run sets it too; a run that observed nothing (recovery, engine unreachable) leaves it.
	five := 5
	m.RunFinished(&updater.Report{ID: "r2", Trigger: updater.TriggerHTTP, Watched: &five, Containers: []updater.ContainerReport{{Name: "a", Outcome: updater.OutcomeUpToDate}}})
	if got := sample(t, scrape(t, h), "watcher_containers_watched"); got != 5 {
		t.Errorf("containers_watched after a filtered HTTP run that saw 5 = %v, want 5", got)
	}
	m.RunFinished(&updater.Report{ID: "r3", Trigger: updater.TriggerRecovery, Containers: []updater.ContainerReport{{Name: "a", Outcome: updater.OutcomeUpdated}}})
	m.RunFinished(&updater.Report{ID: "r4", Trigger: updater.TriggerSchedule, Error: "docker engine: unreachable"})
	if got := sample(t, scrape(t, h), "watcher_containers_watched"); got != 5 {
		t.Errorf("containers_watched after a recovery run and a failed run = %v, want 5 (unchanged)", got)
	}
}

// TestMetricsNil: a nil *Metrics is a no-op, so callers need no nil checks.
func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.RunFinished(&updater.Report{})
	m.RegistryRequest("h", "GET", 200)
	m.NotifyResult(nil)
	NewMetrics().RunFinished(nil)
}
