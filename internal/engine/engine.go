// Package engine connects to the Docker engine the way a long-running daemon must: from the
// standard environment, negotiating the API version, and following the engine when it is upgraded
// or downgraded underneath us instead of failing forever.
package engine

import (
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// Connect returns a client for DOCKER_HOST (DOCKER_TLS_VERIFY and DOCKER_CERT_PATH honoured).
//
// DOCKER_API_VERSION is deliberately not honoured: a pinned version is what broke Watchtower when
// Docker 29 raised its minimum to 1.44. The client negotiates on first use; after that, every
// engine answer carries the engine's current API version (the Api-Version header), and requests
// are sent at min(engine, client maximum) from then on. So when a daemon is upgraded or downgraded
// while we run, at most one request fails with "client version … is too old/new" and the next one
// speaks the new version. The client's own negotiation only ever downgrades, and only once.
func Connect(extra ...client.Opt) (*client.Client, error) {
	v := &versionTracker{}
	opts := []client.Opt{
		client.WithHostFromEnv(),
		client.WithTLSClientConfigFromEnv(),
		client.WithHTTPRequestHook(v.rewrite),
		client.WithHTTPResponseHook(v.observe),
	}
	return client.New(append(opts, extra...)...)
}

// versionTracker remembers the API version the engine last announced.
type versionTracker struct {
	engine atomic.Value // string: min(engine's Api-Version, client.MaxAPIVersion), "" until known
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// observe records the engine's API version from any response.
func (v *versionTracker) observe(resp *http.Response) {
	ver := resp.Header.Get("Api-Version")
	if ver == "" {
		return
	}
	if versions.GreaterThan(ver, client.MaxAPIVersion) {
		ver = client.MaxAPIVersion
	}
	if versions.LessThan(ver, client.MinAPIVersion) {
		return // the client cannot speak it at all; its own error says so
	}
	v.engine.Store(ver)
}

// rewrite sends the request at the version the engine last announced.
func (v *versionTracker) rewrite(req *http.Request) error {
	ver, _ := v.engine.Load().(string)
	if ver == "" || !versionPrefix.MatchString(req.URL.Path) {
		return nil
	}
	rest := req.URL.Path[strings.Index(req.URL.Path[1:], "/")+1:]
	req.URL.Path = "/v" + ver + rest
	if req.URL.RawPath != "" {
		req.URL.RawPath = ""
	}
	return nil
}
