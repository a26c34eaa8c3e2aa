package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/watcher-dev/watcher/failure"
)

// acceptManifests is the Accept header of every manifest request: Docker v2 manifest and manifest
// list, OCI manifest and index. Without the list types a registry would pick one platform's
// manifest for us and report its digest instead of the tag's.
var acceptManifests = strings.Join([]string{
	string(types.DockerManifestSchema2),
	string(types.DockerManifestList),
	string(types.OCIManifestSchema1),
	string(types.OCIImageIndex),
}, ", ")

const (
	maxManifestSize = 4 << 20 // distribution's own limit for a manifest
	userAgent       = "watcher"
)

// prepared is a query after the checks that need no network; ref is nil when it failed to parse.
type prepared struct {
	ref   name.Reference
	local []string // local digests for ref's repository
}

// parsedRef is a reference parsed once for every query naming it.
type parsedRef struct {
	ref  name.Reference
	key  string // ref.Name(): the normalised reference, a lookup's key
	repo string // ref.Context().Name()
	err  error
}

// parsedDigest is a RepoDigest parsed once for every query holding it; ok is false when it does
// not parse.
type parsedDigest struct {
	repo   string // normalised repository
	digest string // "sha256:…"
	ok     bool
}

// parser parses references and RepoDigests for one Check, each distinct string once: 200
// containers of 40 images are 40 parses, not 200 (parsing is most of what Check costs besides
// the network).
type parser struct {
	refs    map[string]*parsedRef
	digests map[string]parsedDigest
}

func newParser() *parser {
	return &parser{refs: map[string]*parsedRef{}, digests: map[string]parsedDigest{}}
}

func (p *parser) ref(s string) *parsedRef {
	if r, ok := p.refs[s]; ok {
		return r
	}
	r := &parsedRef{}
	if r.ref, r.err = parseRef(s); r.err == nil {
		r.key, r.repo = r.ref.Name(), r.ref.Context().Name()
	}
	p.refs[s] = r
	return r
}

// localDigests is the package's localDigests with every RepoDigest parsed once per Check.
func (p *parser) localDigests(repoDigests []string, repo string) []string {
	var out []string
	for _, rd := range repoDigests {
		d, ok := p.digests[rd]
		if !ok {
			if nd, err := name.NewDigest(rd, name.WeakValidation); err == nil {
				d = parsedDigest{repo: nd.Context().Name(), digest: nd.DigestStr(), ok: true}
			}
			p.digests[rd] = d
		}
		if d.ok && d.repo == repo {
			out = append(out, d.digest)
		}
	}
	return out
}

// job is one lookup: a distinct normalised reference and the queries it answers.
type job struct {
	ref     name.Reference
	queries []int
	batch   []name.Repository // the repositories this Check looks up on ref's registry (one token for all)
}

// remoteTag is what the registry said about a tag during one lookup.
type remoteTag struct {
	digest    v1.Hash
	digestStr string // digest.String(), made once for all the lookup's queries
	mediaType types.MediaType
	index     *v1.IndexManifest // fetched at most once, when a query needs it
	indexErr  error
}

// Check looks up every query and returns one Result per query, in order. Queries naming the same
// normalised reference ("nginx" == "docker.io/library/nginx:latest") share one lookup: one HEAD,
// and at most one GET of the index, whatever their platforms and local images. Queries that need no
// lookup (unparseable, digest-pinned, locally built) are answered failure.InvalidReference without a
// request. The lookups of one registry share one bearer token, asked for once with all their
// repositories' scopes (at most maxScopesPerToken a request) and kept for later Checks until it
// is due for renewal. Check never fails as a whole: each Result carries its own Reason.
func (c *Checker) Check(ctx context.Context, qs []Query) []Result {
	out := make([]Result, len(qs))
	prep := make([]prepared, len(qs))
	jobs := map[string]*job{}
	var order []*job
	repos := map[string]bool{}                // repository names among the jobs
	batches := map[string][]name.Repository{} // registry host -> its repositories among the jobs
	ps := newParser()
	for i, q := range qs {
		out[i].Ref = q.Ref
		pr, p, f := ps.prepare(q)
		prep[i] = p
		if p.ref != nil {
			out[i].Repo = pr.repo
		}
		if f != nil {
			out[i].Reason, out[i].Message = f.reason, f.msg
			continue
		}
		j := jobs[pr.key]
		if j == nil {
			j = &job{ref: p.ref}
			jobs[pr.key] = j
			order = append(order, j)
			repo := p.ref.Context()
			if !repos[pr.repo] {
				repos[pr.repo] = true
				batches[repo.RegistryStr()] = append(batches[repo.RegistryStr()], repo)
			}
		}
		j.queries = append(j.queries, i)
	}
	for _, j := range order {
		j.batch = batches[j.ref.Context().RegistryStr()]
	}
	var wg sync.WaitGroup
	for _, j := range order {
		wg.Go(func() { c.lookup(ctx, j, qs, prep, out) })
	}
	wg.Wait()
	return out
}

