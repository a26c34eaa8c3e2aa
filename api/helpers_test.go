package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/watcher-dev/watcher/internal/testenv"
)

const testToken = "s3cret-token-0123456789abcdef"

// syncBuffer is a log sink the race detector accepts.
type syncBuffer = testenv.SyncBuffer

// newTestServer returns a server over f whose debug log goes to the returned buffer.
func newTestServer(f Service, o Options) (*Server, *syncBuffer) {
	logs := &syncBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(f, o), logs
}

// result is one answered request.
type result struct {
	code   int
	header http.Header
	body   string
	err    errorBody // decoded when the body is a JSON error
}

// serve sends one request through h (no socket). auth is the whole Authorization header, "" for none.
func serve(t *testing.T, h http.Handler, method, target, auth string, body io.Reader) result {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := result{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.err); err != nil {
			t.Errorf("%s %s: error body is not JSON: %q", method, target, res.body)
		}
		if res.err.Error == "" || res.err.Reason == "" {
			t.Errorf("%s %s: error body lacks error or reason: %q", method, target, res.body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type = %q, want application/json", method, target, ct)
		}
	}
	return res
}

// serveFrom is serve from client ip.
func serveFrom(t *testing.T, s *Server, method, target, ip, auth string) result {
	t.Helper()
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = ip + ":40000"
		s.Handler().ServeHTTP(w, r)
	}), method, target, auth, nil)
}

// checkNoLeak fails when text holds the token or looks like a stack trace.
func checkNoLeak(t *testing.T, where, text string) {
	t.Helper()
	for _, bad := range []string{testToken, "goroutine ", ".go:", "panic(", "secret-detail"} {
		if strings.Contains(text, bad) {
			t.Errorf("%s contains %q: %s", where, bad, text)
		}
	}
}
