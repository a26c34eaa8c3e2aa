package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/watcher-dev/watcher/updater"
)

// hostsFake is the fake service of a daemon with hosts configured: edge and core.
type hostsFake struct {
	*fakeService
	mu     sync.Mutex
	states []updater.HostStatus
	asked  [][]string // the hosts each Containers call named
}

var _ HostsService = (*hostsFake)(nil)

func newHostsFake(watched ...string) *hostsFake {
	return &hostsFake{fakeService: newFake(watched...), states: []updater.HostStatus{{Name: "edge", Reachable: true}, {Name: "core", Reachable: true}}}
}

func (h *hostsFake) Named() bool { return true }

func (h *hostsFake) Hosts(context.Context) []updater.HostStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.states)
}

func (h *hostsFake) unknown(names []string) error {
	var out []string
	for _, n := range names {
		if n != "edge" && n != "core" {
			out = append(out, n)
		}
	}
	if len(out) > 0 {
		return &updater.UnknownHostError{Names: out}
	}
	return nil
}

func (h *hostsFake) Trigger(ctx context.Context, req updater.Request) (string, <-chan struct{}, error) {
	if err := h.unknown(req.Hosts); err != nil {
		return "", nil, err
	}
	return h.fakeService.Trigger(ctx, req)
}

func (h *hostsFake) Containers(ctx context.Context, hosts ...string) ([]updater.ContainerStatus, error) {
	h.mu.Lock()
	h.asked = append(h.asked, hosts)
	h.mu.Unlock()
	if err := h.unknown(hosts); err != nil {
		return nil, err
	}
	return h.fakeService.Containers(ctx, hosts...)
}

// With hosts configured, ?host= picks the hosts of a trigger and of the container list; an
// unknown host is a 404 UnknownHost. Without hosts, host is an unknown parameter as any other.
func TestHostParameter(t *testing.T) {
	f := newHostsFake("web")
	s, _ := newTestServer(f, Options{Token: testToken})
	h := s.Handler()
	bearer := "Bearer " + testToken
	if res := serve(t, h, "POST", "/v1/update?host=edge&host=core&container=web", bearer, nil); res.code != 202 {
		t.Fatalf("POST /v1/update?host=edge&host=core = %d %s, want 202", res.code, res.body)
	}
	if got := f.lastRequest(t).Hosts; !slices.Equal(got, []string{"edge", "core"}) {
		t.Errorf("trigger's hosts = %v, want [edge core]", got)
	}
	for _, tc := range []struct {
		method, target string
		code           int
		reason         string
	}{
		{"POST", "/v1/update?host=zzz", 404, ReasonUnknownHost},
		{"POST", "/v1/update?host=edge/1", 400, ReasonBadRequest},
		{"GET", "/v1/containers?host=zzz", 404, ReasonUnknownHost},
		{"GET", "/v1/containers?host=", 400, ReasonBadRequest},
	} {
		if res := serve(t, h, tc.method, tc.target, bearer, nil); res.code != tc.code || res.err.Reason != tc.reason {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.target, res.code, res.body, tc.code, tc.reason)
		}
	}
	if res := serve(t, h, "GET", "/v1/containers?host=core", bearer, nil); res.code != 200 {
		t.Errorf("GET /v1/containers?host=core = %d %s", res.code, res.body)
	}
	f.mu.Lock()
	last := f.asked[len(f.asked)-1]
	f.mu.Unlock()
	if !slices.Equal(last, []string{"core"}) {
		t.Errorf("Containers asked for %v, want [core]", last)
	}

	plain, _ := newTestServer(newFake("web"), Options{Token: testToken})
	if res := serve(t, plain.Handler(), "GET", "/v1/containers?host=edge", bearer, nil); res.code != 400 || !strings.Contains(res.err.Error, `unknown query parameter "host"`) {
		t.Errorf("without hosts, GET /v1/containers?host=edge = %d %s, want 400 unknown parameter", res.code, res.body)
	}
}

