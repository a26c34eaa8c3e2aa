package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Token lifetimes: the distribution token spec says to assume 60s when expires_in is missing. A
// token is renewed this long before it runs out, so a lookup never spends a request on a 401.
const (
	defaultTokenLifetime = 60 * time.Second
	tokenRenewMargin     = 10 * time.Second
)

// conns keeps what it costs requests to learn: each registry's auth challenge (one ping per
// registry) and an authenticated transport per repository (one token per registry and scope).
//
// go-containerregistry's remote.Head/remote.Get build a new authenticated transport on every
// call (ping + token + request); building it once here and sending our own requests through it
// makes 40 lookups in one repository cost one token, in this Check and the ones after it. Tag
// listing (for semver policies) needs the same pull scope and will go through the same transport.
type conns struct {
	base http.RoundTripper // the meter
	keys authn.Keychain

	mu    sync.Mutex
	pings map[string]*flight[*transport.Challenge] // registry host ->
	repos map[string]*flight[*repoConn]            // repository name ->
}

// repoConn is an authenticated transport for one repository's pull scope.
type repoConn struct {
	rt      http.RoundTripper
	expires time.Time // zero: no token (anonymous or basic auth)
}

func newConns(base http.RoundTripper, keys authn.Keychain) *conns {
	return &conns{
		base:  base,
		keys:  keys,
		pings: map[string]*flight[*transport.Challenge]{},
		repos: map[string]*flight[*repoConn]{},
	}
}

// transport returns the authenticated transport for repo, building it (ping, credentials, token)
// at most once however many lookups ask at the same time.
func (c *conns) transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	key := repo.Name()
	for {
		rc, err := join(ctx, &c.mu, c.repos, key, func(ctx context.Context) (*repoConn, error) {
			return c.build(ctx, repo)
		})
		if err != nil {
			return nil, err
		}
		if rc.expires.IsZero() || time.Now().Before(rc.expires.Add(-tokenRenewMargin)) {
			return rc.rt, nil
		}
		c.forgetRepo(key, rc) // token about to expire: fetch a fresh one
	}
}

func (c *conns) build(ctx context.Context, repo name.Repository) (*repoConn, error) {
	reg := repo.Registry
	pr, err := join(ctx, &c.mu, c.pings, reg.RegistryStr(), func(ctx context.Context) (*transport.Challenge, error) {
		pr, err := transport.Ping(ctx, reg, c.base)
		if err != nil {
			return nil, err
		}
		// The meter decides the scheme by host; the bearer transport must agree, or it refuses an
		// http token realm (and would not recognise the registry's own URLs).
		pr.Insecure = isLoopback(reg.RegistryStr())
		return pr, nil
	})
	if err != nil {
		return nil, err
	}
	auth, err := authn.Resolve(ctx, c.keys, repo)
	if err != nil {
		return nil, &credentialError{host: reg.RegistryStr(), err: err}
	}
	if !strings.EqualFold(pr.Scheme, "bearer") {
		// No auth (ping answered 200) or Basic: credentials, if any, go along with every request.
		rt, err := transport.FromToken(reg, auth, c.base, pr, nil)
		if err != nil {
			return nil, err
		}
		return &repoConn{rt: rt}, nil
	}
	start := time.Now()
	tok, err := transport.Exchange(ctx, reg, auth, c.base, []string{repo.Scope(transport.PullScope)}, pr)
	if err != nil {
		return nil, err
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken // some token servers only send access_token
	}
	rt, err := transport.FromToken(reg, auth, c.base, pr, tok)
	if err != nil {
		return nil, err
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = defaultTokenLifetime
	}
	return &repoConn{rt: rt, expires: start.Add(life)}, nil
}

// forgetRepo drops a repository's transport (expired token, or credentials that stopped working:
// the next lookup resolves credentials again and asks for a new token).
func (c *conns) forgetRepo(key string, rc *repoConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.repos[key]; ok && (rc == nil || f.val == rc) {
		select {
		case <-f.done:
			delete(c.repos, key)
		default: // still being built by someone else: leave it
		}
	}
}

// forgetRegistry drops the cached challenge of a registry, so the next build pings again.
func (c *conns) forgetRegistry(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.pings[host]; ok {
		select {
		case <-f.done:
			delete(c.pings, host)
		default:
		}
	}
}

// flight is one value being computed (or computed) for a key; done is closed when val/err are set.
type flight[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// join returns m[key]'s value, computing it with build if no one has or is; concurrent callers
// for one key wait for the one computation. Failures are not kept: the next caller builds again.
// A waiter whose builder ran out of its own time builds for itself rather than inheriting that.
func join[T any](ctx context.Context, mu *sync.Mutex, m map[string]*flight[T], key string, build func(context.Context) (T, error)) (T, error) {
	var zero T
	for {
		mu.Lock()
		f, ok := m[key]
		if !ok {
			f = &flight[T]{done: make(chan struct{})}
			m[key] = f
			mu.Unlock()
			f.val, f.err = build(ctx)
			if f.err != nil {
				mu.Lock()
				if m[key] == f {
					delete(m, key)
				}
				mu.Unlock()
			}
			close(f.done)
			return f.val, f.err
		}
		mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if f.err == nil {
			return f.val, nil
		}
		if ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			continue
		}
		return zero, f.err
	}
}
