package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind is what a FaultProxy does to a request one of its rules matches.
type FaultKind string

// Faults. "Before" kinds never let the request reach the engine; "after" kinds let the engine
// carry it out and then lose or falsify the answer — the case a client must never read as "did
// not happen".
const (
	FaultDelay       FaultKind = "delay"        // hold the request for Delay, then pass it (dropped if the client left)
	FaultHang        FaultKind = "hang"         // hold it for Delay without passing it, then cut the connection
	FaultCut         FaultKind = "cut"          // cut the connection without passing the request
	FaultStatus      FaultKind = "status"       // answer Status without passing the request
	FaultCutAfter    FaultKind = "cut-after"    // pass it, let the engine answer, cut the connection instead
	FaultStatusAfter FaultKind = "status-after" // pass it, let the engine answer, answer Status instead
	FaultTimeout     FaultKind = "timeout"      // pass it; after Delay without the engine's answer, answer 504 and close the engine's connection (a socket proxy's timeout)
)

// FaultKinds lists every kind, for tallies.
var FaultKinds = []FaultKind{FaultDelay, FaultHang, FaultCut, FaultStatus, FaultCutAfter, FaultStatusAfter, FaultTimeout}

// FaultRule says which requests get which fault.
type FaultRule struct {
	Method string         // "" = any
	Path   *regexp.Regexp // matched against the path without its /vX.Y prefix; nil = any
	Nth    int            // fault only the Nth matching request (1-based); 0 = every one
	Kind   FaultKind
	Delay  time.Duration // FaultDelay, FaultHang, FaultTimeout
	Status int           // FaultStatus, FaultStatusAfter (404, 409, 500, ...)

	hits int
}

