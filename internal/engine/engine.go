// Package engine connects to Docker engines the way a long-running daemon must: from the standard
// environment or a hosts entry (unix socket, or TCP with TLS), negotiating the API version per
// engine, following an engine when it is upgraded or downgraded underneath us instead of failing
// forever, and telling Podman's Docker-compatible API apart (podman.go).
package engine

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// Client is a connection to one engine: the moby client, plus what the engine's answers said
// about it. It is what the updater and lifecycle use (their Engine and Docker interfaces).
type Client struct {
	*client.Client
	v *versionTracker
}

// Target says where an engine listens and how to reach it (a hosts entry). The zero Target is
// the engine of DOCKER_HOST.
type Target struct {
	Host     string // unix:///path or tcp://host:port; "" = DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)
	TLS      bool   // speak TLS (tcp:// only)
	CAFile   string // PEM CA the engine's certificate must chain to; "" = the system's roots
	CertFile string // PEM client certificate ("" = none)
	KeyFile  string // its key
	Verify   bool   // verify the engine's certificate
}

// ConnectTo returns a client for the engine t names; the zero Target is Connect's.
func ConnectTo(t Target, extra ...client.Opt) (*Client, error) {
	if t.Host == "" {
		return Connect(extra...)
	}
	var opts []client.Opt
	if t.TLS {
		cfg, err := tlsconfig.Client(tlsconfig.Options{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			InsecureSkipVerify: !t.Verify, ExclusiveRootPools: t.CAFile != ""})
		if err != nil {
			return nil, fmt.Errorf("TLS for %s: %w", t.Host, err)
		}
		// The HTTP client first: WithHost then sets up its transport for the host's protocol.
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, CheckRedirect: client.CheckRedirect}))
	}
	opts = append(opts, client.WithHost(t.Host))
	return connect(opts, extra)
}

// Connect returns a client for DOCKER_HOST (DOCKER_TLS_VERIFY and DOCKER_CERT_PATH honoured).
//
// DOCKER_API_VERSION is deliberately not honoured: a pinned version is what broke Watchtower when
// Docker 29 raised its minimum to 1.44. The client negotiates on first use; after that, every
// engine answer carries the engine's current API version (the Api-Version header), and requests
// are sent at min(engine, client maximum) from then on. So when a daemon is upgraded or downgraded
// while we run, at most one request fails with "client version … is too old/new" and the next one
// speaks the new version. The client's own negotiation only ever downgrades, and only once.
func Connect(extra ...client.Opt) (*Client, error) {
	return connect([]client.Opt{client.WithHostFromEnv(), client.WithTLSClientConfigFromEnv()}, extra)
}

func connect(opts, extra []client.Opt) (*Client, error) {
	v := &versionTracker{}
	opts = append(opts, client.WithHTTPRequestHook(v.rewrite), client.WithHTTPResponseHook(v.observe))
	cli, err := client.New(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	return &Client{Client: cli, v: v}, nil
}

// versionTracker remembers the API version the engine last announced, and whether it is Podman.
type versionTracker struct {
	engine atomic.Value // string: min(engine's Api-Version, client.MaxAPIVersion), "" until known
	podman atomic.Bool  // the engine's answers carry Libpod-Api-Version
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// observe records the engine's API version from any response, and whether Podman answered.
func (v *versionTracker) observe(resp *http.Response) {
	if resp.Header.Get("Api-Version") != "" {
		v.podman.Store(resp.Header.Get("Libpod-Api-Version") != "")
	}
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
