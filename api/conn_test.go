package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawResult is an answer read off the wire.
type rawResult struct {
	code   int
	header http.Header
	body   string
	close  bool // the server closes the connection after this answer
}

// rawRequest writes req as is to addr (no client cleans or completes it), half-closes the
// connection when halfClose, and reads one answer. The read is bounded at 10s: far beyond any
// prompt answer, far below the timeouts the callers set, which an answer that waits would hit.
func rawRequest(t *testing.T, addr, req string, halfClose bool) rawResult {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: no answer: %v", firstLine(req), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: reading the answer: %v", firstLine(req), err)
	}
	return rawResult{resp.StatusCode, resp.Header, string(b), resp.Close}
}

func firstLine(req string) string { l, _, _ := strings.Cut(req, "\r\n"); return l }

// checkJSON fails unless the answer is JSON: an object for errors with error and reason.
func checkJSON(t *testing.T, what string, res rawResult) {
	t.Helper()
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json (%d %q)", what, ct, res.code, res.body)
		return
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(res.body), &v); err != nil {
		t.Errorf("%s: body %q is not a JSON object: %v", what, res.body, err)
	}
	if res.code >= 300 && (v["error"] == "" || v["error"] == nil || v["reason"] == nil) {
		t.Errorf("%s: %d %s, want {error, reason}", what, res.code, res.body)
	}
}

// TestHalfClose: a client that half-closes its connection after the request (Go cancels the
// request's context then) still reads a real answer: the trigger is taken (202 with the run id,
// also with ?wait=true), the reads answer, and /readyz does not blame the engine. Each request
// reaches the handler only after the server has seen the half-close.
func TestHalfClose(t *testing.T) {
	f := newFake("web")
	release := f.holdRuns()
	defer release()
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken})
	inner := s.handler
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
			t.Errorf("%s %s: the half-close was not seen", r.Method, r.URL)
		}
		inner.ServeHTTP(w, r)
	})
	startServer(t, s)
	auth := "Authorization: Bearer " + testToken + "\r\n"
	tests := []struct {
		req  string
		want int
		has  string
	}{
		{"POST /v1/update HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 202, `"run_id":"run-1"`},
		{"POST /v1/update?wait=true HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 202, `"run_id":"run-2"`},
		{"POST /v1/update?container=web HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 202, `"run_id":"run-2"`},
		{"GET /v1/containers HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 200, `"name":"web"`},
		{"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 200, `"status":"ready"`},
		{"GET /healthz HTTP/1.0\r\n\r\n", 200, `"status":"ok"`},
	}
	for _, tt := range tests {
		res := rawRequest(t, s.Addr().String(), tt.req, true)
		if res.code != tt.want || !strings.Contains(res.body, tt.has) {
			t.Errorf("%q half-closed = %d %q, want %d with %s", firstLine(tt.req), res.code, res.body, tt.want, tt.has)
		}
		checkJSON(t, firstLine(tt.req), res)
	}
	if n := f.triggerCount(); n != 3 {
		t.Errorf("%d triggers reached the daemon, want 3", n)
	}
}

// TestEveryAnswerJSON: paths the mux would redirect (text/html), CONNECT, "OPTIONS *" and other
// odd request lines are answered in JSON, never 3xx.
func TestEveryAnswerJSON(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken})
	startServer(t, s)
	auth := "Authorization: Bearer " + testToken + "\r\n"
	tests := []struct {
		line string
		want int
	}{
		{"GET //healthz", 400},
		{"GET /v1//runs", 400},
		{"GET /v1/./runs", 400},
		{"GET /v1/runs/../containers", 400},
		{"GET /v1/runs/run-1/..", 400},
		{"GET /v1/runs/%2e%2e/containers", 404}, // escaped dots are no segment: the mux does not clean them
		{"POST /v1/../v1/update", 400},
		{"GET /./metrics", 400},
		{"GET /healthz/", 404},
		{"GET /v1/runs/", 404},
		{"GET /v1/runs/a%2Fb", 400},
		{"GET http://x/v1/runs", 200},
		{"GET http://x//v1/runs", 400},
		{"OPTIONS *", 400},
		{"CONNECT x:443", 405},
		{"CONNECT /v1/runs", 405},
		{"BREW /v1/runs", 405},
		{"GET /%zz", 400},
	}
	for _, tt := range tests {
		res := rawRequest(t, s.Addr().String(), tt.line+" HTTP/1.1\r\nHost: x\r\n"+auth+"\r\n", false)
		if res.code != tt.want {
			t.Errorf("%s = %d %q, want %d", tt.line, res.code, res.body, tt.want)
		}
		if res.code == 400 && strings.Contains(res.body, "not clean") && !strings.Contains(res.body, "did you mean") {
			t.Errorf("%s: %s, want the clean path suggested", tt.line, res.body)
		}
		if strings.HasPrefix(tt.line, "GET /%zz") {
			continue // refused by net/http before any handler: its own text answer
		}
		checkJSON(t, tt.line, res)
	}
}

// TestStalledBody: a request whose body never arrives (Content-Length larger than what is sent)
// is answered at once and its connection closed, on every endpoint; the read timeouts are set
// far beyond the client's patience, so an answer that waited for the body would not come.
func TestStalledBody(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Listen: "127.0.0.1:0", Token: testToken})
	s.timeouts.read, s.timeouts.readHeader = time.Hour, time.Hour
	startServer(t, s)
	auth := "Authorization: Bearer " + testToken + "\r\n"
	tests := []struct {
		line string
		want int
	}{
		{"POST /v1/update", 202},
		{"POST /v1/update?wait=true", 200},
		{"GET /v1/runs", 200},
		{"GET /v1/containers", 200},
		{"GET /healthz", 200},
		{"GET /metrics", 200},
		{"GET /nope", 404},
		{"PUT /v1/update", 405},
	}
	for _, tt := range tests {
		for _, length := range []string{"Content-Length: 10\r\n", "Content-Length: 100000\r\n", "Transfer-Encoding: chunked\r\n"} {
			req := tt.line + " HTTP/1.1\r\nHost: x\r\n" + auth + length + "\r\nabc"
			res := rawRequest(t, s.Addr().String(), req, false)
			want := tt.want
			switch {
			case strings.HasPrefix(tt.line, "POST /v1/update") && !strings.HasPrefix(length, "Content-Length: 10\r"):
				want = 400 // too large; unknown length
			}
			if res.code != want {
				t.Errorf("%s with %q and 3 bytes = %d %q, want %d", tt.line, strings.TrimSpace(length), res.code, res.body, want)
			}
			if !res.close {
				t.Errorf("%s with a body: the connection is kept, want it closed", tt.line)
			}
			if tt.line != "GET /metrics" {
				checkJSON(t, tt.line, res)
			}
		}
	}
}