// GET /readyz lists each host: ready when all answer, degraded (still 200) when some do, 503
// when none does. Why a host is down goes to the log, never to this public endpoint.
func TestReadyzHosts(t *testing.T) {
	f := newHostsFake()
	s, logs := newTestServer(f, Options{Token: testToken})
	h := s.Handler()
	for _, tc := range []struct {
		up       []bool
		code     int
		status   string
		unreachy string
	}{
		{[]bool{true, true}, 200, "ready", ""},
		{[]bool{true, false}, 200, "degraded", "core"},
		{[]bool{false, false}, 503, "", "edge,core"},
	} {
		f.mu.Lock()
		for i := range f.states {
			f.states[i].Reachable = tc.up[i]
			f.states[i].Error = ""
			if !tc.up[i] {
				f.states[i].Error = "dial tcp 10.0.0.5:2376: secret-detail"
			}
		}
		f.mu.Unlock()
		res := serve(t, h, "GET", "/readyz", "", nil)
		var body struct {
			Status, Reason string
			Hosts          []struct {
				Name      string
				Reachable bool
			}
		}
		if err := json.Unmarshal([]byte(res.body), &body); err != nil {
			t.Fatal(err)
		}
		var down []string
		for _, hs := range body.Hosts {
			if !hs.Reachable {
				down = append(down, hs.Name)
			}
		}
		if res.code != tc.code || body.Status != tc.status || len(body.Hosts) != 2 || strings.Join(down, ",") != tc.unreachy {
			t.Errorf("readyz with hosts up %v = %d %s, want %d %q with %q unreachable", tc.up, res.code, res.body, tc.code, tc.status, tc.unreachy)
		}
		if tc.code == 503 && body.Reason != ReasonNotReady {
			t.Errorf("readyz with no host = %s, want reason NotReady", res.body)
		}
		checkNoLeak(t, "readyz", res.body)
	}
	if !strings.Contains(logs.String(), "secret-detail") {
		t.Error("why a host is down is not in the log")
	}
}

// With hosts, the per-container metrics carry the host, watcher_containers_watched is per host
// that answered, and watcher_host_up says which answered.
func TestMetricsHosts(t *testing.T) {
	m := NewHostMetrics([]string{"edge", "core"})
	s, _ := newTestServer(newFake(), Options{Token: testToken, Metrics: m})
	h := s.Handler()
	if v := sample(t, scrape(t, h), "watcher_checks_total", "host", "core", "result", "up_to_date"); v != 0 {
		t.Errorf("checks_total{core,up_to_date} before any run = %v, want 0", v)
	}
	three := 3
	m.RunFinished(&updater.Report{ID: "r", Watched: &three,
		Hosts: []updater.HostReport{{Name: "edge", Reachable: true, Watched: 3}, {Name: "core", Error: "down"}},
		Containers: []updater.ContainerReport{
			{Host: "edge", Name: "a", Outcome: updater.OutcomeUpdated, Downtime: 1},
			{Host: "edge", Name: "b", Outcome: updater.OutcomeUpToDate},
			{Host: "core", Name: "c", Outcome: updater.OutcomeFailed, Failure: &updater.Failure{Stage: "host", Reason: "EngineUnreachable"}},
		}})
	fams := scrape(t, h)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"watcher_updates_total", []string{"host", "edge", "result", "updated"}, 1},
		{"watcher_checks_total", []string{"host", "edge", "result", "up_to_date"}, 1},
		{"watcher_checks_total", []string{"host", "core", "result", "EngineUnreachable"}, 1},
		{"watcher_containers_watched", []string{"host", "edge"}, 3},
		{"watcher_host_up", []string{"host", "edge"}, 1},
		{"watcher_host_up", []string{"host", "core"}, 0},
	} {
		if v := sample(t, fams, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	plain, _ := newTestServer(newFake(), Options{Token: testToken, Metrics: NewMetrics()})
	if _, ok := scrape(t, plain.Handler())["watcher_host_up"]; ok {
		t.Error("watcher_host_up exists without hosts")
	}
}
