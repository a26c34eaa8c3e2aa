package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// The image the end-to-end tests run is built once per test process, by the first test that
// needs it: `docker build` of this repository takes minutes on a small machine, and every test
// wants the same image of the same tree. TestMain removes the build's intermediate images.
var shared struct {
	once    sync.Once
	id      string // the built image; "" when the build failed
	version string // the VERSION it was built with
	baseID  string // the Go base image it was built on
}

// watcherImage returns the image built from this repository's Dockerfile (building it on the
// first call) and the version stamped into it.
func watcherImage(t *testing.T, e *testenv.Env) (id, version string) {
	t.Helper()
	shared.once.Do(func() { buildWatcherImage(t, e) })
	if shared.id == "" {
		t.Fatal("the watcher image could not be built (the first test that asked for it says why)")
	}
	return shared.id, shared.version
}

func buildWatcherImage(t *testing.T, e *testenv.Env) {
	began := time.Now()
	root := moduleRoot(t)
	baseRef := e.Registry.Ref("golang", "e2e")
	shared.baseID = goBaseImage(t, e, baseRef)
	t.Logf("Go base image from %s loaded in %v", goEnv(t, "GOROOT"), time.Since(began).Round(time.Millisecond))
	began = time.Now()
	version := "e2e-" + e.Owner
	id := dockerBuild(t, e, root, "watcher-e2e:"+e.Owner, map[string]string{
		"GO_IMAGE":      baseRef,
		"BUILDPLATFORM": "linux/" + runtime.GOARCH,
		"TARGETOS":      "linux",
		"TARGETARCH":    runtime.GOARCH,
		"GOPROXY":       moduleProxy(t, root),
		"GOSUMDB":       "off", // go.sum has every hash; nothing is looked up off this machine
		"VERSION":       version,
	})
	t.Logf("docker build took %v", time.Since(began).Round(time.Millisecond))
	// A second name keeps the image when a test's watcher moves the other one to a new image and
	// cleans up the superseded one (TestSidecar's self-update does): a watcher never forces the
	// removal of an image with other names.
	tagImage(t, id, "watcher-e2e:keep-"+e.Owner)
	shared.id, shared.version = id, version
}

// tagImage gives the shared image one more name, as `docker tag` does.
func tagImage(t *testing.T, id, ref string) {
	t.Helper()
	dockerCLI(t, "", "tag", id, ref)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.baseID != "" {
		if docker, err := engine.Connect(); err == nil {
			logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e cleanup: "+format+"\n", args...) }
			removeDescendants(logf, docker.Client, shared.baseID)
			if shared.id != "" {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, _ = docker.ImageRemove(ctx, shared.id, client.ImageRemoveOptions{Force: true})
				cancel()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, _ = docker.ImageRemove(ctx, shared.baseID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			cancel()
			_ = docker.Close()
		}
	}
	os.Exit(code)
}
