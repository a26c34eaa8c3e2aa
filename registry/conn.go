package registry

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/watcher-dev/watcher/failure"
)

// Token lifetimes: the distribution token spec says to assume 60s when expires_in is missing. A
// token is renewed this long before it runs out (or, for a token that lives less than twice as
// long, half-way through its life), so a lookup never spends a request on a 401.
const (
	defaultTokenLifetime = 60 * time.Second
	tokenRenewMargin     = 10 * time.Second
)

// maxScopesPerToken caps the repositories one token request asks for: each is a `scope=` query
// parameter of about 40-80 bytes, and 50 keep the URL well under the 8 KiB many servers and
// proxies allow for a request line.
const maxScopesPerToken = 50

// conns keeps what it costs requests to learn: each registry's auth challenge (one ping per
// registry) and an authenticated transport per repository, built for many repositories at once
// (one token per registry, not per repository).
//
// go-containerregistry's remote.Head/remote.Get build a new authenticated transport on every
// call (ping + token + request); building it once here and sending our own requests through it
// makes 40 lookups in one repository cost one token, in this Check and the ones after it. And
// when Check is about to look up several repositories of one registry, the first lookup asks the
// token endpoint once for all their pull scopes (the token spec allows repeated `scope=`; a
// registry grants what the credentials allow and leaves out the rest), and the transport with
// that token serves every one of them: 40 repositories cost one token request, not 40. Tag
// listing (for semver policies) needs the same pull scope and goes through the same transport.
//
// A shared token may lack a repository the registry did not grant: its requests are refused
// (401/403) while the others' succeed. Checker.authed then asks for a token of that repository's
// own and tries once more, so a refusal is that repository's alone. A token endpoint that refuses
// a whole request because of one scope it denies is answered the same way: every repository of
// that request asks for its own token, and those it refuses alone are asked for alone from then
// on (c.alone), out of the others' way.
type conns struct {
	base http.RoundTripper // the meter
	keys authn.Keychain

	mu    sync.Mutex
	pings map[string]*flight[*transport.Challenge] // registry host ->
	repos map[string]*flight[*repoConn]            // repository name -> (many may share one *repoConn)
	alone map[string]bool                          // repository name -> its token is asked for by itself
}

// repoConn is an authenticated transport for the pull scope of one or more repositories of a
// registry.
type repoConn struct {
	rt      http.RoundTripper
	renewAt time.Time // zero: no token (anonymous or basic auth), never renewed
	scopes  int       // repositories the token was asked for; 0 without a token
}

// fresh reports whether the transport's token (if any) is good for a lookup starting at now.
func (rc *repoConn) fresh(now time.Time) bool {
	return rc.renewAt.IsZero() || now.Before(rc.renewAt)
}

func newConns(base http.RoundTripper, keys authn.Keychain) *conns {
	return &conns{
		base:  base,
		keys:  keys,
		pings: map[string]*flight[*transport.Challenge]{},
		repos: map[string]*flight[*repoConn]{},
		alone: map[string]bool{},
	}
}

// batchRefusedError: the token endpoint refused a request for several repositories. Nothing is
// known about any one of them yet; each asks for its own token next.
type batchRefusedError struct{ err error }

func (e *batchRefusedError) Error() string { return e.err.Error() }
func (e *batchRefusedError) Unwrap() error { return e.err }

// claim is one repository a build is for, and the flight its transport is delivered through.
type claim struct {
	repo name.Repository
	key  string // repo.Name()
	f    *flight[*repoConn]
}

// transport returns an authenticated transport for repo, building it (ping, credentials, token)
// at most once however many lookups ask at the same time. batch lists the repositories of repo's
// registry the caller's Check is about to look up: a build for repo takes in those that have no
// usable transport yet (up to maxScopesPerToken), so they share one token request. A nil batch
// builds for repo alone.
func (c *conns) transport(ctx context.Context, repo name.Repository, batch []name.Repository) (*repoConn, error) {
	key := repo.Name()
	for {
		now := time.Now()
		c.mu.Lock()
		f := c.repos[key]
		mine := false
		if f == nil || !usable(f, now) {
			claims := c.claim(repo, batch, now)
			c.mu.Unlock()
			c.build(ctx, repo.Registry, claims)
			f, mine = claims[0].f, true
		} else {
			c.mu.Unlock()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var br *batchRefusedError
		switch {
		case f.err == nil && (mine || f.val.fresh(time.Now())):
			return f.val, nil
		case f.err == nil:
			continue // token about to expire: the next turn claims a fresh one
		case errors.As(f.err, &br):
			continue // repo is now in c.alone: the next turn asks for its token alone
		case !mine && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)):
			continue // the builder ran out of its own time, not ours
		}
		return nil, f.err
	}
}

// usable reports whether f is being built or holds a transport good for a lookup starting at
// now. Failed flights are removed from the map when they fail, so a finished one has a value.
func usable(f *flight[*repoConn], now time.Time) bool {
	select {
	case <-f.done:
		return f.err == nil && f.val.fresh(now)
	default:
		return true
	}
}