// prepare parses a query's reference and finds its local digests; a non-nil failure means there
// is nothing to ask a registry.
func (ps *parser) prepare(q Query) (*parsedRef, prepared, *classified) {
	if strings.TrimSpace(q.Ref) == "" {
		return nil, prepared{}, &classified{reason: failure.InvalidReference, msg: "empty image reference"}
	}
	pr := ps.ref(q.Ref)
	if pr.err != nil {
		return pr, prepared{}, &classified{reason: failure.InvalidReference, msg: fmt.Sprintf("cannot parse image reference %q: %v", q.Ref, pr.err)}
	}
	p := prepared{ref: pr.ref}
	if d, ok := pr.ref.(name.Digest); ok {
		return pr, p, &classified{reason: failure.InvalidReference, msg: fmt.Sprintf("pinned by digest %s: the reference cannot move, so there is no update to look for", d.DigestStr())}
	}
	p.local = ps.localDigests(q.RepoDigests, pr.repo)
	if len(p.local) == 0 && !q.Resolve {
		if len(q.RepoDigests) == 0 {
			return pr, p, &classified{reason: failure.InvalidReference, msg: "the local image has no RepoDigests (built or loaded locally): there is no registry digest to compare with"}
		}
		return pr, p, &classified{reason: failure.InvalidReference, msg: fmt.Sprintf("the local image has no RepoDigest for %s (only %s): it was not pulled from there, so there is nothing to compare with", pr.repo, strings.Join(q.RepoDigests, ", "))}
	}
	return pr, p, nil
}

// lookup asks the registry about one reference and answers every query of the job.
func (c *Checker) lookup(ctx context.Context, j *job, qs []Query, prep []prepared, out []Result) {
	start := time.Now()
	tr := &trace{}
	repo := j.ref.Context()
	host := repo.RegistryStr()
	defer func() {
		for _, i := range j.queries {
			out[i].Requests = int(tr.requests.Load())
			out[i].Duration = time.Since(start)
		}
	}()
	failAll := func(err error) {
		for _, i := range j.queries {
			c.fail(ctx, repo, tr, err, &out[i])
		}
	}

	// A host inside a 429 back-off is not asked at all, not even for a slot.
	if until, ok := c.limits.blocked(host, c.now()); ok {
		failAll(&rateLimitedError{host: host, until: until})
		return
	}
	release, err := c.acquire(ctx, host)
	if err != nil {
		failAll(err)
		return
	}
	defer release()

	lctx, cancel := context.WithTimeout(withTrace(ctx, tr), c.o.Timeout)
	defer cancel()
	rt, tag, err := c.head(lctx, j.ref, j.batch)
	if err != nil {
		failAll(err)
		return
	}
	for _, i := range j.queries {
		if err := c.decide(lctx, rt, repo, tag, qs[i], prep[i], &out[i]); err != nil {
			c.fail(ctx, repo, tr, err, &out[i])
		}
	}
}