func (r *FaultRule) String() string {
	path := "*"
	if r.Path != nil {
		path = r.Path.String()
	}
	s := fmt.Sprintf("%s %s #%d: %s", orAny(r.Method), path, r.Nth, r.Kind)
	switch r.Kind {
	case FaultDelay, FaultHang, FaultTimeout:
		s += " " + r.Delay.String()
	case FaultStatus, FaultStatusAfter:
		s += fmt.Sprintf(" %d", r.Status)
	}
	return s
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// FaultProxy is an Engine API proxy on a unix socket in front of the private engine: a client
// pointed at Host (DOCKER_HOST) reaches the engine through it, and each request either passes
// or gets the fault of the first rule that matches it. It stands in for an engine under load, a
// flaky socket, and a socket proxy whose HTTP timeout is shorter than the request.
type FaultProxy struct {
	Host string // unix://<socket>, for DOCKER_HOST

	upstream string // the engine's socket path
	dir      string
	srv      *http.Server
	rp       *httputil.ReverseProxy
	tr       *http.Transport

	bgCtx    context.Context // forwarded requests whose client was answered already
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	mu       sync.Mutex
	rules    []*FaultRule
	injected map[FaultKind]int
	log      []string
}

// bgLimit bounds a request the proxy passes on for an "after" fault or a timeout.
const bgLimit = 2 * time.Minute

var apiVersionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// NewFaultProxy starts a proxy in front of the engine DOCKER_HOST names (a unix socket) and stops
// it when the test ends. It has no rules until SetRules.
func NewFaultProxy(t testing.TB) *FaultProxy {
	t.Helper()
	p, err := StartFaultProxy(os.Getenv("DOCKER_HOST"))
	if err != nil {
		t.Fatalf("testenv: fault proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartFaultProxy is NewFaultProxy without a testing.TB: engineHost is the engine's unix://
// address. Close stops it.
func StartFaultProxy(engineHost string) (*FaultProxy, error) {
	upstream, ok := strings.CutPrefix(engineHost, "unix://")
	if !ok {
		return nil, fmt.Errorf("the engine must be on a unix socket, not %q", engineHost)
	}
	// A short directory: a unix socket's path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "fp")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &FaultProxy{Host: "unix://" + sock, upstream: upstream, dir: dir, injected: map[FaultKind]int{}}
	p.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "docker", "docker"
		},
		Transport:     p.tr,
		FlushInterval: -1, // events, pull progress and waits stream
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeAPIError(w, http.StatusBadGateway, "fault proxy: engine unreachable: "+err.Error())
		},
	}
	p.bgCtx, p.bgCancel = context.WithCancel(context.Background())
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetRules replaces the rules (and restarts their counts).
func (p *FaultProxy) SetRules(rules ...*FaultRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = rules
	for _, r := range rules {
		r.hits = 0
	}
}

// Injected returns how many faults of each kind were injected so far.
func (p *FaultProxy) Injected() map[FaultKind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[FaultKind]int, len(p.injected))
	for k, v := range p.injected {
		out[k] = v
	}
	return out
}

// Log returns one line per injected fault, in order: the rule and the request it hit.
func (p *FaultProxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// Close stops the proxy: open connections are cut, and requests it is passing on are waited for
// (bounded).
func (p *FaultProxy) Close() {
	_ = p.srv.Close()
	done := make(chan struct{})
	go func() { p.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bgLimit):
	}
	p.bgCancel()
	p.tr.CloseIdleConnections()
	_ = os.RemoveAll(p.dir)
}

// match returns the rule that faults req, counting the request for every rule it matches.
func (p *FaultProxy) match(req *http.Request) *FaultRule {
	path := apiVersionPrefix.ReplaceAllString(req.URL.Path, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	var hit *FaultRule
	for _, r := range p.rules {
		if (r.Method != "" && r.Method != req.Method) || (r.Path != nil && !r.Path.MatchString(path)) {
			continue
		}
		r.hits++
		if hit == nil && (r.Nth == 0 || r.hits == r.Nth) {
			hit = r
		}
	}
	if hit != nil {
		p.injected[hit.Kind]++
		p.log = append(p.log, fmt.Sprintf("%s %s <- %s", req.Method, path, hit))
	}
	return hit
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r := p.match(req)
	if r == nil {
		p.rp.ServeHTTP(w, req)
		return
	}
	switch r.Kind {
	case FaultDelay:
		select {
		case <-time.After(r.Delay):
			p.rp.ServeHTTP(w, req)
		case <-req.Context().Done(): // the client left: the request is dropped, as a proxy would
		}
	case FaultHang:
		select {
		case <-time.After(r.Delay):
		case <-req.Context().Done():
		}
		cut(w)
	case FaultCut:
		cut(w)
	case FaultStatus:
		writeAPIError(w, r.Status, fmt.Sprintf("fault injected: %s before the engine", r))
	case FaultCutAfter, FaultStatusAfter:
		p.bg.Add(1)
		if resp := p.forward(req, context.WithoutCancel(req.Context()), bgLimit); resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		p.bg.Done()
		if r.Kind == FaultCutAfter {
			cut(w)
			return
		}
		writeAPIError(w, r.Status, fmt.Sprintf("fault injected: %s after the engine acted", r))
	case FaultTimeout:
		p.timeout(w, req, r.Delay)
	}
}

// timeout passes req on and answers the engine's response if it is complete within d, else 504
// and closes the connection to the engine, as a socket proxy's timeout does: the engine goes on
// only with what does not depend on the connection (a stop does; a wait or a pull does not).
func (p *FaultProxy) timeout(w http.ResponseWriter, req *http.Request, d time.Duration) {
	type answer struct {
		resp *http.Response
		body []byte
	}
	done := make(chan answer, 1)
	body, _ := io.ReadAll(req.Body)
	ctx, cancel := context.WithCancel(p.bgCtx)
	defer cancel()
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		out := req.Clone(ctx)
		out.Body = io.NopCloser(bytes.NewReader(body))
		resp := p.forward(out, ctx, bgLimit)
		var a answer
		if resp != nil {
			a.resp = resp
			a.body, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
		}
		done <- a
	}()
	select {
	case a := <-done:
		if a.resp == nil {
			cut(w)
			return
		}
		for k, v := range a.resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(a.resp.StatusCode)
		_, _ = w.Write(a.body)
	case <-time.After(d):
		writeAPIError(w, http.StatusGatewayTimeout, "fault injected: the proxy timed out after "+d.String())
	case <-req.Context().Done():
	}
}

// forward sends req to the engine on ctx and returns its response (nil if it failed).
func (p *FaultProxy) forward(req *http.Request, ctx context.Context, limit time.Duration) *http.Response {
	ctx, cancel := context.WithTimeout(ctx, limit)
	body, _ := io.ReadAll(req.Body)
	out, err := http.NewRequestWithContext(ctx, req.Method, "http://docker"+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil
	}
	out.Header = req.Header.Clone()
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		cancel()
		return nil
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// cut closes the client's connection without an answer.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // the server closes the connection
}

// writeAPIError answers as the engine does: JSON {"message": ...}.
func writeAPIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"message\":%q}\n", msg)
}
