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
	hosts         []string // with hosts configured: the per-container metrics have a host label
	watched       *prometheus.GaugeVec
	services      *prometheus.GaugeVec // watcher_services_watched
	checks        *prometheus.CounterVec
	updates       *prometheus.CounterVec
	registryReqs  *prometheus.CounterVec
	cycleDuration prometheus.Histogram
	downtime      *prometheus.HistogramVec
	lastCycle     prometheus.Gauge
	notifications *prometheus.CounterVec
	wt            *watchtowerMetrics   // Watchtower's metric names (watchtower.go)
	hostUp        *prometheus.GaugeVec // with hosts configured: watcher_host_up{host}
}

var _ updater.Observer = (*Metrics)(nil)

// NewMetrics returns a registry with every metric registered and the known result series at 0,
// so rate() and alerts work before the first event.
func NewMetrics() *Metrics { return NewHostMetrics(nil) }

// NewHostMetrics is NewMetrics for a daemon with hosts configured (their names): the
// per-container metrics get a host label, and watcher_host_up{host} says whether the last run
// could reach each engine. Without hosts it is NewMetrics: no host label anywhere.
func NewHostMetrics(hosts []string) *Metrics {
	labels := func(l ...string) []string {
		if len(hosts) > 0 {
			return append([]string{"host"}, l...)
		}
		return l
	}
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		hosts: hosts,
		watched: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "watcher_containers_watched",
			Help: "Containers the daemon watches, as of the last run that observed the engine.",
		}, labels()),
		services: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "watcher_services_watched",
			Help: "Swarm services the daemon watches (on managers), as of the last run that observed the engine.",
		}, labels()),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_checks_total",
			Help: "Registry checks of containers' images, by result: up_to_date, update_available or the failure reason.",
		}, labels("result")),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_updates_total",
			Help: "Container updates, by result: updated, rolled_back, failed, rollback_failed.",
		}, labels("result")),
		registryReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "watcher_registry_requests_total",
			Help: "HTTP requests to registries, by host, method and status code (0: no response).",
		}, []string{"host", "method", "code"}),
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "watcher_cycle_duration_seconds",
			Help:    "Duration of a run from start to report.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		downtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "watcher_update_downtime_seconds",
			Help:    "Per replaced container, the time from stopping the old container to starting the new one.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, labels()),
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
		m.watched, m.services, m.checks, m.updates, m.registryReqs, m.cycleDuration, m.downtime, m.lastCycle, m.notifications,
	)
	m.wt = newWatchtowerMetrics(m.reg)
	if len(hosts) > 0 {
		m.hostUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "watcher_host_up",
			Help: "1 when the last run (or recovery) could reach the host's engine, 0 when it could not.",
		}, []string{"host"})
		m.reg.MustRegister(m.hostUp)
	}
	for _, h := range m.hostsOrOne() {
		m.watched.WithLabelValues(m.lv(h)...)
		m.services.WithLabelValues(m.lv(h)...)
		m.downtime.WithLabelValues(m.lv(h)...)
		for _, r := range []string{ResultUpToDate, ResultUpdateAvailable} {
			m.checks.WithLabelValues(m.lv(h, r)...)
		}
		for _, r := range []string{ResultUpdated, ResultRolledBack, ResultFailed, ResultRollbackFailed} {
			m.updates.WithLabelValues(m.lv(h, r)...)
		}
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		m.notifications.WithLabelValues(r)
	}
	return m
}

// hostsOrOne is the hosts, or one unnamed host.
func (m *Metrics) hostsOrOne() []string {
	if len(m.hosts) > 0 {
		return m.hosts
	}
	return []string{""}
}

// lv is the label values of a per-container metric on host: the host label only with hosts.
func (m *Metrics) lv(host string, rest ...string) []string {
	if len(m.hosts) > 0 {
		return append([]string{host}, rest...)
	}
	return rest
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// RunFinished records a finished run (it implements updater.Observer):
//   - per container (and Swarm service), its check result and, where a replacement (a service
//     update) was attempted, its update result; skipped and restarted containers count in neither;
//   - the run's duration, each container's downtime (when there was any), the finish time;
//   - watcher_containers_watched from every run that observed the engine (Report.Watched counts
//     the watched containers whatever the run's filter; dependents and recovery runs do not count);
//     with hosts, per host that answered, and watcher_host_up for every host the run looked at.
func (m *Metrics) RunFinished(r *updater.Report) {
	if m == nil || r == nil {
		return
	}
	for _, c := range r.Containers {
		if res := checkResult(c); res != "" {
			m.checks.WithLabelValues(m.lv(c.Host, res)...).Inc()
		}
		if res := updateResult(c); res != "" {
			m.updates.WithLabelValues(m.lv(c.Host, res)...).Inc()
		}
		if c.Downtime > 0 {
			m.downtime.WithLabelValues(m.lv(c.Host)...).Observe(c.Downtime.Seconds())
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
	if r.Watched != nil && len(m.hosts) == 0 {
		m.watched.WithLabelValues().Set(float64(*r.Watched))
		m.services.WithLabelValues().Set(float64(r.WatchedServices))
	}
	for _, h := range r.Hosts {
		if m.hostUp == nil {
			break
		}
		up := 0.0
		if h.Reachable {
			up = 1
			if r.Watched != nil {
				m.watched.WithLabelValues(h.Name).Set(float64(h.Watched))
				m.services.WithLabelValues(h.Name).Set(float64(h.WatchedServices))
			}
		}
		m.hostUp.WithLabelValues(h.Name).Set(up)
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
// A container that got past the check (updated, rolled back, failed in a later stage) had an update;
// one on a host that could not be reached counts under that reason.
func checkResult(c updater.ContainerReport) string {
	switch c.Outcome {
	case updater.OutcomeUpToDate:
		return ResultUpToDate
	case updater.OutcomeUpdateAvailable, updater.OutcomeUpdated, updater.OutcomeRolledBack:
		return ResultUpdateAvailable
	case updater.OutcomeFailed:
		if c.Failure != nil && c.Failure.Stage != failure.StageCheck && c.Failure.Stage != failure.StageHost && c.Failure.Stage != "" {
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
		// A host that could not be reached (or stopped answering mid-update, which recovery
		// finishes) counts under its check result, EngineUnreachable.
		if c.Failure == nil || c.Failure.Stage == failure.StageCheck || c.Failure.Stage == failure.StageHost || c.Failure.Stage == "" {
			return ""
		}
		if c.Failure.Stage == failure.StageRollback || c.Failure.Reason == failure.RollbackFailed {
			return ResultRollbackFailed
		}
		return ResultFailed
	}
	return ""
}
