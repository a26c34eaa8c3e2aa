package api

import (
	"fmt"
	"io"
	"net"
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
	s, _ := newTestServer(f, Options{Token: testToken})
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

// TestBody: a POST body is never read: ignored when small, refused by its Content-Length when
// large, refused when its length is unknown.
func TestBody(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken})
	big := strings.Repeat("x", maxBodyBytes+1)
	tests := []struct {
		name string
		body io.Reader
		want int
		msg  string
	}{
		{"empty", nil, 202, ""},
		{"small JSON", strings.NewReader(`{}`), 202, ""},
		{"at the limit", strings.NewReader(big[1:]), 202, ""},
		{"over the limit", strings.NewReader(big), 400, "request body larger than"},
		{"over the limit, no length", io.MultiReader(strings.NewReader(big)), 400, "unknown length"},
		{"a megabyte, no length", io.LimitReader(zeros{}, 1<<20), 400, "unknown length"},
		{"small, no length", io.MultiReader(strings.NewReader(`{}`)), 400, "unknown length"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/v1/update", tt.body)
		if _, ok := tt.body.(*strings.Reader); !ok && tt.body != nil {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.msg) {
			t.Errorf("%s: POST = %d %s, want %d mentioning %q", tt.name, rec.Code, rec.Body, tt.want, tt.msg)
		}
		if got := rec.Header().Get("Connection"); (tt.body != nil) != (got == "close") {
			t.Errorf("%s: Connection = %q, want close exactly when a body came", tt.name, got)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// do sends one request from client ip with the Authorization header auth ("" for none).
func do(s *Server, method, target, ip, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = net.JoinHostPort(ip, "40000")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("X-Forwarded-For", "10.9.9.9") // not trusted
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestRateLimit: an authenticated client over its http.rate_limit gets 429 with Retry-After;
// other clients and reads are not affected, and requests without the right token never spend
// the budget.
func TestRateLimit(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken, RateLimit: 3})
	right := "Bearer " + testToken
	// Someone without the token, from the same address, first.
	for range 3 * authFailBurst {
		if rec := do(s, "POST", "/v1/update", "192.0.2.1", "Bearer wrong"); rec.Code != 401 && rec.Code != 429 {
			t.Fatalf("wrong token = %d, want 401 or 429", rec.Code)
		}
	}
	for i := range 3 {
		if rec := do(s, "POST", "/v1/update", "192.0.2.1", right); rec.Code != http.StatusAccepted {
			t.Fatalf("POST %d = %d %s, want 202 (failed authentications spent the budget)", i+1, rec.Code, rec.Body)
		}
	}
	rec := do(s, "POST", "/v1/update", "192.0.2.1", right)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"reason":"RateLimited"`) ||
		!strings.Contains(rec.Body.String(), "too many update requests") {
		t.Fatalf("4th POST = %d %s, want 429 RateLimited", rec.Code, rec.Body)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "20" {
		t.Errorf("Retry-After = %q, want 20 (3 a minute)", ra)
	}
	if rec := do(s, "POST", "/v1/update", "192.0.2.2", right); rec.Code != http.StatusAccepted {
		t.Errorf("other client = %d, want 202", rec.Code)
	}
	if rec := do(s, "GET", "/v1/runs", "192.0.2.1", right); rec.Code != http.StatusOK {
		t.Errorf("GET /v1/runs from a limited client = %d, want 200", rec.Code)
	}
}

// TestRateLimitZero: http.rate_limit 0 means no limit, as docs/configuration.md says.
func TestRateLimitZero(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Token: testToken, RateLimit: 0})
	for i := range 200 {
		if rec := do(s, "POST", "/v1/update", "192.0.2.1", "Bearer "+testToken); rec.Code != http.StatusAccepted {
			t.Fatalf("POST %d with rate_limit 0 = %d %s, want 202", i+1, rec.Code, rec.Body)
		}
	}
}

func TestClientLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := perMinute(60) // one a second, burst 60
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
	if ok, _ := l.allow("a"); ok {
		t.Error("a spent client got a second request within the second")
	}

	// A flood of new addresses, a few seconds' worth: the table stays bounded and "a" keeps its
	// spent budget; the newcomers that found the table full share one budget.
	overflowOK := 0
	for i := range 3 * maxClients {
		if i%maxClients == 0 {
			now = now.Add(100 * time.Millisecond) // not enough for "a" to earn a request
		}
		if ok, _ := l.allow(fmt.Sprintf("flood-%d", i)); ok && i >= maxClients {
			overflowOK++
		}
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d clients tracked, want ≤ %d", n, maxClients)
	}
	if ok, _ := l.allow("a"); ok {
		t.Error("a flood of new addresses reset a spent client's budget")
	}
	if overflowOK > 60+1 {
		t.Errorf("%d requests of clients beyond the table were allowed, want at most one shared budget (61)", overflowOK)
	}
	// Once idle, clients are forgotten and newcomers get a budget of their own again.
	now = now.Add(2 * time.Minute)
	if ok, _ := l.allow("newcomer"); !ok || l.clients["newcomer"] == nil {
		t.Error("after the flood went idle, a new client did not get its own budget")
	}

	if perMinute(0) != nil || perMinute(-1) != nil {
		t.Error("perMinute(0 or -1) != nil, want no limit")
	}
	if ok, _ := perMinute(0).allow("x"); !ok {
		t.Error("no limit refused a request")
	}
}

func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1234":              "192.0.2.1",
		"[::ffff:192.0.2.1]:1234":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:1234": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:1": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:1":         "2001:db8:1:3::/64",
		"[fe80::1%eth0]:1":            "fe80::/64",
		"not an address":              "not an address",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := clientKey(r); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", remote, got, want)
		}
	}
}
