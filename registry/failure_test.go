package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// Every check-stage row of docs/api.md's failure table against the registry, with how many HEADs
// it may cost: permanent failures one, failure.RegistryUnavailable 1+Retries.
func TestClassification(t *testing.T) {
	const retries = 2
	tests := []struct {
		name   string
		tag    string
		fault  *testenv.Fault
		want   failure.Reason
		heads  int
		status string // in the message
	}{
		{"missing tag", "nope", nil, failure.ManifestUnknown, 1, "404"},
		{"404 NAME_UNKNOWN", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 404, Code: "NAME_UNKNOWN"}, failure.ManifestUnknown, 1, "404"},
		{"401", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 401, Code: "UNAUTHORIZED"}, failure.Unauthorized, 1, "401"},
		{"403 DENIED", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 403, Code: "DENIED"}, failure.Unauthorized, 1, "403"},
		{"429", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 429, Code: "TOOMANYREQUESTS"}, failure.RateLimited, 1, "429"},
		{"500", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 500}, failure.RegistryUnavailable, 1 + retries, "500"},
		{"502", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 502}, failure.RegistryUnavailable, 1 + retries, "502"},
		{"503", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 503, Code: "UNAVAILABLE"}, failure.RegistryUnavailable, 1 + retries, "503"},
		{"504", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 504}, failure.RegistryUnavailable, 1 + retries, "504"},
		{"408", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 408}, failure.RegistryUnavailable, 1 + retries, "408"},
		{"one 503, then fine", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 503, Times: 1}, "", 2, ""},
		{"timeout", "v1", &testenv.Fault{Method: "HEAD", Path: "/manifests/", Delay: 2 * time.Second}, failure.RegistryUnavailable, 1, "no answer within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testenv.NewRegistry(t)
			d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
			if tt.fault != nil {
				reg.AddFault(*tt.fault)
			}
			reg.ResetRequests()
			c := newChecker(Options{Retries: retries, Timeout: 300 * time.Millisecond})
			r := c.Check(context.Background(), []Query{pulled(reg, "app", tt.tag, d)})[0]
			if r.Reason != tt.want {
				t.Fatalf("Reason = %q (%s), want %q", r.Reason, r.Message, tt.want)
			}
			if got := settledCalls(reg, "HEAD", tt.heads); got != tt.heads {
				t.Errorf("HEADs = %d, want %d", got, tt.heads)
			}
			if tt.want != "" && (!strings.Contains(r.Message, reg.Host) || !strings.Contains(r.Message, tt.status)) {
				t.Errorf("Message = %q, want it to name %s and %q", r.Message, reg.Host, tt.status)
			}
			if tt.want != "" && (r.Err() == nil || r.UpdateAvailable || r.Digest != "") {
				t.Errorf("failed result = %+v, want Err, no update, no digest", r)
			}
		})
	}
}

// A dropped connection is a connection error: retried, then failure.RegistryUnavailable.
func TestDroppedConnectionIsRetried(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", Drop: true})
	reg.ResetRequests()
	r := newChecker(Options{Retries: 2}).Check(context.Background(), []Query{pulled(reg, "app", "v1", d)})[0]
	if r.Reason != failure.RegistryUnavailable || !strings.Contains(r.Message, reg.Host) {
		t.Fatalf("Check = %q %q, want failure.RegistryUnavailable naming the host", r.Reason, r.Message)
	}
	// net/http itself may replay an idempotent request once on a reused connection.
	if got := manifestCalls(reg, "HEAD"); got < 3 || got > 6 {
		t.Errorf("HEADs = %d, want 3 attempts (up to 6 with net/http's replays)", got)
	}
}

