package testenv

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// PushTags points every one of tags of repo at img: the first tag is a push, each further one a
// single manifest PUT (the blobs are there already), a few at a time, so a repository with a
// thousand tags is quick to make. It returns the image's digest.
func (r *Registry) PushTags(t testing.TB, repo string, img v1.Image, tags ...string) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 {
		return d
	}
	if err := r.Push(r.Ref(repo, tags[0]), img); err != nil {
		t.Fatalf("testenv: push %s:%s: %v", repo, tags[0], err)
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, tag := range tags[1:] {
		g.Go(func() error {
			ref, err := name.NewTag(r.Ref(repo, tag), name.Insecure)
			if err != nil {
				return err
			}
			return remote.Tag(ref, img, r.remoteOptions()...)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("testenv: tagging %s: %v", repo, err)
	}
	return d
}
