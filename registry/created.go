package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/failure"
)

// maxConfigSize bounds an image config blob; configs with long histories reach a few hundred KiB.
const maxConfigSize = 8 << 20

// Created returns when the image ref names was created for platform, as the `created` field of
// its image config records it: the build time, which is the closest a registry lets us come to
// "pushed at" (the distribution API keeps no push time). ref names a tag or a digest; for a
// multi-platform index the manifest for platform is used (empty OS and Architecture mean
// linux/GOARCH, as in Query). The zero time means the config records no time; reproducible
// builds record the Unix epoch. Either way the caller cannot tell the image's age from it.
//
// Cost: one HEAD of ref, then GETs by digest of the index, the platform's manifest and the config
// blob. Those are cached across calls and shared with Check, which has usually fetched the index
// and the manifest of a tag it found moved, so a candidate costs a HEAD and a blob GET the first
// time and a HEAD afterwards. Limits, retries and back-off are Check's; Options.Timeout covers
// the whole lookup. A failure is an *Error with Check's Reasons.
func (c *Checker) Created(ctx context.Context, ref string, platform v1.Platform) (time.Time, error) {
	r, err := parseRef(ref)
	if err != nil {
		return time.Time{}, &Error{Ref: ref, Reason: failure.InvalidReference, Message: fmt.Sprintf("cannot parse image reference %q: %v", ref, err)}
	}
	repo := r.Context()
	host := repo.RegistryStr()
	res := Result{Ref: ref, Repo: repo.Name()}
	tr := &trace{}
	if until, ok := c.limits.blocked(host, c.now()); ok {
		c.fail(ctx, repo, tr, &rateLimitedError{host: host, until: until}, &res)
		return time.Time{}, res.Err()
	}
	release, err := c.acquire(ctx, host)
	if err != nil {
		c.fail(ctx, repo, tr, err, &res)
		return time.Time{}, res.Err()
	}
	defer release()
	lctx, cancel := context.WithTimeout(withTrace(ctx, tr), c.o.Timeout)
	defer cancel()
	t, err := c.created(lctx, r, platform)
	var np *noPlatformError
	switch {
	case errors.As(err, &np):
		return time.Time{}, &Error{Ref: ref, Reason: failure.ManifestUnknown, Message: "registry " + host + ": " + np.Error()}
	case err != nil:
		c.fail(ctx, repo, tr, err, &res)
		return time.Time{}, res.Err()
	}
	return t, nil
}

func (c *Checker) created(ctx context.Context, ref name.Reference, platform v1.Platform) (time.Time, error) {
	repo := ref.Context()
	rt, tag, err := c.head(ctx, ref, nil)
	if err != nil {
		return time.Time{}, err
	}
	manifest := tag.digest
	if tag.mediaType.IsIndex() {
		idx, err := tag.index, tag.indexErr
		if idx == nil && err == nil {
			idx, err = c.cache.index(ctx, repo.Name()+"@"+tag.digest.String(), func(ctx context.Context) (*v1.IndexManifest, error) {
				return c.getIndex(ctx, rt, repo, tag.digest)
			})
		}
		if err != nil {
			return time.Time{}, err
		}
		want := wantPlatform(platform)
		m, ok := pickManifest(idx, want)
		if !ok {
			return time.Time{}, &noPlatformError{digest: tag.digest, platform: want}
		}
		manifest = m.Digest
	}
	cfg, err := c.cache.config(ctx, repo.Name()+"@"+manifest.String(), func(ctx context.Context) (v1.Hash, error) {
		return c.getConfigDigest(ctx, rt, repo, manifest)
	})
	if err != nil {
		return time.Time{}, err
	}
	trim(&c.cache.mu, c.cache.created)
	return join(ctx, &c.cache.mu, c.cache.created, repo.Name()+"@"+cfg.String(), func(ctx context.Context) (time.Time, error) {
		return c.getCreated(ctx, rt, repo, cfg)
	})
}

// getCreated GETs an image config blob, checks that it hashes to h and reads its created time
// (zero when absent or not a time).
func (c *Checker) getCreated(ctx context.Context, rt http.RoundTripper, repo name.Repository, h v1.Hash) (time.Time, error) {
	host := repo.RegistryStr()
	u := &url.URL{Scheme: scheme(host), Host: host, Path: "/v2/" + repo.RepositoryStr() + "/blobs/" + h.String()}
	var body []byte
	err := c.attempt(ctx, host, func(ctx context.Context) (err error) {
		_, body, err = c.get(ctx, rt, u, "", maxConfigSize)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	got, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	if got != h {
		return time.Time{}, fmt.Errorf("GET %s%s: body hashes to %s", host, u.Path, got)
	}
	var cfg struct {
		Created string `json:"created"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return time.Time{}, fmt.Errorf("GET %s%s: image config is not JSON: %w", host, u.Path, err)
	}
	t, err := time.Parse(time.RFC3339Nano, cfg.Created)
	if err != nil {
		return time.Time{}, nil
	}
	return t, nil
}

// noPlatformError: an index without a manifest for the platform asked about.
type noPlatformError struct {
	digest   v1.Hash
	platform v1.Platform
}

func (e *noPlatformError) Error() string {
	return fmt.Sprintf("%s is an index without a manifest for %s", e.digest, e.platform.String())
}
