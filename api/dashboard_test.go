package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// TestDashboardFiles: / and its files answer without the token, with the CSP (no inline script
// or style, no other origin, no framing), gzipped when asked, 304 on a revisit; everything the
// page references is embedded; nothing in them loads from elsewhere or builds HTML from strings.
func TestDashboardFiles(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Token: testToken})
	h := s.Handler()
	page := serve(t, h, "GET", "/", "", nil)
	if page.code != 200 || page.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %v", page.code, page.header)
	}
	csp := page.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("CSP %q lacks %q or allows inline code", csp, want)
		}
	}
	if page.header.Get("X-Frame-Options") != "DENY" || page.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET / headers %v", page.header)
	}
	for _, tag := range regexp.MustCompile(`(?is)<script[^>]*>.*?</script>`).FindAllString(page.body, -1) {
		if !regexp.MustCompile(`^<script src="/ui/[a-z]+\.js"[^>]*></script>$`).MatchString(tag) {
			t.Errorf("index.html has an inline script: %q", tag)
		}
	}
	if m := regexp.MustCompile(`(?i)\son[a-z]+=|\sstyle=|<style|javascript:`).FindString(page.body); m != "" {
		t.Errorf("index.html has inline code or style: %q", m)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(page.body, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %v", refs)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, r := range refs {
		res := serve(t, h, "GET", r[1], "", nil)
		if res.code != 200 || res.header.Get("Content-Type") != types[r[1][strings.LastIndexByte(r[1], '.'):]] {
			t.Errorf("GET %s (referenced by the page) = %d %s", r[1], res.code, res.header.Get("Content-Type"))
		}
	}
	for name, a := range dashboardAssets() {
		text := string(a.body)
		if name != "icon.svg" && regexp.MustCompile(`https?://|//[a-z0-9.-]+\.[a-z]{2,}/`).MatchString(text) {
			t.Errorf("%s names another origin", name)
		}
		if m := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function`).FindString(text); m != "" {
			t.Errorf("%s uses %s: the page must build its elements from text", name, m)
		}
	}

	// gzip when asked, the same bytes once inflated; a revisit with the ETag is 304.
	req := httptest.NewRequest("GET", "/ui/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	zr, err := gzip.NewReader(rec.Body)
	if err != nil || rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzipped app.js: %v %v", err, rec.Header())
	}
	if plain, _ := io.ReadAll(zr); !bytes.Equal(plain, dashboardAssets()["app.js"].body) {
		t.Error("gzipped app.js inflates to other bytes")
	}
	req = httptest.NewRequest("GET", "/ui/app.js", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("revisit with the ETag = %d, %d bytes", rec.Code, rec.Body.Len())
	}

	for _, path := range []string{"/ui/nope.js", "/ui/index.html", "/ui/", "/ui/../v1/runs"} {
		if res := serve(t, h, "GET", path, "", nil); res.code != 404 && res.code != 400 {
			t.Errorf("GET %s = %d %s, want a JSON 404 or 400", path, res.code, res.body)
		}
	}
	if res := serve(t, h, "POST", "/", "", nil); res.code != 405 {
		t.Errorf("POST / = %d", res.code)
	}
	if res := serve(t, h, "GET", "/v1/containers", "", nil); res.header.Get("Content-Security-Policy") != contentSecurityPolicy {
		t.Error("a JSON answer lacks the CSP")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{"gzip": true, "br, gzip;q=0.8": true, "GZIP": true, "gzip;q=0": false, "deflate": false, "": false, "x-gzip": false} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v", h, got)
		}
	}
}

// approvingFake adds approvals and the status to the fake: "web" waits for approval, "db" has
// nothing waiting.
type approvingFake struct {
	*fakeService
	rejected []string
}

func (f *approvingFake) Approve(ctx context.Context, host, name string) (updater.Approval, string, <-chan struct{}, error) {
	a, err := f.decide(name, updater.ApprovalApproved)
	if err != nil {
		return a, "", nil, err
	}
	id, done, err := f.Trigger(ctx, updater.Request{Trigger: updater.TriggerApprove, Containers: []string{name}})
	return a, id, done, err
}

func (f *approvingFake) Reject(ctx context.Context, host, name string) (updater.Approval, error) {
	a, err := f.decide(name, updater.ApprovalRejected)
	if err == nil {
		f.rejected = append(f.rejected, name)
	}
	return a, err
}

func (f *approvingFake) decide(name, state string) (updater.Approval, error) {
	switch {
	case !f.watched[name]:
		return updater.Approval{}, &updater.NotWatchedError{Names: []string{name}}
	case name != "web":
		return updater.Approval{}, &updater.NoApprovalError{Name: name, Why: "no update waits for approval"}
	}
	return updater.Approval{State: state, Digest: "sha256:" + strings.Repeat("2", 64), Kind: "digest"}, nil
}

func (f *approvingFake) Status() updater.Status {
	return updater.Status{Running: "run-9", Schedule: "@every 1h", NextRun: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// TestApproveReject: POST /v1/approve starts a run of the container (202, or its report with
// wait); /v1/reject answers the decision; both need the token, and say 404 NotWatched and 409
// NoPendingApproval; GET /v1/status says what runs and when the next one is.
func TestApproveReject(t *testing.T) {
	f := &approvingFake{fakeService: newFake("web", "db")}
	s, _ := newTestServer(f, Options{Token: testToken, Version: "1.2.3"})
	h, auth := s.Handler(), "Bearer "+testToken

	res := serve(t, h, "POST", "/v1/approve?container=web&wait=true", auth, nil)
	if res.code != 200 || !strings.Contains(res.body, `"containers":[{"name":"web"`) {
		t.Errorf("POST /v1/approve?wait=true = %d %s", res.code, res.body)
	}
	if req := f.lastRequest(t); req.Trigger != updater.TriggerApprove || len(req.Containers) != 1 {
		t.Errorf("the approval's run request %+v", req)
	}
	res = serve(t, h, "POST", "/v1/approve?container=web", auth, nil)
	if res.code != 202 || !strings.HasPrefix(res.header.Get("Location"), "/v1/runs/") {
		t.Errorf("POST /v1/approve = %d %s %v", res.code, res.body, res.header)
	}
	res = serve(t, h, "POST", "/v1/reject?container=web", auth, nil)
	var ans approvalResponse
	if res.code != 200 || json.Unmarshal([]byte(res.body), &ans) != nil || ans.Container != "web" || ans.Approval.State != updater.ApprovalRejected {
		t.Errorf("POST /v1/reject = %d %s", res.code, res.body)
	}
	for _, tc := range []struct {
		method, target, auth string
		code                 int
		reason               string
	}{
		{"POST", "/v1/approve?container=db", auth, 409, ReasonNoPendingApproval},
		{"POST", "/v1/reject?container=db", auth, 409, ReasonNoPendingApproval},
		{"POST", "/v1/approve?container=ghost", auth, 404, ReasonNotWatched},
		{"POST", "/v1/reject?container=ghost", auth, 404, ReasonNotWatched},
		{"POST", "/v1/approve?container=web", "", 401, ReasonUnauthorized},
		{"POST", "/v1/reject?container=web&container=db", auth, 400, ReasonBadRequest},
		{"POST", "/v1/approve?container=we%00b", auth, 400, ReasonBadRequest},
		{"GET", "/v1/reject?container=web", auth, 405, ReasonMethodNotAllowed},
	} {
		if res := serve(t, h, tc.method, tc.target, tc.auth, nil); res.code != tc.code || res.err.Reason != tc.reason {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.target, res.code, res.body, tc.code, tc.reason)
		}
	}
	if len(f.rejected) != 1 {
		t.Errorf("rejections recorded: %v", f.rejected)
	}

	res = serve(t, h, "GET", "/v1/status", auth, nil)
	var st statusAnswer
	if res.code != 200 || json.Unmarshal([]byte(res.body), &st) != nil || st.Running != "run-9" || st.Version != "1.2.3" ||
		!st.TokenConfigured || st.PublicRead || st.NextRun.Year() != 2030 {
		t.Errorf("GET /v1/status = %d %s", res.code, res.body)
	}
	if res := serve(t, h, "GET", "/v1/status", "", nil); res.code != 401 {
		t.Errorf("GET /v1/status without the token = %d", res.code)
	}
}
