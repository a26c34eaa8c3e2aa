package registry

import (
	"context"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxCached bounds each of the digest caches; a daemon watching hundreds of images needs a few
// entries per image at most.
const maxCached = 2048

// digestCache keeps what manifests fetched by digest said: an index's platform entries and an
// image manifest's config digest. Content fetched by digest never changes, so entries stay valid
// across Check calls; keeping them means an index whose other platforms moved costs its two GETs
// once, not every cycle (on Docker Hub every manifest GET counts as a pull).
type digestCache struct {
	mu      sync.Mutex
	indexes map[string]*flight[*v1.IndexManifest] // repo@digest ->
	configs map[string]*flight[v1.Hash]           // repo@digest -> config digest
	created map[string]*flight[time.Time]         // repo@config digest -> the config's created (created.go)
}

func newDigestCache() *digestCache {
	return &digestCache{indexes: map[string]*flight[*v1.IndexManifest]{}, configs: map[string]*flight[v1.Hash]{}, created: map[string]*flight[time.Time]{}}
}

func (c *digestCache) index(ctx context.Context, key string, fetch func(context.Context) (*v1.IndexManifest, error)) (*v1.IndexManifest, error) {
	trim(&c.mu, c.indexes)
	return join(ctx, &c.mu, c.indexes, key, fetch)
}

func (c *digestCache) config(ctx context.Context, key string, fetch func(context.Context) (v1.Hash, error)) (v1.Hash, error) {
	trim(&c.mu, c.configs)
	return join(ctx, &c.mu, c.configs, key, fetch)
}

// trim drops finished entries once m is full (which ones does not matter: a miss costs one GET).
func trim[T any](mu *sync.Mutex, m map[string]*flight[T]) {
	mu.Lock()
	defer mu.Unlock()
	if len(m) < maxCached {
		return
	}
	for k, f := range m {
		select {
		case <-f.done:
			delete(m, k)
		default:
		}
		if len(m) < maxCached/2 {
			return
		}
	}
}