// Errors in the GETs an index needs are classified like the HEAD's; codes decide when the status
// does not (a 400 carrying MANIFEST_UNKNOWN), and a lookup running out of time says so.
func TestIndexGetFailure(t *testing.T) {
	reg := testenv.NewRegistry(t)
	_, idx1 := reg.PushIndex(t, "multi", "latest", platformImage(t, "amd64", "v1"), platformImage(t, "arm64", "v1"))
	_, idx2 := reg.PushIndex(t, "multi", "latest", platformImage(t, "amd64", "v2"), platformImage(t, "arm64", "v1"))
	tests := []struct {
		name  string
		fault testenv.Fault
		want  failure.Reason
		text  string
	}{
		{"code decides", testenv.Fault{Method: "GET", Path: "/manifests/" + idx2.String(), Status: 400, Code: "MANIFEST_UNKNOWN"}, failure.ManifestUnknown, "MANIFEST_UNKNOWN"},
		{"timeout", testenv.Fault{Method: "GET", Path: "/manifests/" + idx2.String(), Delay: 2 * time.Second}, failure.RegistryUnavailable, "no answer within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remove := reg.AddFault(tt.fault)
			defer remove()
			reg.ResetRequests()
			r := newChecker(Options{Timeout: 300 * time.Millisecond}).Check(context.Background(), []Query{pulled(reg, "multi", "latest", idx1)})[0]
			if r.Reason != tt.want || r.UpdateAvailable || !strings.Contains(r.Message, tt.text) {
				t.Fatalf("Check = %q %q update %t, want %s mentioning %q", r.Reason, r.Message, r.UpdateAvailable, tt.want, tt.text)
			}
			if got := settledCalls(reg, "GET", 1); got != 1 {
				t.Errorf("GETs = %d, want 1 (no retry)", got)
			}
		})
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	clock := newFakeClock()
	limited := testenv.NewRegistry(t)
	fine := testenv.NewRegistry(t)
	d := pushTags(t, limited, "app", testenv.ImageSpec{Version: "v1"}, "v1", "v2", "v3")
	d2 := pushTags(t, fine, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	limited.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 429, Header: map[string]string{"Retry-After": "120"}, Times: 1})
	qs := []Query{pulled(limited, "app", "v1", d), pulled(limited, "app", "v2", d), pulled(limited, "app", "v3", d), pulled(fine, "app", "v1", d2)}
	// One lookup at a time per host, so the 429 arrives before the other lookups to that host start.
	c := newChecker(Options{PerHost: 1, Now: clock.Now})
	limited.ResetRequests()

	rs := c.Check(context.Background(), qs)
	wantAt := clock.Now().Add(120 * time.Second)
	for _, r := range rs[:3] {
		if r.Reason != failure.RateLimited || !r.RetryAt.Equal(wantAt) {
			t.Errorf("%s: %q RetryAt %v (%s), want failure.RateLimited until %v", r.Ref, r.Reason, r.RetryAt, r.Message, wantAt)
		}
	}
	if r := rs[3]; r.Reason != "" {
		t.Errorf("other host: %q (%s), want success", r.Reason, r.Message)
	}
	if got := manifestCalls(limited, "HEAD"); got != 1 {
		t.Errorf("HEADs to the limited host = %d, want 1 (no retry of a 429, nothing after it)", got)
	}

	// Before the deadline: no request at all, same deadline.
	clock.Advance(119 * time.Second)
	limited.ResetRequests()
	rs = c.Check(context.Background(), qs)
	for _, r := range rs[:3] {
		if r.Reason != failure.RateLimited || !r.RetryAt.Equal(wantAt) || r.Requests != 0 {
			t.Errorf("second Check %s: %q RetryAt %v requests %d, want failure.RateLimited until %v with no request", r.Ref, r.Reason, r.RetryAt, r.Requests, wantAt)
		}
	}
	if n := len(limited.Requests()); n != 0 {
		t.Errorf("limited host saw %d requests before its deadline, want 0", n)
	}
	if r := rs[3]; r.Reason != "" {
		t.Errorf("other host: %q (%s), want success", r.Reason, r.Message)
	}

	// After it: asked again.
	clock.Advance(2 * time.Second)
	mustOK(t, c.Check(context.Background(), qs))
	if got := manifestCalls(limited, "HEAD"); got != 3 {
		t.Errorf("HEADs after the deadline = %d, want 3", got)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	tests := []struct {
		name   string
		header map[string]string
		want   time.Time
	}{
		{"Retry-After date", map[string]string{"Retry-After": now.Add(time.Hour).Format(http.TimeFormat)}, now.Add(time.Hour)},
		{"Docker Hub window", map[string]string{"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"}, now.Add(21600 * time.Second)},
		{"RateLimit-Reset", map[string]string{"RateLimit-Reset": "90"}, now.Add(90 * time.Second)},
		{"no header", nil, now.Add(5 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testenv.NewRegistry(t)
			d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
			reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 429, Header: tt.header})
			c := newChecker(Options{Now: clock.Now, RateLimitBackoff: 5 * time.Minute})
			r := c.Check(context.Background(), []Query{pulled(reg, "app", "v1", d)})[0]
			if r.Reason != failure.RateLimited || !r.RetryAt.Equal(tt.want) {
				t.Errorf("Check = %q RetryAt %v (%s), want failure.RateLimited until %v", r.Reason, r.RetryAt, r.Message, tt.want)
			}
		})
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", Status: 503})
	reg.ResetRequests()
	c := newChecker(Options{Retries: 5, Backoff: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the first attempt has failed, i.e. during the 2s back-off.
	go func() {
		for manifestCalls(reg, "HEAD") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	r := c.Check(ctx, []Query{pulled(reg, "app", "v1", d)})[0]
	if el := time.Since(start); el > time.Second {
		t.Errorf("Check took %v after cancel, want it to stop at once", el)
	}
	if r.Reason != failure.RegistryUnavailable || !strings.Contains(r.Message, "503") || !strings.Contains(r.Message, "stopped") {
		t.Errorf("Check = %q %q, want failure.RegistryUnavailable naming the 503 and the stop", r.Reason, r.Message)
	}
	if got := manifestCalls(reg, "HEAD"); got != 1 {
		t.Errorf("HEADs = %d, want 1", got)
	}
}

func TestHeadWithoutDigest(t *testing.T) {
	t.Run("other registry: one GET", func(t *testing.T) {
		reg := testenv.NewRegistry(t)
		d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
		reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", NoDigest: true})
		reg.ResetRequests()
		r := newChecker(Options{}).Check(context.Background(), []Query{pulled(reg, "app", "v1", d)})[0]
		if r.Reason != "" || r.UpdateAvailable || r.Digest != d.String() {
			t.Fatalf("Check = %+v, want up to date at %s", r, d)
		}
		if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 1 {
			t.Errorf("HEAD, GET = %d, %d, want 1, 1", h, g)
		}
	})
	t.Run("index: the fallback GET is the index GET", func(t *testing.T) {
		reg := testenv.NewRegistry(t)
		amd := platformImage(t, "amd64", "v1")
		_, idx1 := reg.PushIndex(t, "multi", "latest", amd, platformImage(t, "arm64", "v1"))
		_, idx2 := reg.PushIndex(t, "multi", "latest", amd, platformImage(t, "arm64", "v2"))
		reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", NoDigest: true})
		reg.ResetRequests()
		q := pulled(reg, "multi", "latest", idx1)
		q.Platform = amd.Platform
		q.RepoDigests = append(q.RepoDigests, reg.Host+"/multi@"+manifestDigest(t, amd.Image).String())
		r := newChecker(Options{}).Check(context.Background(), []Query{q})[0]
		if r.Reason != "" || r.UpdateAvailable || r.Digest != idx2.String() {
			t.Fatalf("Check = %+v, want amd64 unchanged in %s", r, idx2)
		}
		if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 1 {
			t.Errorf("HEAD, GET = %d, %d, want 1, 1", h, g)
		}
	})
	t.Run("Docker Hub: no GET", func(t *testing.T) {
		reg := testenv.NewRegistry(t)
		d := pushTags(t, reg, "library/app", testenv.ImageSpec{Version: "v1"}, "v1")
		reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", NoDigest: true})
		reg.ResetRequests()
		c := newChecker(Options{Transport: hubToLocal(reg)})
		r := c.Check(context.Background(), []Query{{Ref: "app:v1", RepoDigests: []string{"app@" + d.String()}}})[0]
		if r.Reason != failure.RegistryUnavailable || !strings.Contains(r.Message, "index.docker.io") || !strings.Contains(r.Message, "Docker-Content-Digest") {
			t.Fatalf("Check = %q %q, want failure.RegistryUnavailable explaining the missing digest on index.docker.io", r.Reason, r.Message)
		}
		if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 0 {
			t.Errorf("HEAD, GET = %d, %d, want 1, 0", h, g)
		}
	})
}

// hubToLocal sends what is meant for Docker Hub (https://index.docker.io) to the test registry, so
// Hub-specific behaviour can be tested offline.
func hubToLocal(reg *testenv.Registry) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host != "index.docker.io" || r.URL.Scheme != "https" {
			return nil, fmt.Errorf("unexpected request to %s", r.URL.Redacted())
		}
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = "http", reg.Host, reg.Host
		return http.DefaultTransport.RoundTrip(r)
	})
}

