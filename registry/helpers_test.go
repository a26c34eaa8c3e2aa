package registry

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// anonymous is a keychain with no credentials, so tests never read the machine's docker config.
type staticKeychain struct {
	mu   sync.Mutex
	auth map[string]authn.Authenticator // registry host -> authenticator
}

func (k *staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.auth[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

func (k *staticKeychain) set(host string, a authn.Authenticator) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.auth == nil {
		k.auth = map[string]authn.Authenticator{}
	}
	k.auth[host] = a
}

// newChecker is New with test-friendly defaults: no machine credentials, millisecond back-off.
func newChecker(o Options) *Checker {
	if o.Keychain == nil {
		o.Keychain = &staticKeychain{}
	}
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	return New(o)
}

// fakeClock is an injectable clock for rate-limit deadlines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// pushTags pushes one image (built from spec) under every tag of repo and returns its digest.
func pushTags(t testing.TB, reg *testenv.Registry, repo string, spec testenv.ImageSpec, tags ...string) v1.Hash {
	t.Helper()
	return reg.PushTags(t, repo, cachedImage(t, spec), tags...)
}

// pulled is the Query for a container running ref, pulled when it had digest d.
func pulled(reg *testenv.Registry, repo, tag string, d v1.Hash) Query {
	return Query{Ref: reg.Ref(repo, tag), RepoDigests: []string{reg.Host + "/" + repo + "@" + d.String()}}
}

func configDigest(t testing.TB, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func manifestDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// manifestCalls counts the manifest requests the registry saw with this method.
func manifestCalls(reg *testenv.Registry, method string) int {
	return reg.Count(method, "/manifests/")
}

// settledCalls is manifestCalls once it reaches want or a second has passed: the registry records
// a request when its handler returns, which for a request we gave up on is a little later.
func settledCalls(reg *testenv.Registry, method string, want int) int {
	deadline := time.Now().Add(time.Second)
	for {
		n := manifestCalls(reg, method)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustOK fails the test unless every result succeeded.
func mustOK(t testing.TB, rs []Result) {
	t.Helper()
	for i, r := range rs {
		if r.Reason != "" {
			t.Fatalf("result %d (%s): Reason = %s (%s), want success", i, r.Ref, r.Reason, r.Message)
		}
	}
}

var (
	imagesMu sync.Mutex
	images   = map[string]v1.Image{}
)

// cachedImage is testenv.Image, built once per test process for each version and platform
// (building the layer is what makes a test slow).
func cachedImage(t testing.TB, spec testenv.ImageSpec) v1.Image {
	t.Helper()
	key := spec.Version
	if spec.Platform != nil {
		key += "/" + spec.Platform.String()
	}
	if len(spec.Env)+len(spec.Labels)+len(spec.ExtraFiles) > 0 {
		return testenv.Image(t, spec)
	}
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if img, ok := images[key]; ok {
		return img
	}
	img := testenv.Image(t, spec)
	images[key] = img
	return img
}
