package registry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// meter is the RoundTripper every registry request goes through, below go-containerregistry's
// authentication and above Options.Transport. It
//   - refuses requests to a host inside a 429 back-off (nothing is sent);
//   - fixes the scheme: plain HTTP for loopback registries (go-containerregistry's ping would try
//     https first), https for everything else (its ping falls back to http for RFC 1918 addresses,
//     and a redirect could point at http: both refused);
//   - counts requests for the lookup that made them and calls Options.OnRequest;
//   - on a 429, reads the headers go-containerregistry's transport.Error does not expose and
//     blocks the host until the time they name.
type meter struct {
	next      http.RoundTripper
	limits    *hostLimits
	now       func() time.Time
	onRequest func(host, method string, code int)
	backoff   time.Duration // 429 without a usable header
}

var _ http.RoundTripper = (*meter)(nil)

func (m *meter) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if until, ok := m.limits.blocked(host, m.now()); ok {
		return nil, &rateLimitedError{host: host, until: until}
	}
	switch {
	case isLoopback(host) && req.URL.Scheme == "https":
		req = req.Clone(req.Context())
		req.URL.Scheme = "http"
	case !isLoopback(host) && req.URL.Scheme != "https":
		return nil, &insecureError{url: req.URL.Redacted()}
	}
	resp, err := m.next.RoundTrip(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	tr := traceFrom(req.Context())
	if tr != nil {
		tr.requests.Add(1)
	}
	if code == http.StatusTooManyRequests {
		until, source := retryAt(resp.Header, m.now(), m.backoff)
		m.limits.block(host, until)
		if tr != nil {
			tr.note429(until, source)
		}
	}
	if m.onRequest != nil {
		m.onRequest(host, req.Method, code)
	}
	return resp, err
}

// insecureError refuses plain HTTP to a registry that is not on this machine.
type insecureError struct{ url string }

func (e *insecureError) Error() string {
	return fmt.Sprintf("refusing plain HTTP to %s: only loopback registries are used without TLS", e.url)
}

// trace collects what one lookup's requests saw; it travels in the request context.
type trace struct {
	requests atomic.Int32

	mu          sync.Mutex
	limitUntil  time.Time // latest deadline named by a 429 in this lookup
	limitSource string
}

func (t *trace) note429(until time.Time, source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until.After(t.limitUntil) {
		t.limitUntil, t.limitSource = until, source
	}
}

func (t *trace) rateLimit() (time.Time, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limitUntil, t.limitSource
}

type traceKey struct{}

func withTrace(ctx context.Context, t *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *trace {
	t, _ := ctx.Value(traceKey{}).(*trace)
	return t
}
