package updater

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/lifecycle"
)

// These tests drive several hosts over fakes that inject what a real engine cannot be made to do
// on demand: hang, answer errors, come back. cmd/watcher's tests run real engines (a second
// dockerd on TCP with TLS, one killed mid-run, Podman).

// hostEngine is a fakeEngine that can be down (every call fails), hang (lists block until the
// caller gives up), and counts its lists.
type hostEngine struct {
	*fakeEngine
	mu    sync.Mutex
	down  error
	hang  bool
	lists atomic.Int32
}

func (h *hostEngine) state() (error, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down, h.hang
}

func (h *hostEngine) set(down error, hang bool) {
	h.mu.Lock()
	h.down, h.hang = down, hang
	h.mu.Unlock()
}

func (h *hostEngine) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	h.lists.Add(1)
	down, hang := h.state()
	if hang {
		<-ctx.Done()
		return client.ContainerListResult{}, ctx.Err()
	}
	if down != nil {
		return client.ContainerListResult{}, down
	}
	return h.fakeEngine.ContainerList(ctx, o)
}

func (h *hostEngine) Ping(ctx context.Context, o client.PingOptions) (client.PingResult, error) {
	down, hang := h.state()
	if hang {
		<-ctx.Done()
		return client.PingResult{}, ctx.Err()
	}
	return client.PingResult{}, down
}

// oneApp is an engine with one watched container named name running otherImage.
func oneApp(name string) *hostEngine {
	return &hostEngine{fakeEngine: &fakeEngine{
		containers: []container.Summary{{ID: name + "-" + strings.Repeat("0", 60), Names: []string{"/" + name}, Image: otherImage,
			ImageID: "sha256:appimage", Labels: map[string]string{}, State: container.StateRunning}},
		repoDigests: map[string][]string{"sha256:appimage": {"registry.example/app@" + oldOtherDigest}},
	}}
}

// countingReplacer is a selfReplacer that counts its Recover calls and fails the test's run if
// anything but Recover is asked of a host that must be left alone.
type countingReplacer struct {
	selfReplacer
	recovers atomic.Int32
}

func (c *countingReplacer) Recover(ctx context.Context) []lifecycle.Result {
	c.recovers.Add(1)
	return c.selfReplacer.Recover(ctx)
}

// A host that hangs and one that answers errors hold up nothing: the third host is checked and
// updated in the same run; the other two are reported with stage host, EngineUnreachable, their
// containers as the last run saw them; nothing is asked of their transaction managers.
func TestUnreachableHostsIsolated(t *testing.T) {
	a, slow, broken := oneApp("web"), oneApp("api"), oneApp("db")
	lives := map[string]*countingReplacer{"a": {}, "slow": {}, "broken": {}}
	checker := &recordingChecker{fakeChecker: fakeChecker{updates: map[string]string{otherImage: newOtherDigest}}}
	hist := newMemHistory()
	hosts := []Host{{Name: "a", Engine: a, Life: lives["a"]}, {Name: "slow", Engine: slow, Life: lives["slow"]}, {Name: "broken", Engine: broken, Life: lives["broken"]}}
	u := NewHosts(hosts, checker, hist, Options{Logger: discardLogger(), HostTimeout: 50 * time.Millisecond})

	// First run, every host up, in monitor mode: the three containers become known.
	first := u.Execute(context.Background(), "", Request{Trigger: TriggerCheck, DryRun: true})
	if first.Count(OutcomeUpdateAvailable) != 3 || len(first.Unreachable()) != 0 {
		t.Fatalf("first run: %+v, hosts %+v; want three updates available on three hosts", first.Containers, first.Hosts)
	}

	slow.set(nil, true)
	broken.set(errors.New("Error response from daemon: 500 internal"), false)
	checker.queries = nil
	rep := u.Execute(context.Background(), "", Request{Trigger: TriggerOnce})
	if l := findLine(rep, "a", "web"); l == nil || l.Outcome != OutcomeUpdated {
		t.Errorf("a/web = %+v, want updated", l)
	}
	for _, n := range [][2]string{{"slow", "api"}, {"broken", "db"}} {
		l := findLine(rep, n[0], n[1])
		if l == nil || l.Outcome != OutcomeFailed || l.Failure == nil || l.Failure.Stage != failure.StageHost || l.Failure.Reason != failure.EngineUnreachable {
			t.Errorf("%s/%s = %+v, want failed with host/EngineUnreachable", n[0], n[1], l)
		}
	}
	if got := strings.Join(rep.Unreachable(), ","); got != "slow,broken" || !strings.Contains(rep.Hosts[1].Error, "no answer within 50ms") || !strings.Contains(rep.Hosts[2].Error, "500 internal") {
		t.Errorf("unreachable hosts = %q (%+v), want slow (timed out) and broken (its error)", got, rep.Hosts)
	}
	if len(checker.queries) != 1 {
		t.Errorf("checked %d references, want only a's one", len(checker.queries))
	}
	for _, n := range []string{"slow", "broken"} {
		if calls := lives[n].calls(); len(calls) != 0 {
			t.Errorf("host %s's transactions were asked %v", n, calls)
		}
	}
	if !rep.Failed() {
		t.Error("a run with unreachable hosts must count as failed (once exits 1)")
	}

	cs, err := u.Containers(context.Background(), "broken")
	if err != nil || len(cs) != 1 || cs[0].Host != "broken" || cs[0].State != StateUnknown || cs[0].LastError == nil || cs[0].LastError.Reason != failure.EngineUnreachable {
		t.Errorf("Containers(broken) = %+v, %v; want db unknown with EngineUnreachable", cs, err)
	}
	if _, err := u.Containers(context.Background(), "nope"); !errors.As(err, new(*UnknownHostError)) {
		t.Errorf("Containers(nope) = %v, want *UnknownHostError", err)
	}
}