// decide compares the remote tag with one query's local image; an error is a failed GET.
//
// Up to date means the remote digest is among the local RepoDigests of this repository: the
// engine records the digest it pulled (the index digest for a multi-platform tag) there.
//
// When the digest moved and the tag is an index, the move may not concern this container: an index
// changes when any platform is rebuilt or an attestation is added. So we GET the index (by digest,
// once), take the manifest for the container's platform and call it unchanged when
//   - its digest is among the local RepoDigests or is the container's own manifest digest
//     (Query.ManifestDigest, containerd store) — no further request; or
//   - its config digest equals the local image ID — one GET of that manifest. In the classic
//     store the image ID is the config digest, so an equal config means a pull would produce the
//     very image the container runs: replacing it changes nothing.
//
// Both GETs are by digest, so their answers are kept (digestCache) for this and later Check calls:
// a tag whose other platforms moved costs one HEAD a cycle after the first.
//
// Without either proof the platform's image moved and it is an update. A plain manifest (no
// index) whose digest moved is always an update: it has no other platforms to blame.
func (c *Checker) decide(ctx context.Context, rt http.RoundTripper, repo name.Repository, tag *remoteTag, q Query, p prepared, r *Result) error {
	r.Digest = tag.digestStr
	if len(p.local) == 0 { // Query.Resolve: nothing to compare with
		r.UpdateAvailable = true
		return nil
	}
	if i := slices.Index(p.local, r.Digest); i >= 0 {
		// Up to date: the answer is the local image's own string, so the reports the daemon
		// keeps of its last runs hold no copy of it per container and run.
		r.Digest, r.LocalDigest = p.local[i], p.local[i]
		return nil
	}
	r.LocalDigest = p.local[0]
	if !tag.mediaType.IsIndex() {
		r.UpdateAvailable = true
		return nil
	}
	if tag.index == nil && tag.indexErr == nil {
		tag.index, tag.indexErr = c.cache.index(ctx, repo.Name()+"@"+r.Digest, func(ctx context.Context) (*v1.IndexManifest, error) {
			return c.getIndex(ctx, rt, repo, tag.digest)
		})
	}
	if tag.indexErr != nil {
		return tag.indexErr
	}
	want := wantPlatform(q.Platform)
	m, ok := pickManifest(tag.index, want)
	if !ok {
		r.Reason = failure.ManifestUnknown
		r.Message = fmt.Sprintf("registry %s: %s is an index without a manifest for %s: the tag no longer has an image for this platform", repo.RegistryStr(), r.Digest, want.String())
		return nil
	}
	r.PlatformDigest = m.Digest.String()
	if slices.Contains(p.local, r.PlatformDigest) || q.ManifestDigest == r.PlatformDigest {
		r.LocalDigest = r.PlatformDigest
		return nil
	}
	if q.ImageID != "" {
		cfg, err := c.cache.config(ctx, repo.Name()+"@"+r.PlatformDigest, func(ctx context.Context) (v1.Hash, error) {
			return c.getConfigDigest(ctx, rt, repo, m.Digest)
		})
		if err != nil {
			return err
		}
		if cfg.String() == q.ImageID {
			return nil
		}
	}
	r.UpdateAvailable = true
	return nil
}

func newRemoteTag(digest v1.Hash, contentType string) *remoteTag {
	return &remoteTag{digest: digest, digestStr: digest.String(), mediaType: mediaType(contentType)}
}

