package testenv

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// Registry is go-containerregistry's in-process registry on 127.0.0.1 behind a fault-injecting,
// request-counting handler. The Docker engine treats 127.0.0.0/8 as insecure, so it pulls from it
// over plain HTTP just like the watcher's registry client does.
type Registry struct {
	Host string // "127.0.0.1:PORT", the registry part of every reference pushed here

	srv   *httptest.Server
	inner http.Handler

	mu       sync.Mutex
	faults   []*Fault
	requests []Request
	auth     *tokenAuth
	pageSize int
}

// Request is one request the registry saw, in arrival order.
type Request struct {
	Method string
	Path   string // URL path, e.g. /v2/app/manifests/latest
	Query  string
	Status int
	Auth   string // the Authorization header's scheme ("Bearer", "Basic" or "")
}

// Fault tells the registry to misbehave for matching requests.
type Fault struct {
	Method string // "" matches any method
	Path   string // substring of the URL path; "" matches any

	Status   int               // answer with this status (and an OCI error body if Code is set)
	Code     string            // OCI error code: MANIFEST_UNKNOWN, NAME_UNKNOWN, UNAUTHORIZED, DENIED, TOOMANYREQUESTS ...
	Header   map[string]string // extra response headers, e.g. Retry-After
	Delay    time.Duration     // wait this long before answering (or before the status above)
	Drop     bool              // close the connection without an answer
	NoDigest bool              // strip Docker-Content-Digest from an otherwise normal answer
	Times    int               // apply to the first Times matching requests; 0 = every one

	hits int
}

// NewRegistry starts a registry for the test and stops it when the test ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{inner: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: registry listen: %v", err)
	}
	r.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: r}}
	r.srv.Start()
	r.Host = l.Addr().String()
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the registry's base URL, http://127.0.0.1:PORT.
func (r *Registry) URL() string { return "http://" + r.Host }

// Ref names repo:tag in this registry.
func (r *Registry) Ref(repo, tag string) string { return r.Host + "/" + repo + ":" + tag }

// AddFault installs f (faults are tried in the order added; the first match wins). The returned
// function removes it again.
func (r *Registry) AddFault(f Fault) (remove func()) {
	fp := &f
	r.mu.Lock()
	r.faults = append(r.faults, fp)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, x := range r.faults {
			if x == fp {
				r.faults = append(r.faults[:i], r.faults[i+1:]...)
				return
			}
		}
	}
}

// ClearFaults removes every fault.
func (r *Registry) ClearFaults() {
	r.mu.Lock()
	r.faults = nil
	r.mu.Unlock()
}

// RequireToken makes the registry demand a bearer token, as Docker Hub and most registries do:
// /v2/ answers 401 with a Bearer challenge whose realm is this registry's /token endpoint, which
// grants tokens for the given basic credentials (or to anyone when user is ""). Token requests are
// counted like any other (path /token).
func (r *Registry) RequireToken(user, pass string) {
	r.mu.Lock()
	r.auth = &tokenAuth{user: user, pass: pass, tokens: map[string]bool{}}
	r.mu.Unlock()
}

// PageSize makes tag listings paginated with at most n tags a page and a Link header to the
// next, as the distribution spec describes (0 turns it off).
func (r *Registry) PageSize(n int) {
	r.mu.Lock()
	r.pageSize = n
	r.mu.Unlock()
}

// Requests returns a copy of every request seen so far.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// ResetRequests forgets the requests seen so far.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// Count is the number of requests seen with this method ("" = any) whose path contains pathPart.
func (r *Registry) Count(method, pathPart string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.requests {
		if (method == "" || q.Method == method) && strings.Contains(q.Path, pathPart) {
			n++
		}
	}
	return n
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	scheme, _, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	defer func() {
		r.mu.Lock()
		r.requests = append(r.requests, Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Status: rec.status, Auth: scheme})
		r.mu.Unlock()
	}()

	r.mu.Lock()
	var fault *Fault
	for _, f := range r.faults {
		if (f.Method == "" || f.Method == req.Method) && strings.Contains(req.URL.Path, f.Path) && (f.Times == 0 || f.hits < f.Times) {
			f.hits++
			cp := *f
			fault = &cp
			break
		}
	}
	auth := r.auth
	pageSize := r.pageSize
	r.mu.Unlock()

	if fault != nil {
		if fault.Delay > 0 {
			select {
			case <-time.After(fault.Delay):
			case <-req.Context().Done():
				rec.status = 499
				return
			}
		}
		if fault.Drop {
			rec.status = 0
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		for k, v := range fault.Header {
			w.Header().Set(k, v)
		}
		if fault.Status != 0 {
			writeRegistryError(rec, fault.Status, fault.Code)
			return
		}
		if fault.NoDigest {
			rec.stripDigest = true
		}
	}

	if auth != nil && !auth.serve(rec, req, r.URL()) {
		return
	}
	if pageSize > 0 && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/tags/list") {
		servePagedTags(rec, req, r.inner, pageSize)
		return
	}
	r.inner.ServeHTTP(rec, req)
}

func writeRegistryError(w http.ResponseWriter, status int, code string) {
	if code == "" {
		w.WriteHeader(status)
		return
	}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": strings.ToLower(code)}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// servePagedTags asks the inner registry for at most n tags after `last` and adds the Link header
// to the next page, which go-containerregistry's in-process registry does not do by itself.
func servePagedTags(w http.ResponseWriter, req *http.Request, inner http.Handler, n int) {
	q := req.URL.Query()
	if want := q.Get("n"); want == "" {
		q.Set("n", fmt.Sprint(n))
	} else {
		var asked int
		_, _ = fmt.Sscan(want, &asked)
		if asked <= 0 || asked > n {
			q.Set("n", fmt.Sprint(n))
		}
	}
	sub := req.Clone(req.Context())
	sub.URL.RawQuery = q.Encode()
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, sub)
	var body struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &body) == nil && len(body.Tags) > 0 {
		size := 0
		_, _ = fmt.Sscan(q.Get("n"), &size)
		if len(body.Tags) == size {
			next := req.URL.Query()
			next.Set("n", fmt.Sprint(size))
			next.Set("last", body.Tags[len(body.Tags)-1])
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, req.URL.Path, next.Encode()))
		}
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

type tokenAuth struct {
	user, pass string
	mu         sync.Mutex
	tokens     map[string]bool
	issued     int
}

// serve answers token requests and checks bearer tokens; it reports whether the request may go on.
func (a *tokenAuth) serve(w http.ResponseWriter, req *http.Request, base string) bool {
	if req.URL.Path == "/token" {
		if a.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(a.pass)) != 1 {
				writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED")
				return false
			}
		}
		a.mu.Lock()
		a.issued++
		tok := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("token-%d-%s", a.issued, req.URL.Query().Get("scope"))))
		a.tokens[tok] = true
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
		return false
	}
	scheme, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	a.mu.Lock()
	ok := scheme == "Bearer" && a.tokens[tok]
	a.mu.Unlock()
	if ok {
		return true
	}
	challenge := fmt.Sprintf(`Bearer realm="%s/token",service="testenv"`, base)
	if parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/"); len(parts) == 2 {
		challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, parts[0])
	} else if parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/"); len(parts) == 2 {
		challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, parts[0])
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED")
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	stripDigest bool
	wrote       bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.wrote {
		return
	}
	s.wrote = true
	s.status = code
	if s.stripDigest {
		s.Header().Del("Docker-Content-Digest")
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}
