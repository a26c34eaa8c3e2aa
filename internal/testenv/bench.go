package testenv

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/client"
)

// StartRegistry is NewRegistry without a testing.TB, for benchmark programs: it starts the
// registry on 127.0.0.1 and returns it with the function that stops it.
func StartRegistry() (*Registry, func(), error) {
	r := &Registry{inner: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	r.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: r}}
	r.srv.Start()
	r.Host = l.Addr().String()
	return r, r.srv.Close, nil
}

// NewOwner returns a fresh owner id for OwnerLabel, as New gives each test.
func NewOwner() string { return randomID() }

// CleanupOwner removes what a benchmark program made, as New's cleanup does for a test but a few
// at a time (hundreds of containers on vfs take minutes one by one): every container (with its
// anonymous volumes) and network labelled OwnerLabel=owner, and every image tagged or pulled from
// registryHost ("" = no images).
func CleanupOwner(cli *client.Client, owner, registryHost string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	filter := make(client.Filters).Add("label", OwnerLabel+"="+owner)
	if res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter}); err == nil {
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, c := range res.Items {
			wg.Add(1)
			sem <- struct{}{}
			go func(id string) {
				defer func() { <-sem; wg.Done() }()
				_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}(c.ID)
		}
		wg.Wait()
	}
	if res, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: filter}); err == nil {
		for _, n := range res.Items {
			_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	if registryHost == "" {
		return
	}
	if res, err := cli.ImageList(ctx, client.ImageListOptions{All: true}); err == nil {
		for _, img := range res.Items {
			if len(fromRegistry(img.RepoTags, registryHost))+len(fromRegistry(img.RepoDigests, registryHost)) > 0 {
				_, _ = cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
}
