package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/watcher-dev/watcher/updater"
)

// TestEndpoints walks every endpoint and status code over httptest.
func TestEndpoints(t *testing.T) {
	f := newFake("web", "db")
	s, logs := newTestServer(f, Options{Token: testToken})
	h := s.Handler()
	bearer := "Bearer " + testToken

	// One finished run for the history endpoints.
	res := serve(t, h, "POST", "/v1/update?wait=true", bearer, nil)
	if res.code != http.StatusOK {
		t.Fatalf("POST /v1/update?wait=true = %d %s, want 200", res.code, res.body)
	}

	tests := []struct {
		method, target, auth string
		want                 int
		reason               string // for errors
		contains             string // in the body
	}{
		{"GET", "/healthz", "", 200, "", `"status":"ok"`},
		{"HEAD", "/healthz", "", 200, "", ""},
		{"GET", "/readyz", "", 200, "", `"status":"ready"`},
		{"GET", "/v1/containers", bearer, 200, "", `"name":"db"`},
		{"GET", "/v1/runs", bearer, 200, "", `"id":"run-1"`},
		{"GET", "/v1/runs?limit=1", bearer, 200, "", `"runs":[{"id":"run-1"`},
		{"GET", "/v1/runs/run-1", bearer, 200, "", `"id":"run-1"`},
		{"GET", "/metrics", bearer, 200, "", "watcher_checks_total"},
		{"POST", "/v1/update", bearer, 202, "", `"run_id":"run-2"`},
		{"POST", "/v1/update?container=web", bearer, 202, "", `"run_id":`},
		{"POST", "/v1/update?image=example/web:1", bearer, 202, "", `"run_id":`},

		{"GET", "/v1/runs/nope", bearer, 404, ReasonRunNotFound, `run \"nope\" not found`},
		{"GET", "/v1/runs/%00", bearer, 400, ReasonBadRequest, "malformed run id"},
		{"GET", "/v1/runs/" + strings.Repeat("a", 200), bearer, 400, ReasonBadRequest, "malformed run id"},
		{"GET", "/v1/runs?limit=0", bearer, 400, ReasonBadRequest, "limit must be"},
		{"GET", "/v1/runs?limit=x", bearer, 400, ReasonBadRequest, "limit must be"},
		{"GET", "/v1/runs?limit=1&limit=2", bearer, 400, ReasonBadRequest, "given 2 times"},
		{"GET", "/v1/containers?all=1", bearer, 400, ReasonBadRequest, `unknown query parameter \"all\"`},
		{"POST", "/v1/update?container=ghost&container=web&container=phantom", bearer, 404, ReasonNotWatched, "not watched: ghost, phantom"},
		{"GET", "/v1/nothing", bearer, 404, ReasonNotFound, "no such endpoint"},
		{"GET", "/index.html", "", 404, ReasonNotFound, "no such endpoint"},
		{"GET", "/v1/status", bearer, 200, "", `"token_configured":true`},
		{"POST", "/v1/approve", bearer, 400, ReasonBadRequest, "container is required: POST /v1/approve?container=NAME"},
		{"POST", "/v1/reject?container=web&wait=true", bearer, 400, ReasonBadRequest, "a rejection starts no run"},
		{"GET", "/v1/approve?container=web", bearer, 405, ReasonMethodNotAllowed, "allowed: POST"},
		{"GET", "/v1/runs/", bearer, 404, ReasonNotFound, "no such endpoint"},
		{"GET", "/v1/update", bearer, 405, ReasonMethodNotAllowed, "allowed: POST"},
		{"DELETE", "/v1/runs/run-1", bearer, 405, ReasonMethodNotAllowed, "allowed: GET, HEAD"},
		{"POST", "/healthz", "", 405, ReasonMethodNotAllowed, "allowed: GET, HEAD"},
		{"PUT", "/metrics", "", 405, ReasonMethodNotAllowed, "allowed: GET, HEAD"},
		{"GET", "/v1/containers", "", 401, ReasonUnauthorized, "missing bearer token"},
		{"GET", "/metrics", "", 401, ReasonUnauthorized, "missing bearer token"},
		{"POST", "/v1/update", "Bearer nope", 401, ReasonUnauthorized, "invalid bearer token"},
	}
	for _, tt := range tests {
		res := serve(t, h, tt.method, tt.target, tt.auth, nil)
		if res.code != tt.want {
			t.Errorf("%s %s = %d %s, want %d", tt.method, tt.target, res.code, res.body, tt.want)
			continue
		}
		if tt.reason != "" && res.err.Reason != tt.reason {
			t.Errorf("%s %s reason = %q, want %q", tt.method, tt.target, res.err.Reason, tt.reason)
		}
		if !strings.Contains(res.body, tt.contains) {
			t.Errorf("%s %s body = %s, want it to contain %s", tt.method, tt.target, res.body, tt.contains)
		}
		if tt.want == 405 {
			if got := res.header.Get("Allow"); got == "" || !strings.Contains(res.body, got) {
				t.Errorf("%s %s Allow = %q; body %s", tt.method, tt.target, got, res.body)
			}
		}
		if tt.want == 401 && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s %s WWW-Authenticate = %q", tt.method, tt.target, res.header.Get("WWW-Authenticate"))
		}
		if got := res.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s Cache-Control = %q, want no-store", tt.method, tt.target, got)
		}
		checkNoLeak(t, tt.method+" "+tt.target, res.body)
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("log holds the token:\n%s", logs)
	}
}