func findLine(rep *Report, host, name string) *ContainerReport {
	for i, c := range rep.Containers {
		if c.Host == host && c.Name == name {
			return &rep.Containers[i]
		}
	}
	return nil
}

// A host that is down at start is not recovered then (its engine cannot be asked), and is
// recovered once, on its own, as soon as it answers again; the recovery run names it.
func TestHostRecoveredWhenBack(t *testing.T) {
	a, b := oneApp("web"), oneApp("api")
	la, lb := &countingReplacer{}, &countingReplacer{}
	lb.recovered = []lifecycle.Result{{TxID: "tx1", Name: "api", OldID: "api-id", NewID: "api-id", Outcome: lifecycle.OutcomeRolledBack}}
	hist := newMemHistory()
	u := NewHosts([]Host{{Name: "a", Engine: a, Life: la}, {Name: "b", Engine: b, Life: lb}}, &fakeChecker{}, hist,
		Options{Logger: discardLogger(), HostTimeout: time.Second})
	b.set(errors.New("connection refused"), false)
	u.Recover(context.Background())
	if la.recovers.Load() != 1 || lb.recovers.Load() != 0 {
		t.Fatalf("at start: a recovered %d times, b %d; want a once and b (down) not", la.recovers.Load(), lb.recovers.Load())
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { u.WatchHosts(ctx, 10*time.Second); close(done) }()
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if lb.recovers.Load() != 0 {
			t.Errorf("b recovered while down")
		}
		b.set(nil, false)
		time.Sleep(25 * time.Second)
		synctest.Wait()
		cancel()
		<-done
	})
	if la.recovers.Load() != 1 || lb.recovers.Load() != 1 {
		t.Errorf("after b came back: a recovered %d times, b %d; want once each", la.recovers.Load(), lb.recovers.Load())
	}
	var found bool
	for _, r := range hist.reports(t) {
		if l := findLine(&r, "b", "api"); r.Trigger == TriggerRecovery && l != nil && l.Outcome == OutcomeRolledBack {
			found = true
		}
	}
	if !found {
		t.Errorf("no recovery run names b/api: %+v", hist.reports(t))
	}
}

// update.parallel is per host: with one slot each, two hosts' updates are in their disruptive
// phase at once, one on each.
func TestParallelPerHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		life := newGateReplacer()
		u := NewHosts([]Host{{Name: "a", Engine: oneApp("web"), Life: life}, {Name: "b", Engine: oneApp("web"), Life: life}},
			&fakeChecker{updates: map[string]string{otherImage: newOtherDigest}}, nil, Options{Parallel: 1, Logger: discardLogger()})
		done := make(chan *Report)
		go func() { done <- u.Execute(context.Background(), "", Request{Trigger: TriggerOnce}) }()
		synctest.Wait()
		if in, _ := life.counts(); in != 2 {
			t.Errorf("%d replacements in their disruptive phase, want 2: one per host with update.parallel 1", in)
		}
		life.gate <- struct{}{}
		life.gate <- struct{}{}
		close(life.verify)
		rep := <-done
		if rep.Count(OutcomeUpdated) != 2 || findLine(rep, "a", "web") == nil || findLine(rep, "b", "web") == nil {
			t.Errorf("report %+v, want a/web and b/web updated", rep.Containers)
		}
		if got := rep.Plan.String(); !strings.Contains(got, "group 1:\n  update a/web (digest") || !strings.Contains(got, "group 2:\n  update b/web (digest") {
			t.Errorf("plan =\n%s\nwant one group per host naming the targets host/name", got)
		}
	})
}

