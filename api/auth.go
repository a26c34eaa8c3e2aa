package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// access says who may call an endpoint.
type access int

const (
	accessPublic  access = iota // /healthz, /readyz: anyone (container healthchecks, orchestrators)
	accessRead                  // GET /v1/*, /metrics: the token, unless http.public_read
	accessWrite                 // POST /v1/update, /v1/rollback: the token, always; no token configured = disabled
	accessWebhook               // POST /v1/webhooks/*: http.webhook_secret, checked by the handler (webhooks.go)
)

// tokenChecker holds only a digest of the configured token, so comparing never depends on the
// presented token's length or content (crypto/subtle alone leaks the length).
type tokenChecker struct {
	set  bool
	hash [sha256.Size]byte
}

func newTokenChecker(token string) tokenChecker {
	if token == "" {
		return tokenChecker{}
	}
	return tokenChecker{set: true, hash: sha256.Sum256([]byte(token))}
}

// bearer extracts the credential of an "Authorization: Bearer <token>" header.
//
// Decisions, pinned by TestToken:
//   - The scheme is matched case-insensitively ("bearer", "BEARER"): RFC 9110 §11.1 makes
//     auth schemes case-insensitive and curl/http clients differ in spelling.
//   - One or more spaces may separate scheme and token; surrounding whitespace is dropped.
//   - A token containing whitespace, an empty token, any other scheme (Basic, Token, none) and
//     more than one Authorization header are all rejected.
//   - The token is accepted only in the header, never in the query (it would end up in logs).
func bearer(r *http.Request) (string, string) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", "missing bearer token (Authorization: Bearer <http.token>)"
	case len(vals) > 1:
		return "", "more than one Authorization header"
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "authorization scheme must be Bearer"
	}
	cred = strings.TrimSpace(cred)
	if cred == "" {
		return "", "empty bearer token"
	}
	if strings.ContainsAny(cred, " \t\r\n") {
		return "", "malformed bearer token"
	}
	return cred, ""
}

// match reports in constant time whether presented is the configured token.
func (t tokenChecker) match(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	ok := subtle.ConstantTimeCompare(h[:], t.hash[:]) == 1
	return ok && t.set
}

// authorize answers the request itself (and returns false) when the caller may not go on.
// The right token is always accepted, even from a client that is being throttled: a guesser
// sharing an address with the real caller (a NAT, a proxy) must not lock it out. What keeps
// guessing hopeless is the token's length, checked at start (config: at least 16 characters).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, a access) bool {
	if a == accessPublic || (a == accessRead && s.publicRead) {
		return true
	}
	if !s.token.set {
		msg := "http.token is not set: endpoints that change things are disabled"
		if a == accessRead {
			msg = "http.token is not set and http.public_read is false: read endpoints are disabled"
		}
		writeError(w, http.StatusForbidden, ReasonTokenNotConfigured, msg)
		return false
	}
	cred, problem := bearer(r)
	if problem == "" && s.token.match(cred) {
		return true
	}
	if problem == "" {
		problem = "invalid bearer token"
	}
	s.unauthorized(w, r, problem, cred != "")
	return false
}

// unauthorized answers a failed authentication: 401 with why, or 429 with Retry-After once the
// client has failed too often (on any endpoint). presented: a credential was given (and wrong).
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, problem string, presented bool) {
	s.log.Debug("http: unauthorized request", "remote", remoteIP(r), "method", r.Method, "path", logPath(r.URL.Path), "why", problem)
	ok, wait := s.authFailures.allow(clientKey(r))
	s.failures.record(remoteIP(r), problem, !ok)
	if !ok {
		secs := retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, ReasonRateLimited,
			"too many failed authentications from this client; retry after "+secs+"s")
		return
	}
	challenge := `Bearer realm="watcher"`
	if presented {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, ReasonUnauthorized, problem)
}

// Failed authentications a client may make: authFailBurst at once, then one every
// authFailInterval (10 a minute). Beyond that it is answered 429 with Retry-After.
const (
	authFailBurst    = 10
	authFailInterval = 6 * time.Second
	failureLogEvery  = time.Minute // failed authentications are summarized this often
	maxLoggedClients = 1024        // distinct clients counted per summary
)

// failureLog logs failed authentications in aggregate: the first one of a quiet period as it
// happens (so a misconfigured client is seen at once), then one summary line per failureLogEvery
// with the counts, instead of a line per guess.
type failureLog struct {
	mu        sync.Mutex
	log       *slog.Logger
	since     time.Time // start of the period; zero = quiet
	failures  int
	throttled int            // of failures, answered 429
	clients   map[string]int // failures by client, up to maxLoggedClients clients
	timer     *time.Timer
}

func newFailureLog(log *slog.Logger) *failureLog {
	return &failureLog{log: log, clients: map[string]int{}}
}

// record counts one failed authentication from client.
func (f *failureLog) record(client, why string, throttled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		f.since = time.Now()
		f.log.Info("http: authentication failed; further failures are summarized every minute",
			"remote", client, "why", why)
		f.timer = time.AfterFunc(failureLogEvery, f.flush)
	}
	f.failures++
	if throttled {
		f.throttled++
	}
	if _, ok := f.clients[client]; ok || len(f.clients) < maxLoggedClients {
		f.clients[client]++
	}
}

// flush logs the summary of the period, if it had more than its first failure, and ends it.
func (f *failureLog) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.since.IsZero() {
		return
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	if f.failures > 1 {
		top, topN := "", 0
		for c, n := range f.clients {
			if n > topN || (n == topN && c < top) {
				top, topN = c, n
			}
		}
		f.log.Warn("http: failed authentications", "failures", f.failures, "answered_429", f.throttled,
			"clients", len(f.clients), "top_client", top, "top_client_failures", topN,
			"since", f.since.Format(time.RFC3339))
	}
	f.since, f.failures, f.throttled, f.timer = time.Time{}, 0, 0, nil
	clear(f.clients)
}
