package api

import (
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/watcher-dev/watcher/failure"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/watcher-dev/watcher/updater"
)

// Label values of the result label. A failed check is counted under its reason (ManifestUnknown,
// Unauthorized, RateLimited, RegistryUnavailable, InvalidReference, ...: package failure, listed
// in docs/api.md), so the label set stays as small as that table.
const (
	ResultUpToDate        = "up_to_date"
	ResultUpdateAvailable = "update_available"
	ResultUpdated         = "updated"
	ResultRolledBack      = "rolled_back"
	ResultRollbackFailed  = "rollback_failed"
	ResultFailed          = "failed"
	ResultSuccess         = "success"
	ResultFailure         = "failure"
)

// Metrics is the daemon's Prometheus registry: the watcher_* metrics docs/api.md lists, plus the
// Go and process collectors. All methods are safe for concurrent use and do nothing on a nil *Metrics.
type Metrics struct {
	reg           *prometheus.Registry
	watched       prometheus.Gauge
	checks        *prometheus.CounterVec
	updates       *prometheus.CounterVec
	registryReqs  *prometheus.CounterVec
	cycleDuration prometheus.Histogram
	downtime      prometheus.Histogram
	lastCycle     prometheus.Gauge
	notifications *prometheus.CounterVec
	wt            *watchtowerMetrics // Watchtower's metric names (watchtower.go)
}

var _ updater.Observer = (*Metrics)(nil)

// NewMetrics returns a registry with every metric registered and the known result series at 0,
// so rate() and alerts work before the first event.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		watched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "watcher_containers_watched",
			Help: "Containers the daemon watches, as of the last run that observed the engine.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_checks_total",
			Help: "Registry checks of containers' images, by result: up_to_date, update_available or the failure reason.",
		}, []string{"result"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_updates_total",
			Help: "Container updates, by result: updated, rolled_back, failed, rollback_failed.",
		}, []string{"result"}),
		registryReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_registry_requests_total",
			Help: "HTTP requests to registries, by host, method and status code (0: no response).",
		}, []string{"host", "method", "code"}),
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "watcher_cycle_duration_seconds",
			Help:    "Duration of a run from start to report.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		downtime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "watcher_update_downtime_seconds",
			Help:    "Per replaced container, the time from stopping the old container to starting the new one.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		lastCycle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "watcher_last_cycle_timestamp_seconds",
			Help: "Unix time the last run finished.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_notifications_total",
			Help: "Notifications sent, by result: success or failure.",
		}, []string{"result"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.watched, m.checks, m.updates, m.registryReqs, m.cycleDuration, m.downtime, m.lastCycle, m.notifications,
	)
	m.wt = newWatchtowerMetrics(m.reg)
	for _, r := range []string{ResultUpToDate, ResultUpdateAvailable} {
		m.checks.WithLabelValues(r)
	}
	for _, r := range []string{ResultUpdated, ResultRolledBack, ResultFailed, ResultRollbackFailed} {
		m.updates.WithLabelValues(r)
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		m.notifications.WithLabelValues(r)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// RunFinished records a finished run (it implements updater.Observer):
//   - per container, its check result and, where a replacement was attempted, its update result;
//     skipped and restarted containers count in neither;
//   - the run's duration, each container's downtime (when there was any), the finish time;
//   - watcher_containers_watched from every run that observed the engine (Report.Watched counts
//     the watched containers whatever the run's filter; dependents and recovery runs do not count).
func (m *Metrics) RunFinished(r *updater.Report) {
	if m == nil || r == nil {
		return
	}
	for _, c := range r.Containers {
		if res := checkResult(c); res != "" {
			m.checks.WithLabelValues(res).Inc()
		}
		if res := updateResult(c); res != "" {
			m.updates.WithLabelValues(res).Inc()
		}
		if c.Downtime > 0 {
			m.downtime.Observe(c.Downtime.Seconds())
		}
	}
	if !r.StartedAt.IsZero() && r.FinishedAt.After(r.StartedAt) {
		m.cycleDuration.Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
	}
	finished := r.FinishedAt
	if finished.IsZero() {
		finished = time.Now()
	}
	m.lastCycle.Set(float64(finished.UnixNano()) / 1e9)
	if r.Watched != nil {
		m.watched.Set(float64(*r.Watched))
	}
	m.wt.runFinished(r)
}

// RegistryRequest counts one HTTP request to a registry; code 0 means no response came.
func (m *Metrics) RegistryRequest(host, method string, code int) {
	if m == nil {
		return
	}
	m.registryReqs.WithLabelValues(host, method, strconv.Itoa(code)).Inc()
}

// NotifyResult counts one notification (to one URL): nil is a success.
func (m *Metrics) NotifyResult(err error) {
	if m == nil {
		return
	}
	res := ResultSuccess
	if err != nil {
		res = ResultFailure
	}
	m.notifications.WithLabelValues(res).Inc()
}

// reasonLabel bounds what may become a label value: a reason is one CamelCase word.
var reasonLabel = regexp.MustCompile(`^[A-Z][A-Za-z]{0,39}$`)

// checkResult is what the registry check found for c: "" when c was not checked.
// A container that got past the check (updated, rolled back, failed in a later stage) had an update.
func checkResult(c updater.ContainerReport) string {
	switch c.Outcome {
	case updater.OutcomeUpToDate:
		return ResultUpToDate
	case updater.OutcomeUpdateAvailable, updater.OutcomeUpdated, updater.OutcomeRolledBack:
		return ResultUpdateAvailable
	case updater.OutcomeFailed:
		if c.Failure != nil && c.Failure.Stage != failure.StageCheck && c.Failure.Stage != "" {
			return ResultUpdateAvailable
		}
		if c.Failure != nil && reasonLabel.MatchString(string(c.Failure.Reason)) {
			return string(c.Failure.Reason)
		}
		return ResultFailed
	}
	return ""
}

// updateResult is how the replacement of c went: "" when none was attempted.
func updateResult(c updater.ContainerReport) string {
	switch c.Outcome {
	case updater.OutcomeUpdated:
		return ResultUpdated
	case updater.OutcomeRolledBack:
		return ResultRolledBack
	case updater.OutcomeFailed:
		if c.Failure == nil || c.Failure.Stage == failure.StageCheck || c.Failure.Stage == "" {
			return ""
		}
		if c.Failure.Stage == failure.StageRollback || c.Failure.Reason == failure.RollbackFailed {
			return ResultRollbackFailed
		}
		return ResultFailed
	}
	return ""
}