func TestDockerHubNames(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "library/nginx", testenv.ImageSpec{Version: "v1"}, "latest")
	reg.ResetRequests()
	c := newChecker(Options{Transport: hubToLocal(reg)})
	refs := []string{"nginx", "nginx:latest", "docker.io/nginx", "docker.io/library/nginx:latest", "index.docker.io/library/nginx"}
	var qs []Query
	for _, ref := range refs {
		qs = append(qs, Query{Ref: ref, RepoDigests: []string{"nginx@" + d.String()}})
	}
	rs := c.Check(context.Background(), qs)
	mustOK(t, rs)
	for _, r := range rs {
		if r.Repo != "index.docker.io/library/nginx" || r.UpdateAvailable {
			t.Errorf("%s: Repo %s update %t, want index.docker.io/library/nginx up to date", r.Ref, r.Repo, r.UpdateAvailable)
		}
	}
	if got := manifestCalls(reg, "HEAD"); got != 1 {
		t.Errorf("HEADs = %d, want 1 for five spellings of nginx", got)
	}
}

// inflight counts concurrent requests per host through Options.Transport.
type inflight struct {
	next http.RoundTripper

	mu            sync.Mutex
	now, max      int
	perHost, hmax map[string]int
}

func (f *inflight) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.now++
	f.perHost[r.URL.Host]++
	f.max = max(f.max, f.now)
	f.hmax[r.URL.Host] = max(f.hmax[r.URL.Host], f.perHost[r.URL.Host])
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.perHost[r.URL.Host]--
		f.mu.Unlock()
	}()
	return f.next.RoundTrip(r)
}

