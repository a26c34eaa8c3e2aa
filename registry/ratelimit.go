package registry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRateLimitWait caps what a registry can ask for, so a bogus header cannot silence a host for
// days.
const maxRateLimitWait = 24 * time.Hour

// hostLimits remembers, per host, until when it asked us to stay away.
type hostLimits struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// block keeps host quiet until t (a later deadline already recorded wins).
func (l *hostLimits) block(host string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.until[host]) {
		l.until[host] = t
	}
}

// blocked returns the deadline for host if it is still in the future.
func (l *hostLimits) blocked(host string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.until[host]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(t) {
		delete(l.until, host)
		return time.Time{}, false
	}
	return t, true
}

// rateLimitedError is returned, without sending anything, for a request to a host that is still
// inside the back-off a 429 asked for.
type rateLimitedError struct {
	host  string
	until time.Time
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%s is rate-limited until %s; not asked", e.host, e.until.UTC().Format(time.RFC3339))
}

// retryAt reads when a 429 answer allows the next request, in this order:
//   - Retry-After: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
//   - RateLimit-Reset: seconds until the window resets (IETF RateLimit header draft); values that
//     look like a Unix time (> 1e9) are taken as one;
//   - RateLimit-Remaining "0;w=SECONDS" (Docker Hub): the quota is spent and the window is w
//     seconds long; we wait for the next window (docs/api.md, reason RateLimited);
//   - none of these: fallback.
//
// The source names the header used, for messages. The result is never before now and never more
// than maxRateLimitWait after it.
func retryAt(h http.Header, now time.Time, fallback time.Duration) (t time.Time, source string) {
	t, source = parseRetryHeaders(h, now)
	if source == "" {
		t, source = now.Add(fallback), "no Retry-After"
	}
	if t.Before(now) {
		t = now
	}
	if t.After(now.Add(maxRateLimitWait)) {
		t = now.Add(maxRateLimitWait)
	}
	return t, source
}

func parseRetryHeaders(h http.Header, now time.Time) (time.Time, string) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return now.Add(time.Duration(s) * time.Second), "Retry-After"
		}
		if t, err := http.ParseTime(v); err == nil {
			return t, "Retry-After"
		}
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if s, err := strconv.ParseInt(firstField(v), 10, 64); err == nil && s >= 0 {
			if s > 1e9 {
				return time.Unix(s, 0), "RateLimit-Reset"
			}
			return now.Add(time.Duration(s) * time.Second), "RateLimit-Reset"
		}
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Remaining")); v != "" {
		// Docker Hub: "ratelimit-remaining: 0;w=21600".
		if n, err := strconv.ParseInt(firstField(v), 10, 64); err == nil && n == 0 {
			if w, ok := windowParam(v); ok {
				return now.Add(time.Duration(w) * time.Second), "RateLimit-Remaining window"
			}
		}
	}
	return time.Time{}, ""
}

// firstField returns what precedes the first ';' or ',' of a header value.
func firstField(v string) string {
	if i := strings.IndexAny(v, ";,"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// windowParam finds "w=N" among a header value's ';'-separated parameters.
func windowParam(v string) (int64, bool) {
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "w") {
			continue
		}
		if w, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil && w > 0 {
			return w, true
		}
	}
	return 0, false
}
