package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestJunkInput: junk never reaches the daemon and is always a JSON 400, never a 5xx.
func TestJunkInput(t *testing.T) {
	long := strings.Repeat("a", 10*1024)
	tests := []struct {
		name, target, msg string
	}{
		{"NUL in a name", "/v1/update?container=web%00", "control character"},
		{"NUL alone", "/v1/update?container=%00", "control character"},
		{"newline", "/v1/update?container=web%0Aevil", "control character"},
		{"invalid UTF-8", "/v1/update?container=%ff%fe", "control character"},
		{"10 kB name", "/v1/update?container=" + long, "longer than 255"},
		{"256-character name", "/v1/update?container=" + strings.Repeat("b", 256), "longer than 255"},
		{"slash inside a name", "/v1/update?container=a/b", "not a valid Docker container name"},
		{"name starting with a dot", "/v1/update?container=.web", "not a valid Docker container name"},
		{"space in a name", "/v1/update?container=my+web", "not a valid Docker container name"},
		{"empty name", "/v1/update?container=", "empty container name"},
		{"only a slash", "/v1/update?container=/", "empty container name"},
		{"unicode name", "/v1/update?container=w%C3%A9b", "not a valid Docker container name"},
		{"bad image", "/v1/update?image=Nginx:Latest", "image reference"},
		{"image with spaces", "/v1/update?image=nginx+latest", "image reference"},
		{"10 kB image", "/v1/update?image=" + long, "longer than 512"},
		{"empty image", "/v1/update?image=", "empty image reference"},
		{"both filters", "/v1/update?container=web&image=nginx", "not both"},
		{"unknown parameter", "/v1/update?containers=web", `unknown query parameter \"containers\"`},
		{"unknown long parameter", "/v1/update?" + long + "=1", "unknown query parameter (not shown)"},
		{"dry run is not a parameter", "/v1/update?dry_run=true", "unknown query parameter"},
		{"wait junk", "/v1/update?wait=maybe", "must be true or false"},
		{"wait twice", "/v1/update?wait=true&wait=true", "given 2 times"},
		{"bad escape", "/v1/update?container=%zz", "malformed query string"},
		{"semicolon", "/v1/update?container=web;image=x", "malformed query string"},
		{"too many names", "/v1/update?" + strings.Repeat("container=web&", 300), "too many values"},
	}
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken, RateLimit: -1})
	for _, tt := range tests {
		res := serve(t, s.Handler(), "POST", tt.target, "Bearer "+testToken, nil)
		if res.code != http.StatusBadRequest || res.err.Reason != ReasonBadRequest {
			t.Errorf("%s: POST = %d %s, want 400 BadRequest", tt.name, res.code, res.body)
			continue
		}
		if !strings.Contains(res.body, tt.msg) {
			t.Errorf("%s: body = %s, want it to mention %q", tt.name, res.body, tt.msg)
		}
		if len(res.body) > 300 {
			t.Errorf("%s: error echoes the input (%d bytes)", tt.name, len(res.body))
		}
	}
	if n := f.triggerCount(); n != 0 {
		t.Errorf("%d junk requests reached the service", n)
	}
}

// TestBody: a POST body is ignored when small and refused when large, with or without Content-Length.
func TestBody(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken, RateLimit: -1})
	big := strings.Repeat("x", maxBodyBytes+1)
	tests := []struct {
		name string
		body io.Reader
		want int
	}{
		{"empty", nil, 202},
		{"small JSON", strings.NewReader(`{}`), 202},
		{"at the limit", strings.NewReader(big[1:]), 202},
		{"over the limit", strings.NewReader(big), 400},
		{"over the limit, no length", io.MultiReader(strings.NewReader(big)), 400},
		{"a megabyte, no length", io.LimitReader(zeros{}, 1<<20), 400},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/v1/update", tt.body)
		if _, ok := tt.body.(*strings.Reader); !ok {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s: POST = %d %s, want %d", tt.name, rec.Code, rec.Body, tt.want)
		}
		if tt.want == 400 && !strings.Contains(rec.Body.String(), "request body larger than") {
			t.Errorf("%s: body = %s", tt.name, rec.Body)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestRateLimit: one client over its budget gets 429 with Retry-After; others are not affected.
func TestRateLimit(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken, RateLimit: 3})
	post := func(ip, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/update", nil)
		req.RemoteAddr = ip + ":40000"
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Forwarded-For", "10.9.9.9") // not trusted
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	for i := range 3 {
		if rec := post("192.0.2.1", "Bearer "+testToken); rec.Code != http.StatusAccepted {
			t.Fatalf("POST %d = %d %s, want 202", i+1, rec.Code, rec.Body)
		}
	}
	rec := post("192.0.2.1", "Bearer "+testToken)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"reason":"RateLimited"`) {
		t.Fatalf("4th POST = %d %s, want 429 RateLimited", rec.Code, rec.Body)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "20" {
		t.Errorf("Retry-After = %q, want 20 (3 a minute)", ra)
	}
	// Wrong tokens spend the budget too: guessing is throttled.
	if rec := post("192.0.2.1", "Bearer wrong"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("guess over budget = %d, want 429", rec.Code)
	}
	if rec := post("192.0.2.2", "Bearer "+testToken); rec.Code != http.StatusAccepted {
		t.Errorf("other client = %d, want 202", rec.Code)
	}
	// Reads are not limited.
	req := httptest.NewRequest("GET", "/v1/runs", nil)
	req.RemoteAddr = "192.0.2.1:40000"
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("GET /v1/runs from a limited client = %d, want 200", rec.Code)
	}
}

func TestClientLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newClientLimiter(60) // one a second, burst 60
	l.now = func() time.Time { return now }
	for i := range 60 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("allow #%d = false within the burst", i+1)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("allow over the burst = %t, %v; want false, ≤1s", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.allow("a"); !ok {
		t.Error("allow after a second = false, want true")
	}
	// Idle clients are forgotten; the table is bounded.
	for i := range maxClients + 10 {
		l.allow("10.0.0." + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d clients tracked, want ≤ %d", n, maxClients)
	}
	if l := newClientLimiter(-1); l != nil {
		t.Error("newClientLimiter(-1) != nil, want no limit")
	}
	if l := newClientLimiter(0); l.burst != DefaultRateLimit {
		t.Errorf("newClientLimiter(0).burst = %d, want %d", l.burst, DefaultRateLimit)
	}
}
