package registry

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/failure"
)

// Options configures a Checker. The zero value is usable: every field has a default.
type Options struct {
	Concurrency int                         // overall in-flight lookups; default 16
	PerHost     int                         // in-flight lookups per registry host; default 8
	Timeout     time.Duration               // per lookup, retries included; default 15s
	Keychain    authn.Keychain              // default authn.DefaultKeychain
	Auth        map[string]authn.AuthConfig // per-registry credentials (host -> creds), tried before Keychain
	Retries     int                         // extra attempts after a failure.RegistryUnavailable failure; default 3, negative = none
	Backoff     time.Duration               // wait before the first retry, doubled for each next one; default 250ms
	// RateLimitBackoff is how long a host is left alone after a 429 that names no time (no
	// Retry-After, RateLimit-Reset or exhausted RateLimit-Remaining window); default 1m.
	RateLimitBackoff time.Duration
	OnRequest        func(host, method string, code int) // called for every HTTP request sent (code 0 = no response)
	Transport        http.RoundTripper                   // default: a clone of http.DefaultTransport
	Now              func() time.Time                    // clock for rate-limit deadlines; default time.Now
}

const (
	defaultConcurrency      = 16
	defaultPerHost          = 8
	defaultTimeout          = 15 * time.Second
	defaultRetries          = 3
	defaultBackoff          = 250 * time.Millisecond
	defaultRateLimitBackoff = time.Minute
)

// Query is one container's image as the updater sees it.
type Query struct {
	Ref         string      // image reference as the container names it (Config.Image), e.g. "nginx", "127.0.0.1:5000/app:v1"
	Platform    v1.Platform // the container's platform; empty OS/Architecture mean linux/GOARCH
	RepoDigests []string    // local image's RepoDigests, any repository ("nginx@sha256:…"); only the queried repository's count
	ImageID     string      // local image ID (sha256:…); in the classic store this is the config digest
	// ManifestDigest is the local platform manifest's digest when the engine reports it
	// (containerd image store, ContainerInspect.ImageManifestDescriptor, API >= 1.48). Optional.
	ManifestDigest string
	// Resolve asks only for the tag's current digest: nothing local pins one (a Swarm service
	// whose spec names no digest), so the answer is always an update, to that digest.
	Resolve bool
}

// Result answers one Query. Queries that share a reference share the lookup behind their results,
// so Requests and Duration describe that shared lookup.
type Result struct {
	Ref             string         // as queried
	Repo            string         // normalised repository, e.g. index.docker.io/library/nginx
	Digest          string         // remote digest of the tag (index or manifest), "sha256:…"
	PlatformDigest  string         // manifest digest for Query.Platform when the tag is an index and it was fetched
	LocalDigest     string         // the local RepoDigest for Repo that matched (or, without a match, the first one)
	UpdateAvailable bool           // remote moved AND (for an index) this platform's image moved
	Reason          failure.Reason // "" on success
	Message         string         // human text for failures and skips; names the registry host and status
	RetryAt         time.Time      // failure.RateLimited: when the host may be asked again
	Requests        int            // HTTP requests the lookup made (ping, token, HEAD, GET)
	Duration        time.Duration  // wall time of the lookup, waiting for a slot included
}

// Err returns nil when the lookup succeeded, otherwise an *Error carrying the reason.
func (r Result) Err() error {
	if r.Reason == "" {
		return nil
	}
	return &Error{Ref: r.Ref, Reason: r.Reason, Message: r.Message, RetryAt: r.RetryAt}
}

// Error is a failed or skipped lookup as an error value.
type Error struct {
	Ref     string
	Reason  failure.Reason
	Message string
	RetryAt time.Time
}

var _ error = (*Error)(nil)

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Ref, e.Reason, e.Message) }

// ReasonOf returns the reason and message of a lookup error: an *Error's own, else
// RegistryUnavailable with the error's text (a failure the registry was never asked about).
func ReasonOf(err error) (failure.Reason, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, e.Message
	}
	return failure.RegistryUnavailable, err.Error()
}

// Checker looks up references. Between calls it keeps authenticated transports (and so tokens:
// one per registry, shared by the repositories a Check looked up there), rate-limit deadlines per
// host, and what manifests fetched by digest said; it is safe for concurrent use.
type Checker struct {
	o      Options
	now    func() time.Time
	keys   authn.Keychain
	conns  *conns
	limits *hostLimits
	cache  *digestCache
	slots  chan struct{} // overall concurrency

	hostMu    sync.Mutex
	hostSlots map[string]chan struct{}
}

// New returns a Checker. It makes no network calls.
func New(o Options) *Checker {
	if o.Concurrency <= 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.PerHost <= 0 {
		o.PerHost = defaultPerHost
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = defaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = defaultBackoff
	}
	if o.RateLimitBackoff <= 0 {
		o.RateLimitBackoff = defaultRateLimitBackoff
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host; every lookup beyond that would dial anew.
		t.MaxIdleConnsPerHost = o.PerHost
		o.Transport = t
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Checker{
		o:         o,
		now:       o.Now,
		keys:      newConfigKeychain(o.Auth, o.Keychain),
		limits:    &hostLimits{until: map[string]time.Time{}},
		cache:     newDigestCache(),
		slots:     make(chan struct{}, o.Concurrency),
		hostSlots: map[string]chan struct{}{},
	}
	c.conns = newConns(&meter{next: o.Transport, limits: c.limits, now: o.Now, onRequest: o.OnRequest, backoff: o.RateLimitBackoff}, c.keys)
	return c
}
