package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// access says who may call an endpoint.
type access int

const (
	accessPublic access = iota // /healthz, /readyz: anyone (container healthchecks, orchestrators)
	accessRead                 // GET /v1/*, /metrics: the token, unless http.public_read
	accessWrite                // POST /v1/update: the token, always; no token configured = disabled
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
	if problem == "" && !s.token.match(cred) {
		problem = "invalid bearer token"
	}
	if problem != "" {
		s.log.Info("http: unauthorized request", "remote", remoteIP(r), "method", r.Method, "path", r.URL.Path, "why", problem)
		challenge := `Bearer realm="watcher"`
		if cred != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, ReasonUnauthorized, problem)
		return false
	}
	return true
}
