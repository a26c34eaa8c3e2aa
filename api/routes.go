package api

import (
	"net/http"
	"path"
	"time"
)

// routes builds the mux. Every path is registered twice: "METHOD /path" for the handler and
// "/path" for a JSON 405 naming the allowed methods; "/" answers a JSON 404. (The mux's own
// 404/405 answers are plain text.)
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, a access, h http.HandlerFunc) {
		mux.Handle(method+" "+path, s.guard(a, h))
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.Handle(path, methodNotAllowed(allow))
	}
	route(http.MethodPost, "/v1/update", accessWrite, s.handleUpdate)
	route(http.MethodPost, "/v1/rollback", accessWrite, s.handleRollback)
	route(http.MethodPost, "/v1/approve", accessWrite, s.handleApprove)
	route(http.MethodPost, "/v1/reject", accessWrite, s.handleReject)
	route(http.MethodPost, "/v1/webhooks/{kind}", accessWebhook, s.handleWebhook)
	route(http.MethodPost, "/v1/webhooks/{kind}/{secret}", accessWebhook, s.handleWebhook)
	route(http.MethodGet, "/v1/containers", accessRead, s.handleContainers)
	route(http.MethodGet, "/v1/runs", accessRead, s.handleRuns)
	route(http.MethodGet, "/v1/runs/{id}", accessRead, s.handleRun)
	route(http.MethodGet, "/v1/status", accessRead, s.handleStatus)
	route(http.MethodGet, "/v1/events", accessRead, s.handleEvents)
	route(http.MethodGet, "/{$}", accessPublic, s.handleDashboard)
	route(http.MethodGet, "/ui/{file}", accessPublic, s.handleAsset)
	route(http.MethodGet, "/healthz", accessPublic, s.handleHealthz)
	route(http.MethodGet, "/readyz", accessPublic, s.handleReadyz)
	route(http.MethodGet, "/metrics", accessRead, s.metrics.Handler().ServeHTTP)
	route(http.MethodGet, "/v1/metrics", accessRead, s.metrics.Handler().ServeHTTP) // Watchtower's path
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, ReasonNotFound, "no such endpoint: "+quote(r.URL.Path))
	})
	return s.wrap(mux)
}

// guard applies the endpoint's access rule (failed authentications are throttled there), then,
// for the trigger, the caller's rate limit: only requests with the right token spend it, so
// nobody without the token can use up the budget of a caller with it.
func (s *Server) guard(a access, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == accessWebhook {
			h(w, r) // authenticated by the webhook secret, which may need the body (GitHub's HMAC)
			return
		}
		if !s.authorize(w, r, a) {
			return
		}
		if a == accessWrite && s.rateLimited(w, r) {
			return
		}
		h(w, r)
	})
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, ReasonMethodNotAllowed,
			"method "+quote(r.Method)+" not allowed on "+r.Pattern+"; allowed: "+allow)
	})
}

// wrap adds what every response gets: no caching or sniffing, the dashboard's CSP, a capped body, a panic turned into
// a bare JSON 500 (the value is logged, never the stack or the request), a JSON answer where the
// mux would give none or text/html, and a debug log line.
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		if r.ContentLength != 0 && r.ProtoMajor == 1 {
			// No endpoint reads a body. Closing the connection after the answer spares the server
			// from reading what is left of one first (net/http does so before answering when the
			// connection is kept), so a body that never arrives does not hold up the answer.
			h.Set("Connection", "close")
		}
		r.Body = http.MaxBytesReader(w, r.Body, bodyLimit(r.URL.Path))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("http: handler panicked", "method", r.Method, "path", logPath(r.URL.Path), "panic", v)
				if !sw.wrote {
					writeError(sw, http.StatusInternalServerError, ReasonInternal, "internal error")
				}
			} else if !sw.wrote {
				// net/http would send an empty 200: every answer is JSON, and this one is a bug.
				s.log.Error("http: handler wrote no answer", "method", r.Method, "path", logPath(r.URL.Path))
				writeError(sw, http.StatusInternalServerError, ReasonInternal, "internal error")
			}
			s.log.Debug("http: request", "method", r.Method, "path", logPath(r.URL.Path), "status", sw.status,
				"remote", remoteIP(r), "duration", time.Since(start))
		}()
		if !misrouted(sw, r) {
			next.ServeHTTP(sw, r)
		}
	})
}

// misrouted answers, in JSON, what http.ServeMux would answer in text/html (and returns true):
// a path that is not clean, which the mux redirects, and CONNECT, which it does not clean.
func misrouted(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, ReasonMethodNotAllowed, `method "CONNECT" not allowed`)
		return true
	}
	p := r.URL.EscapedPath()
	c := cleanPath(p)
	if p == c {
		return false
	}
	msg := "path " + quote(p) + ` is not clean (empty, "." or ".." segments)`
	if quote(c) != "(not shown)" {
		msg += "; did you mean " + quote(c) + "?"
	}
	writeError(w, http.StatusBadRequest, ReasonBadRequest, msg)
	return true
}

// cleanPath is the path http.ServeMux would redirect p to: rooted, without empty, "." or ".."
// segments, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// statusWriter records the status for the log. Unwrap keeps http.ResponseController working.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