// head finds the tag's digest with one HEAD. A registry that answers without
// Docker-Content-Digest gets one GET instead — except Docker Hub, where a GET counts as a pull.
// batch is passed on to conns.transport: the repositories whose token the one for ref's
// repository may be asked for with.
func (c *Checker) head(ctx context.Context, ref name.Reference, batch []name.Repository) (http.RoundTripper, *remoteTag, error) {
	repo := ref.Context()
	host := repo.RegistryStr()
	var (
		rt       http.RoundTripper
		tag      *remoteTag
		noDigest bool
	)
	err := c.attempt(ctx, host, func(ctx context.Context) error {
		var err error
		rt, err = c.authed(ctx, repo, batch, func(rt http.RoundTripper) error {
			resp, _, err := c.send(ctx, rt, repo, ref.Identifier(), http.MethodHead)
			if err != nil {
				return err
			}
			if h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest")); err == nil {
				tag = newRemoteTag(h, resp.Header.Get("Content-Type"))
				return nil
			}
			noDigest = true
			return nil
		})
		return err
	})
	if err != nil || !noDigest {
		return rt, tag, err
	}
	if isDockerHub(host) {
		return nil, nil, &noDigestError{host: host, hub: true}
	}
	var (
		resp *http.Response
		body []byte
	)
	err = c.attempt(ctx, host, func(ctx context.Context) (err error) {
		resp, body, err = c.send(ctx, rt, repo, ref.Identifier(), http.MethodGet)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	tag = newRemoteTag(h, resp.Header.Get("Content-Type"))
	var probe struct {
		MediaType types.MediaType   `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &probe) == nil && tag.mediaType == "" {
		tag.mediaType = probe.MediaType
		if tag.mediaType == "" && probe.Manifests != nil {
			tag.mediaType = types.OCIImageIndex
		}
	}
	if tag.mediaType.IsIndex() {
		// We hold the index already: keep it, so no query GETs it again.
		tag.index, tag.indexErr = v1.ParseIndexManifest(bytes.NewReader(body))
	}
	return rt, tag, nil
}

// authed runs fn with an authenticated transport for repo (see conns.transport for batch) and
// returns that transport. When the registry refuses (401/403) a token asked for several
// repositories, it may have granted the others and not this one: authed then asks for a token of
// repo's own and runs fn once more, so the answer is about repo alone. Only the first request of
// a lookup goes through here; the rest of the lookup uses the transport it returns.
func (c *Checker) authed(ctx context.Context, repo name.Repository, batch []name.Repository, fn func(http.RoundTripper) error) (http.RoundTripper, error) {
	rc, err := c.conns.transport(ctx, repo, batch)
	if err != nil {
		return nil, err
	}
	err = fn(rc.rt)
	if err == nil || rc.scopes < 2 || ctx.Err() != nil || !refused(err) {
		return rc.rt, err
	}
	c.conns.refusedShared(repo.Name(), rc)
	if rc, err = c.conns.transport(ctx, repo, nil); err != nil {
		return nil, err
	}
	return rc.rt, fn(rc.rt)
}

// refused reports whether err is the registry's 401/403 (or UNAUTHORIZED/DENIED) answer.
func refused(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && classifyStatus(te).reason == failure.Unauthorized
}

// getIndex GETs an index by digest and parses it.
func (c *Checker) getIndex(ctx context.Context, rt http.RoundTripper, repo name.Repository, h v1.Hash) (*v1.IndexManifest, error) {
	body, err := c.getByDigest(ctx, rt, repo, h)
	if err != nil {
		return nil, err
	}
	return v1.ParseIndexManifest(bytes.NewReader(body))
}

// getConfigDigest GETs an image manifest by digest and returns its config digest.
func (c *Checker) getConfigDigest(ctx context.Context, rt http.RoundTripper, repo name.Repository, h v1.Hash) (v1.Hash, error) {
	body, err := c.getByDigest(ctx, rt, repo, h)
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return v1.Hash{}, err
	}
	return m.Config.Digest, nil
}

// getByDigest GETs a manifest by digest and checks that the body hashes to it.
func (c *Checker) getByDigest(ctx context.Context, rt http.RoundTripper, repo name.Repository, h v1.Hash) ([]byte, error) {
	var body []byte
	err := c.attempt(ctx, repo.RegistryStr(), func(ctx context.Context) (err error) {
		_, body, err = c.send(ctx, rt, repo, h.String(), http.MethodGet)
		return err
	})
	if err != nil {
		return nil, err
	}
	got, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if got != h {
		return nil, fmt.Errorf("GET %s/%s@%s: body hashes to %s", repo.RegistryStr(), repo.RepositoryStr(), h, got)
	}
	return body, nil
}

// send makes one manifest request through an authenticated transport. Non-200 answers come back
// as *transport.Error. GET bodies are read (up to maxManifestSize); HEAD has none.
func (c *Checker) send(ctx context.Context, rt http.RoundTripper, repo name.Repository, identifier, method string) (*http.Response, []byte, error) {
	host := repo.RegistryStr()
	u := &url.URL{Scheme: scheme(host), Host: host, Path: "/v2/" + repo.RepositoryStr() + "/manifests/" + identifier}
	return c.do(ctx, rt, method, u, acceptManifests, maxManifestSize)
}

// attempt runs fn, and again after a back-off (Backoff, doubling) while it fails with a
// retryable failure.RegistryUnavailable error, at most Retries more times. It stops waiting the moment
// ctx ends, and never sends to a host inside a 429 back-off. go-containerregistry's own retry
// (which would repeat a 429 blindly and sleep without a context) is not in the request path: we
// build transports with package transport only, never through remote's options.
func (c *Checker) attempt(ctx context.Context, host string, fn func(context.Context) error) error {
	wait := c.o.Backoff
	for try := 0; ; try++ {
		if until, ok := c.limits.blocked(host, c.now()); ok {
			return &rateLimitedError{host: host, until: until}
		}
		err := fn(ctx)
		if err == nil || try >= c.o.Retries || ctx.Err() != nil || !classify(err).retry {
			if err != nil && try > 0 {
				err = &attemptsError{err: err, n: try + 1}
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w; stopped retrying after %d attempts: %w", err, try+1, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// acquire takes a slot for host, then an overall one, in that order: a lookup waiting for a busy
// host must not hold an overall slot that lookups for other hosts could use.
func (c *Checker) acquire(ctx context.Context, host string) (release func(), err error) {
	c.hostMu.Lock()
	hs := c.hostSlots[host]
	if hs == nil {
		hs = make(chan struct{}, c.o.PerHost)
		c.hostSlots[host] = hs
	}
	c.hostMu.Unlock()
	select {
	case hs <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		<-hs
		return nil, ctx.Err()
	}
	return func() { <-c.slots; <-hs }, nil
}

// fail records a failed lookup in r: reason, message naming the host and status, and the
// consequences — a 429 keeps the host quiet, an authorisation failure drops the cached token and
// credentials so the next lookup starts afresh.
func (c *Checker) fail(ctx context.Context, repo name.Repository, tr *trace, err error, r *Result) {
	host := repo.RegistryStr()
	f := classify(err)
	msg := f.msg
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		f.reason = failure.RegistryUnavailable
		if ctx.Err() != nil {
			msg = "check stopped before the registry answered: " + msg
		} else {
			msg = fmt.Sprintf("no answer within %s: %s", c.o.Timeout, msg)
		}
	case f.reason == failure.RateLimited:
		var rl *rateLimitedError
		if errors.As(err, &rl) {
			// Skipped without a request: an earlier 429 (this Check or before) set the deadline.
			r.RetryAt = rl.until
			c.limits.block(host, rl.until)
			break
		}
		until, source := tr.rateLimit()
		if until.IsZero() {
			until, source = c.now().Add(c.o.RateLimitBackoff), "no Retry-After"
		}
		c.limits.block(host, until)
		r.RetryAt = until
		msg = fmt.Sprintf("%s; not asking %s again before %s (%s)", msg, host, until.UTC().Format(time.RFC3339), source)
	case f.reason == failure.Unauthorized:
		c.conns.forgetRepo(repo.Name(), nil)
		c.conns.forgetRegistry(host)
		msg += ": credentials missing or refused"
		if isDockerHub(host) {
			msg += " (Docker Hub also answers this for repositories that do not exist)"
		}
	case f.reason == failure.ManifestUnknown:
		msg += ": the tag or repository does not exist"
	}
	r.Reason = f.reason
	r.Message = "registry " + host + ": " + msg
}

// mediaType reads a Content-Type header as a manifest media type (parameters dropped).
func mediaType(ct string) types.MediaType {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return types.MediaType(strings.TrimSpace(ct))
}

// noDigestError: the registry answered a manifest HEAD without Docker-Content-Digest.
type noDigestError struct {
	host string
	hub  bool
}

func (e *noDigestError) Error() string {
	if e.hub {
		return "HEAD answered without Docker-Content-Digest; not falling back to GET on Docker Hub, where a GET counts against the pull limit"
	}
	return "HEAD answered without Docker-Content-Digest"
}

// attemptsError notes how many attempts a failure took.
type attemptsError struct {
	err error
	n   int
}

func (e *attemptsError) Error() string { return fmt.Sprintf("%v (after %d attempts)", e.err, e.n) }
func (e *attemptsError) Unwrap() error { return e.err }
