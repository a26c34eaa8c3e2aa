package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthThrottle: failed authentications are throttled per client on every endpoint that takes
// the token, with 429 and Retry-After; the right token from the same client still works, and
// other clients are not affected.
func TestAuthThrottle(t *testing.T) {
	f := newFake("web")
	s, logs := newTestServer(f, Options{Token: testToken})
	endpoints := []string{"POST /v1/update", "GET /v1/containers", "GET /v1/runs", "GET /v1/runs/run-1", "GET /metrics"}
	const guesser = "192.0.2.7"
	// The budget is per client, not per endpoint: spend it across all of them, with wrong,
	// malformed and missing tokens alike.
	auths := []string{"Bearer wrong", "Bearer " + testToken[:8], "", "Basic x"}
	for i := range authFailBurst {
		method, path, _ := strings.Cut(endpoints[i%len(endpoints)], " ")
		if rec := do(s, method, path, guesser, auths[i%len(auths)]); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d (%s %s) = %d %s, want 401 within the budget", i+1, method, path, rec.Code, rec.Body)
		}
	}
	for _, e := range endpoints {
		method, path, _ := strings.Cut(e, " ")
		for _, auth := range auths {
			res := serveFrom(t, s, method, path, guesser, auth)
			if res.code != http.StatusTooManyRequests || res.err.Reason != ReasonRateLimited ||
				!strings.Contains(res.err.Error, "failed authentications") {
				t.Errorf("%s over the failure budget (auth %q) = %d %s, want 429 RateLimited", e, auth, res.code, res.body)
			}
			if ra := res.header.Get("Retry-After"); ra != "6" {
				t.Errorf("%s: Retry-After = %q, want 6 (one failure every 6s)", e, ra)
			}
		}
		want := http.StatusOK
		if method == "POST" {
			want = http.StatusAccepted
		}
		if path == "/v1/runs/run-1" { // the run the POST above started: ask once it has finished
			waitFor(t, "run-1 to finish", func() bool { _, err := f.Run("run-1"); return err == nil })
		}
		if rec := do(s, method, path, guesser, "Bearer "+testToken); rec.Code != want {
			t.Errorf("%s with the right token from the throttled client = %d %s, want %d", e, rec.Code, rec.Body, want)
		}
		if rec := do(s, method, path, "192.0.2.8", "Bearer wrong"); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s from another client = %d, want 401", e, rec.Code)
		}
	}
	// Public endpoints have nothing to guess and are never throttled.
	for _, path := range []string{"/healthz", "/readyz"} {
		if rec := do(s, "GET", path, guesser, "Bearer wrong"); rec.Code != http.StatusOK {
			t.Errorf("GET %s from the throttled client = %d, want 200", path, rec.Code)
		}
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("log holds the token:\n%s", logs)
	}
}

// TestAuthFailureLog: a thousand failed authentications make one line as they start and one
// summary, not a line each.
func TestAuthFailureLog(t *testing.T) {
	f := newFake("web")
	s, logs := newTestServer(f, Options{Token: testToken})
	for i := range 1000 {
		do(s, "GET", "/metrics", []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}[i%3], "Bearer wrong")
	}
	s.failures.flush() // what the timer does after a minute, or stopping the server
	var lines []string
	for l := range strings.Lines(logs.String()) {
		if !strings.Contains(l, "level=DEBUG") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "authentication failed") ||
		!strings.Contains(lines[1], "failures=1000") || !strings.Contains(lines[1], "clients=3") ||
		!strings.Contains(lines[1], "answered_429=970") {
		t.Errorf("log above debug = %q, want the first failure and one summary of 1000 failures (970 answered 429) from 3 clients", lines)
	}
	s.failures.flush()
	do(s, "GET", "/metrics", "192.0.2.9", "")
	s.failures.flush()
	if n := strings.Count(logs.String(), "authentication failed"); n != 2 {
		t.Errorf("a failure after a quiet period logged %d first-failure lines in all, want 2", n)
	}
}