func TestConcurrencyIsBounded(t *testing.T) {
	a, b := testenv.NewRegistry(t), testenv.NewRegistry(t)
	tags := make([]string, 20)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%d", i)
	}
	da := pushTags(t, a, "app", testenv.ImageSpec{Version: "v1"}, tags...)
	db := pushTags(t, b, "app", testenv.ImageSpec{Version: "v1"}, tags...)
	var qs []Query
	for _, tag := range tags {
		qs = append(qs, pulled(a, "app", tag, da), pulled(b, "app", tag, db))
	}
	for _, reg := range []*testenv.Registry{a, b} {
		reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/", Delay: 50 * time.Millisecond})
	}

	tests := []struct {
		name                 string
		concurrency, perHost int
		wantMax, wantHostMax int
	}{
		{"overall bound", 6, 4, 6, 4},
		{"per-host bound", 16, 3, 6, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &inflight{next: http.DefaultTransport, perHost: map[string]int{}, hmax: map[string]int{}}
			c := newChecker(Options{Concurrency: tt.concurrency, PerHost: tt.perHost, Transport: f})
			mustOK(t, c.Check(context.Background(), qs))
			// The bounds are what is asserted; how close a run comes to them depends on the
			// machine's scheduling (a loaded one overlaps fewer requests), so only "some
			// overlap" is required of it.
			if f.max > tt.wantMax || f.max < 2 {
				t.Errorf("max in flight = %d, want 2..%d", f.max, tt.wantMax)
			}
			for _, reg := range []*testenv.Registry{a, b} {
				if got := f.hmax[reg.Host]; got > tt.wantHostMax || got < 1 {
					t.Errorf("max in flight to %s = %d, want 1..%d", reg.Host, got, tt.wantHostMax)
				}
			}
		})
	}
}

func TestOnRequestSeesEveryRequest(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.RequireToken("", "")
	reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/gone", Status: 404})
	reg.AddFault(testenv.Fault{Method: "HEAD", Path: "/manifests/drop", Drop: true})
	reg.ResetRequests()

	type call struct {
		host, method string
		code         int
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	c := newChecker(Options{Retries: -1, PerHost: 1, Concurrency: 1, OnRequest: func(host, method string, code int) {
		mu.Lock()
		calls = append(calls, call{host, method, code})
		mu.Unlock()
	}})
	rs := c.Check(context.Background(), []Query{pulled(reg, "app", "v1", d), pulled(reg, "app", "gone", d), pulled(reg, "app", "drop", d)})
	if rs[0].Reason != "" || rs[1].Reason != failure.ManifestUnknown || rs[2].Reason != failure.RegistryUnavailable {
		t.Fatalf("reasons = %q %q %q", rs[0].Reason, rs[1].Reason, rs[2].Reason)
	}

	want := map[call]int{}
	for _, r := range reg.Requests() {
		want[call{reg.Host, r.Method, r.Status}]++
	}
	got := map[call]int{}
	for _, c := range calls {
		got[c]++
	}
	for k, v := range want {
		// A dropped connection is seen once by us but may reach the registry twice: net/http
		// replays an idempotent request whose reused connection died, below any RoundTripper.
		if got[k] != v && !(k.code == 0 && got[k] >= 1 && got[k] <= v) {
			t.Errorf("OnRequest %v called %d times, registry saw %d", k, got[k], v)
		}
	}
	for _, k := range []call{{reg.Host, "GET", 401}, {reg.Host, "GET", 200}, {reg.Host, "HEAD", 200}, {reg.Host, "HEAD", 404}, {reg.Host, "HEAD", 0}} {
		if got[k] == 0 {
			t.Errorf("no OnRequest call %v; got %v", k, got)
		}
	}
}
