package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxClients bounds each limiter's table. Clients that find it full share one overflow budget
// (see clientLimiter.bucket), so a flood of source addresses neither grows memory nor gives
// anyone a fresh budget.
const maxClients = 4096

// clientLimiter is a token bucket per client (clientKey): burst requests at once, then one
// every interval. The client is the TCP peer: X-Forwarded-For is not trusted, anyone can send it.
type clientLimiter struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	idle      time.Duration // a client unseen this long has its whole budget back: forgetting it loses nothing
	max       int           // table size
	clients   map[string]*clientBucket
	overflow  *rate.Limiter // shared by the clients that found the table full
	lastSweep time.Time
	now       func() time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newClientLimiter allows burst requests per client at once and one more every interval.
// burst < 1 means no limit: it returns nil, which allows everything.
func newClientLimiter(burst int, interval time.Duration) *clientLimiter {
	if burst < 1 {
		return nil
	}
	return &clientLimiter{
		limit:   rate.Every(interval),
		burst:   burst,
		idle:    time.Duration(burst) * interval,
		max:     maxClients,
		clients: make(map[string]*clientBucket),
		now:     time.Now,
	}
}

// perMinute is newClientLimiter for n requests a minute with a burst of n (http.rate_limit):
// a client can spend a minute's worth at once, then one every 60s/n. n < 1 means no limit.
func perMinute(n int) *clientLimiter {
	if n < 1 {
		return nil
	}
	return newClientLimiter(n, time.Minute/time.Duration(n))
}

// allow takes one token for client key, or says how long until one is available.
func (l *clientLimiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim := l.bucket(key, now)
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket returns key's limiter, adding key to the table when there is room, else the overflow
// limiter. A full table is swept at most once a second: a flood of new addresses costs one
// pass over the table per second, not one per request.
func (l *clientLimiter) bucket(key string, now time.Time) *rate.Limiter {
	if b := l.clients[key]; b != nil {
		b.seen = now
		return b.lim
	}
	full := len(l.clients) >= l.max
	if (full && now.Sub(l.lastSweep) >= time.Second) || now.Sub(l.lastSweep) > l.idle {
		l.sweep(now)
		full = len(l.clients) >= l.max
	}
	if full {
		if l.overflow == nil {
			l.overflow = rate.NewLimiter(l.limit, l.burst)
		}
		return l.overflow
	}
	b := &clientBucket{lim: rate.NewLimiter(l.limit, l.burst), seen: now}
	l.clients[key] = b
	return b.lim
}

// sweep forgets the clients that have their whole budget back (unseen for idle); the others
// keep theirs however full the table is.
func (l *clientLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for key, b := range l.clients {
		if now.Sub(b.seen) > l.idle {
			delete(l.clients, key)
		}
	}
}

// retryAfter sets Retry-After to wait in whole seconds (rounded up, at least 1) and returns it.
func retryAfter(w http.ResponseWriter, wait time.Duration) string {
	secs := strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1))
	w.Header().Set("Retry-After", secs)
	return secs
}

// rateLimited answers 429 with Retry-After when the (authenticated) client is over its
// http.rate_limit of triggers.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := s.limiter.allow(clientKey(r))
	if ok {
		return false
	}
	secs := retryAfter(w, wait)
	s.log.Info("http: trigger rate limited", "remote", remoteIP(r), "retry_after_s", secs)
	writeError(w, http.StatusTooManyRequests, ReasonRateLimited, "too many update requests from this client; retry after "+secs+"s")
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

// clientKey is who a limit applies to: the peer's IPv4 address, or its IPv6 /64 (a single host
// usually holds a whole /64, so keying by address would hand it 2^64 budgets).
func clientKey(r *http.Request) string {
	ip := remoteIP(r)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
