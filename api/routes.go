package api

import (
	"net/http"
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
	route(http.MethodGet, "/v1/containers", accessRead, s.handleContainers)
	route(http.MethodGet, "/v1/runs", accessRead, s.handleRuns)
	route(http.MethodGet, "/v1/runs/{id}", accessRead, s.handleRun)
	route(http.MethodGet, "/healthz", accessPublic, s.handleHealthz)
	route(http.MethodGet, "/readyz", accessPublic, s.handleReadyz)
	route(http.MethodGet, "/metrics", accessRead, s.metrics.Handler().ServeHTTP)
	route(http.MethodGet, "/v1/metrics", accessRead, s.metrics.Handler().ServeHTTP) // Watchtower's path
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, ReasonNotFound, "no such endpoint: "+quote(r.URL.Path))
	})
	return s.wrap(mux)
}

// guard applies the endpoint's access rule, and for the trigger the per-client rate limit first
// (so guessing tokens is throttled too).
func (s *Server) guard(a access, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == accessWrite && s.rateLimited(w, r) {
			return
		}
		if !s.authorize(w, r, a) {
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

// wrap adds what every response gets: no caching or sniffing, a capped body, a panic turned into
// a bare JSON 500 (the value is logged, never the stack or the request), and a debug log line.
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("http: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				if !sw.wrote {
					writeError(sw, http.StatusInternalServerError, ReasonInternal, "internal error")
				}
			}
			s.log.Debug("http: request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"remote", remoteIP(r), "duration", time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
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