func TestUpdateAccepted(t *testing.T) {
	f := newFake("web", "db")
	s, _ := newTestServer(f, Options{Token: testToken})
	res := serve(t, s.Handler(), "POST", "/v1/update?container=/web&container=web&container=db", "Bearer "+testToken, nil)
	if res.code != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", res.code, res.body)
	}
	var tr triggerResponse
	if err := json.Unmarshal([]byte(res.body), &tr); err != nil || tr.RunID == "" {
		t.Fatalf("202 body = %s (%v), want {\"run_id\":…}", res.body, err)
	}
	if loc := res.header.Get("Location"); loc != "/v1/runs/"+tr.RunID {
		t.Errorf("Location = %q, want /v1/runs/%s", loc, tr.RunID)
	}
	req := f.lastRequest(t)
	if strings.Join(req.Containers, ",") != "web,db" || req.Trigger != TriggerHTTP || len(req.Images) != 0 {
		t.Errorf("request = %+v, want containers [web db] (slash dropped, deduplicated), trigger http", req)
	}

	serve(t, s.Handler(), "POST", "/v1/update?image=ghcr.io/o/r:1.2&image=nginx", "Bearer "+testToken, nil)
	if req := f.lastRequest(t); strings.Join(req.Images, ",") != "ghcr.io/o/r:1.2,nginx" {
		t.Errorf("images = %v, want [ghcr.io/o/r:1.2 nginx]", req.Images)
	}
}

func TestUpdateWait(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken})
	res := serve(t, s.Handler(), "POST", "/v1/update?wait=1", "Bearer "+testToken, nil)
	if res.code != http.StatusOK {
		t.Fatalf("POST ?wait=1 = %d %s, want 200", res.code, res.body)
	}
	var rep updater.Report
	if err := json.Unmarshal([]byte(res.body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ID != "run-1" || len(rep.Containers) != 1 || rep.Containers[0].Name != "web" {
		t.Errorf("report = %+v, want run-1 with web", rep)
	}
	if res := serve(t, s.Handler(), "POST", "/v1/update?wait=false", "Bearer "+testToken, nil); res.code != http.StatusAccepted {
		t.Errorf("POST ?wait=false = %d, want 202", res.code)
	}
}

// TestInternalErrors: the daemon's failures give a 5xx without their detail; a panic gives a bare
// JSON 500 and no stack trace anywhere.
func TestInternalErrors(t *testing.T) {
	f := newFake("web")
	s, logs := newTestServer(f, Options{Token: testToken})
	h := s.Handler()
	bearer := "Bearer " + testToken

	f.readyErr = errBoom
	if res := serve(t, h, "GET", "/readyz", "", nil); res.code != 503 || res.err.Reason != ReasonNotReady {
		t.Errorf("GET /readyz with engine down = %d %s, want 503 NotReady", res.code, res.body)
	} else {
		checkNoLeak(t, "readyz", res.body)
	}
	f.failErr = errBoom
	for _, target := range []string{"/v1/containers", "/v1/runs", "/v1/runs/run-1"} {
		res := serve(t, h, "GET", target, bearer, nil)
		if res.code != 500 || res.err.Reason != ReasonInternal {
			t.Errorf("GET %s with failing service = %d %s, want 500 Internal", target, res.code, res.body)
		}
		checkNoLeak(t, target, res.body)
	}
	f.failErr = nil
	f.panicky = true
	res := serve(t, h, "GET", "/v1/containers", bearer, nil)
	if res.code != 500 || res.err.Error != "internal error" {
		t.Errorf("GET /v1/containers panicking = %d %s, want 500 internal error", res.code, res.body)
	}
	checkNoLeak(t, "panic response", res.body)
	if l := logs.String(); strings.Contains(l, "goroutine ") || !strings.Contains(l, "containers exploded") {
		t.Errorf("log should name the panic without a stack:\n%s", l)
	}
}
