package api

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/updater"
)

// Watchtower compatibility: its metric names, so its users' Grafana dashboards keep working on
// GET /v1/metrics (and /metrics), and its ?image=a,b comma list on POST /v1/update.

// watchtowerMetrics are Watchtower's five metrics, with its meaning: gauges for the last run,
// counters since the start. A scan is a run; a skipped scan is one that could not run.
type watchtowerMetrics struct {
	scanned, updated, failed prometheus.Gauge
	total, skipped           prometheus.Counter
}

func newWatchtowerMetrics(reg prometheus.Registerer) *watchtowerMetrics {
	w := &watchtowerMetrics{
		scanned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "watchtower_containers_scanned",
			Help: "Containers checked for a new image during the last run (Watchtower's metric)."}),
		updated: prometheus.NewGauge(prometheus.GaugeOpts{Name: "watchtower_containers_updated",
			Help: "Containers updated during the last run (Watchtower's metric)."}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "watchtower_containers_failed",
			Help: "Containers whose update failed during the last run, rolled back ones included (Watchtower's metric)."}),
		total: prometheus.NewCounter(prometheus.CounterOpts{Name: "watchtower_scans_total",
			Help: "Runs since the daemon started, skipped ones included (Watchtower's metric)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "watchtower_scans_skipped",
			Help: "Runs since the daemon started that could not run, e.g. with the engine unreachable (Watchtower's metric)."}),
	}
	reg.MustRegister(w.scanned, w.updated, w.failed, w.total, w.skipped)
	return w
}

// runFinished counts a run as Watchtower counted a scan: containers whose image was checked,
// updated (the watcher's own handover too) and failed after the check; a run that failed as a
// whole is a skipped scan and zeroes the gauges, as Watchtower did.
func (w *watchtowerMetrics) runFinished(r *updater.Report) {
	if r.Error != "" {
		w.scanSkipped()
		return
	}
	var scanned, updated, failed int
	for _, c := range r.Containers {
		checkFailed := c.Failure != nil && (c.Failure.Stage == failure.StageCheck || c.Failure.Stage == "")
		switch c.Outcome {
		case updater.OutcomeUpdated, updater.OutcomeHandedOver:
			scanned++
			updated++
		case updater.OutcomeRolledBack:
			scanned++
			failed++
		case updater.OutcomeFailed:
			if !checkFailed {
				scanned++
				failed++
			}
		case updater.OutcomeUpToDate, updater.OutcomeUpdateAvailable:
			scanned++
		case updater.OutcomeSkipped:
			if c.NewDigest != "" { // checked, then held (a window, a hook, an approval)
				scanned++
			}
		}
	}
	w.total.Inc()
	w.scanned.Set(float64(scanned))
	w.updated.Set(float64(updated))
	w.failed.Set(float64(failed))
}

func (w *watchtowerMetrics) scanSkipped() {
	w.total.Inc()
	w.skipped.Inc()
	w.scanned.Set(0)
	w.updated.Set(0)
	w.failed.Set(0)
}

// ScanSkipped counts a run that could not start (a scheduled run with the engine unreachable)
// in Watchtower's watchtower_scans_skipped.
func (m *Metrics) ScanSkipped() {
	if m == nil {
		return
	}
	m.wt.scanSkipped()
}

// splitImages takes ?image= values, each possibly Watchtower's comma list (?image=a/b,c/d),
// at most maxValues references in all.
func splitImages(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		out = append(out, strings.Split(v, ",")...)
		if len(out) > maxValues {
			return nil, badf("too many values for image (at most %d)", maxValues)
		}
	}
	return out, nil
}
