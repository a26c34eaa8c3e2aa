package api

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultRateLimit is how many POST /v1/update one client may send per minute.
const DefaultRateLimit = 30

// maxClients bounds the limiter table; idle clients are forgotten first.
const maxClients = 4096

// clientLimiter is a token bucket per remote IP: perMinute requests a minute, with a burst of the
// same size, so a client can spend a minute's worth at once and then one every 60s/perMinute.
// The remote IP is the TCP peer: X-Forwarded-For is not trusted, since anyone can send it.
type clientLimiter struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	idle      time.Duration // a client unseen this long has a full bucket again and can be dropped
	clients   map[string]*clientBucket
	lastSweep time.Time
	now       func() time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newClientLimiter returns nil (no limit) for perMinute < 0.
func newClientLimiter(perMinute int) *clientLimiter {
	if perMinute < 0 {
		return nil
	}
	if perMinute == 0 {
		perMinute = DefaultRateLimit
	}
	return &clientLimiter{
		limit:   rate.Limit(float64(perMinute) / 60),
		burst:   perMinute,
		idle:    2 * time.Minute,
		clients: make(map[string]*clientBucket),
		now:     time.Now,
	}
}

// allow takes one token for ip, or says how long until one is available.
func (l *clientLimiter) allow(ip string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.clients) >= maxClients || now.Sub(l.lastSweep) > l.idle {
		l.sweep(now)
	}
	b := l.clients[ip]
	if b == nil {
		b = &clientBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[ip] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets idle clients; if the table is still full, it starts over (a flood of distinct
// addresses must not grow memory without bound).
func (l *clientLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for ip, b := range l.clients {
		if now.Sub(b.seen) > l.idle {
			delete(l.clients, ip)
		}
	}
	if len(l.clients) >= maxClients {
		clear(l.clients)
	}
}

// rateLimited answers 429 with Retry-After (whole seconds, rounded up) when the client is over its limit.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := s.limiter.allow(remoteIP(r))
	if ok {
		return false
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	s.log.Info("http: rate limited", "remote", remoteIP(r), "path", r.URL.Path, "retry_after_s", secs)
	writeError(w, http.StatusTooManyRequests, ReasonRateLimited, "too many update requests from this client; retry after "+strconv.Itoa(max(secs, 1))+"s")
	return true
}

// remoteIP is the TCP peer's address without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