// A request names hosts: an unknown one is refused, and only the named hosts are asked.
func TestRequestHosts(t *testing.T) {
	a, b := oneApp("web"), oneApp("web")
	u := NewHosts([]Host{{Name: "a", Engine: a}, {Name: "b", Engine: b}}, &fakeChecker{}, nil, Options{Logger: discardLogger()})
	if _, _, err := u.Trigger(context.Background(), Request{Hosts: []string{"a", "zzz"}}); !errors.As(err, new(*UnknownHostError)) || !strings.Contains(err.Error(), "zzz") {
		t.Errorf("Trigger(host zzz) = %v, want *UnknownHostError naming zzz", err)
	}
	b.lists.Store(0)
	rep := u.Execute(context.Background(), "", Request{Hosts: []string{"a"}, Trigger: TriggerCheck, DryRun: true})
	if len(rep.Containers) != 1 || rep.Containers[0].Host != "a" || b.lists.Load() != 0 || len(rep.Hosts) != 1 {
		t.Errorf("run on host a: %+v, hosts %+v, b listed %d times; want a's web only and b not asked", rep.Containers, rep.Hosts, b.lists.Load())
	}
}

func TestMergeRequestsWithHosts(t *testing.T) {
	for _, tc := range []struct{ a, b, want Request }{
		{Request{Hosts: []string{"a"}}, Request{Hosts: []string{"b"}}, Request{Hosts: []string{"a", "b"}}},
		{Request{Hosts: []string{"a"}}, Request{}, Request{}},
		{Request{Hosts: []string{"a"}, Containers: []string{"web"}}, Request{Hosts: []string{"a"}, Containers: []string{"db"}}, Request{Hosts: []string{"a"}, Containers: []string{"web", "db"}}},
		// web on a and db on b: no narrower request covers both than everything on a and b.
		{Request{Hosts: []string{"a"}, Containers: []string{"web"}}, Request{Hosts: []string{"b"}, Containers: []string{"db"}}, Request{Hosts: []string{"a", "b"}}},
		{Request{Containers: []string{"web"}}, Request{Hosts: []string{"b"}, Containers: []string{"db"}}, Request{}},
	} {
		if got := mergeRequests(tc.a, tc.b); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("mergeRequests(%+v, %+v) = %+v, want %+v", tc.a, tc.b, got, tc.want)
		}
	}
}

// A manual rollback names its container's host when several hosts have one of that name.
func TestRollbackNamesTheHost(t *testing.T) {
	u := NewHosts([]Host{{Name: "a", Engine: oneApp("web")}, {Name: "b", Engine: oneApp("web")}, {Name: "c", Engine: oneApp("db")}},
		&fakeChecker{}, nil, Options{Logger: discardLogger()})
	ctx := context.Background()
	var nr *NoRollbackError
	if _, _, err := u.Rollback(ctx, "", "web"); !errors.As(err, &nr) || !strings.Contains(nr.Why, "hosts a, b; name the host") {
		t.Errorf("Rollback(web) on two hosts = %v, want a NoRollbackError asking for the host", err)
	}
	if _, _, err := u.Rollback(ctx, "zzz", "web"); !errors.As(err, new(*UnknownHostError)) {
		t.Errorf("Rollback(zzz/web) = %v, want *UnknownHostError", err)
	}
	// Found (on b, or on c alone): what stops it is that nothing keeps update records here.
	for _, hn := range [][2]string{{"b", "web"}, {"", "db"}} {
		if _, _, err := u.Rollback(ctx, hn[0], hn[1]); !errors.As(err, &nr) || !strings.Contains(nr.Why, "no state file") {
			t.Errorf("Rollback(%s/%s) = %v, want the container found (no state file keeps records)", hn[0], hn[1], err)
		}
	}
}