// claim installs new flights for repo and for the repositories of batch on repo's registry that
// have no usable one and are not asked for alone, at most maxScopesPerToken in all, repo first.
// c.mu is held.
func (c *conns) claim(repo name.Repository, batch []name.Repository, now time.Time) []claim {
	key := repo.Name()
	claims := []claim{{repo: repo, key: key, f: &flight[*repoConn]{done: make(chan struct{})}}}
	c.repos[key] = claims[0].f
	if c.alone[key] {
		return claims
	}
	host := repo.RegistryStr()
	for _, r := range batch {
		if len(claims) == maxScopesPerToken {
			break
		}
		k := r.Name()
		if k == key || c.alone[k] || r.RegistryStr() != host {
			continue
		}
		if f := c.repos[k]; f != nil && usable(f, now) {
			continue
		}
		cl := claim{repo: r, key: k, f: &flight[*repoConn]{done: make(chan struct{})}}
		c.repos[k] = cl.f
		claims = append(claims, cl)
	}
	return claims
}

// build makes one transport for the claimed repositories and delivers it (or the failure) to
// every claim. A token endpoint that refuses a request for several repositories makes each of
// them ask alone (batchRefusedError); a repository granted a token of its own is batched again.
func (c *conns) build(ctx context.Context, reg name.Registry, claims []claim) {
	rc, err := c.connect(ctx, reg, claims)
	var te *transport.Error
	refused := err != nil && len(claims) > 1 && errors.As(err, &te) && classifyStatus(te).reason == failure.Unauthorized
	if refused {
		err = &batchRefusedError{err: err}
	}
	c.mu.Lock()
	for _, cl := range claims {
		cl.f.val, cl.f.err = rc, err
		switch {
		case refused:
			c.alone[cl.key] = true
		case err == nil && rc.scopes == 1:
			delete(c.alone, cl.key)
		}
		if err != nil && c.repos[cl.key] == cl.f {
			delete(c.repos, cl.key) // failures are not kept: the next caller builds again
		}
	}
	c.mu.Unlock()
	for _, cl := range claims {
		close(cl.f.done)
	}
}

// connect pings the registry (once per registry), resolves the credentials (per registry: the
// claimed repositories share a token, so they share the credentials it is asked with) and asks
// for one token covering the claimed repositories' pull scopes.
func (c *conns) connect(ctx context.Context, reg name.Registry, claims []claim) (*repoConn, error) {
	pr, err := join(ctx, &c.mu, c.pings, reg.RegistryStr(), func(ctx context.Context) (*transport.Challenge, error) {
		pr, err := transport.Ping(ctx, reg, c.base)
		if err != nil {
			return nil, err
		}
		// The meter decides the scheme by host; the token exchange must agree, or it refuses an
		// http token realm.
		pr.Insecure = isLoopback(reg.RegistryStr())
		return pr, nil
	})
	if err != nil {
		return nil, err
	}
	auth, err := authn.Resolve(ctx, c.keys, claims[0].repo)
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
	scopes := make([]string, len(claims))
	for i, cl := range claims {
		scopes[i] = cl.repo.Scope(transport.PullScope) // repository:NAME:pull
	}
	start := time.Now()
	tok, err := transport.Exchange(ctx, reg, auth, c.base, scopes, pr)
	if err != nil {
		return nil, err
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken // some token servers only send access_token
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = defaultTokenLifetime
	}
	margin := min(tokenRenewMargin, life/2)
	return &repoConn{
		rt:      &bearer{next: c.base, host: reg.RegistryStr(), token: tok.Token},
		renewAt: start.Add(life - margin),
		scopes:  len(claims),
	}, nil
}

// bearer sends a token with every request to its registry, and only there: a redirect elsewhere
// (blob storage) goes without it. Unlike go-containerregistry's bearer transport it never fetches
// a token by itself when a request is refused: that transport would replace a token shared by
// many repositories with one for the repository that was refused (the others' next requests then
// refused in turn), and hide the refusal from Checker.authed, which asks for a token of that
// repository's own instead.
type bearer struct {
	next  http.RoundTripper
	host  string // registry host as go-containerregistry names it, e.g. index.docker.io, 127.0.0.1:5000
	token string
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if sameHost(req.URL, b.host) {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(req)
}

// sameHost reports whether u points at host, u's scheme's default port written or not.
func sameHost(u *url.URL, host string) bool {
	port := ":443"
	if u.Scheme == "http" {
		port = ":80"
	}
	canon := func(h string) string { return strings.TrimSuffix(strings.ToLower(h), port) }
	return canon(u.Host) == canon(host)
}

// forgetRepo drops a repository's transport (credentials that stopped working: the next lookup
// resolves credentials again and asks for a new token). rc, if not nil, is the transport the
// caller saw: one built since then is left alone. Other repositories sharing the transport keep it.
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

// refusedShared is forgetRepo for a repository the registry refused with a token shared with
// others: its next token is asked for by itself (until one is granted).
func (c *conns) refusedShared(key string, rc *repoConn) {
	c.mu.Lock()
	c.alone[key] = true
	c.mu.Unlock()
	c.forgetRepo(key, rc)
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
