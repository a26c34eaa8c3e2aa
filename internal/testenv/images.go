package testenv

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageSpec describes a test image: the testapp binary as /app plus image config. Every field is
// optional; two specs that differ in anything (Version is the usual knob) give different digests.
type ImageSpec struct {
	Version      string            // baked in as env APP_VERSION and label "testenv.version"
	Env          []string          // more image env, KEY=VALUE
	Labels       map[string]string // more image labels
	Entrypoint   []string          // default ["/app"]
	Cmd          []string          // default none
	User         string
	WorkingDir   string
	Healthcheck  *v1.HealthConfig // e.g. {Test: []string{"CMD", "/app", "health"}, Interval: time.Second}
	StopSignal   string
	Volumes      []string // image VOLUMEs, e.g. "/data"
	ExposedPorts []string // e.g. "8080/tcp"
	Created      time.Time
	Platform     *v1.Platform      // default linux/GOARCH
	ExtraFiles   map[string]string // more files in the layer: path -> content
	Shell        bool              // /sh -> /app: testapp then serves `sh -c` (lifecycle hooks)
}

var (
	appOnce sync.Once
	appBin  []byte
	appErr  error
)

// testappBinary builds internal/testenv/testapp as a static binary once per test process.
func testappBinary() ([]byte, error) {
	appOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "testapp")
		dir, err := os.MkdirTemp("", "testapp")
		if err != nil {
			appErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "app")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("building testapp: %v\n%s", err, b)
			return
		}
		appBin, appErr = os.ReadFile(out)
	})
	return appBin, appErr
}

// Image builds the image described by spec (not pushed).
func Image(t testing.TB, spec ImageSpec) v1.Image {
	t.Helper()
	img, err := BuildImage(spec)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return img
}

// BuildImage is Image without a testing.TB, for benchmarks and tools.
func BuildImage(spec ImageSpec) (v1.Image, error) {
	bin, err := testappBinary()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := map[string]string{"app": string(bin)}
	for p, c := range spec.ExtraFiles {
		files[filepath.Clean("/" + p)[1:]] = c
	}
	// tmp/ must exist for the app's start marker; data/ is a handy mount point.
	for _, d := range []string{"tmp/", "data/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedKeys(files) {
		mode := int64(0o644)
		if p == "app" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(files[p])), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(files[p])); err != nil {
			return nil, err
		}
	}
	if spec.Shell {
		if err := tw.WriteHeader(&tar.Header{Name: "sh", Typeflag: tar.TypeSymlink, Linkname: "app", Mode: 0o777, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (rc ioReadCloser, err error) { return nopCloser{bytes.NewReader(layerBytes)}, nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	plat := spec.Platform
	if plat == nil {
		plat = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	created := spec.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	cf.Created = v1.Time{Time: created}
	c := &cf.Config
	c.Env = append([]string{"PATH=/", "APP_VERSION=" + spec.Version}, spec.Env...)
	c.Labels = map[string]string{"testenv.version": spec.Version}
	for k, v := range spec.Labels {
		c.Labels[k] = v
	}
	c.Entrypoint = spec.Entrypoint
	if c.Entrypoint == nil {
		c.Entrypoint = []string{"/app"}
	}
	c.Cmd = spec.Cmd
	c.User = spec.User
	c.WorkingDir = spec.WorkingDir
	c.Healthcheck = spec.Healthcheck
	c.StopSignal = spec.StopSignal
	if len(spec.Volumes) > 0 {
		c.Volumes = map[string]struct{}{}
		for _, v := range spec.Volumes {
			c.Volumes[v] = struct{}{}
		}
	}
	if len(spec.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// PushImage builds spec and pushes it as repo:tag to the registry, returning the full reference
// (host/repo:tag) and the manifest digest.
func (r *Registry) PushImage(t testing.TB, repo, tag string, spec ImageSpec) (ref string, digest v1.Hash) {
	t.Helper()
	img := Image(t, spec)
	ref = r.Ref(repo, tag)
	if err := r.Push(ref, img); err != nil {
		t.Fatalf("testenv: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d
}

// PushIndex pushes a multi-platform index of the given images as repo:tag and returns its digest.
func (r *Registry) PushIndex(t testing.TB, repo, tag string, imgs ...PlatformImage) (ref string, digest v1.Hash) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, pi := range imgs {
		p := pi.Platform
		adds = append(adds, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList), adds...)
	ref = r.Ref(repo, tag)
	tagRef, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tagRef, idx); err != nil {
		t.Fatalf("testenv: push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d
}

// Push writes img under ref (host/repo:tag) to this registry.
func (r *Registry) Push(ref string, img v1.Image) error {
	tagRef, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(tagRef, img, r.remoteOptions()...)
}

// remoteOptions are the options of a push: the registry's credentials when it requires them.
func (r *Registry) remoteOptions() []remote.Option {
	r.mu.Lock()
	auth := r.auth
	r.mu.Unlock()
	if auth != nil && auth.user != "" {
		return []remote.Option{remote.WithAuth(basicAuth(auth.user, auth.pass))}
	}
	return nil
}

// PlatformImage is one entry of a multi-platform index.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}
