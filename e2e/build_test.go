package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// goEnv returns `go env NAME` of the toolchain running the tests.
func goEnv(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// moduleRoot is the repository root: the directory of go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	gomod := goEnv(t, "GOMOD")
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not in a Go module")
	}
	return filepath.Dir(gomod)
}

// goBaseImage stands in for golang:1.26 (Docker Hub is out of reach): this machine's GOROOT at
// /usr/local/go, its CA certificates, a /tmp, and the golang image's environment. It is loaded
// into the engine as ref, the way `docker load` does, and its ID returned. No shell: the
// Dockerfile's RUN steps are in exec form, so they must not need one.
func goBaseImage(t *testing.T, e *testenv.Env, ref string) string {
	t.Helper()
	goroot := goEnv(t, "GOROOT")
	version := strings.TrimPrefix(goEnv(t, "GOVERSION"), "go")
	layer, err := os.CreateTemp("", "e2e-goroot-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	h := sha256.New()
	if err := writeGoRootLayer(io.MultiWriter(layer, h), goroot); err != nil {
		t.Fatalf("base image layer: %v", err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	size, err := layer.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: time.Now().UTC()},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		Config: v1.Config{
			Env: []string{
				"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"GOLANG_VERSION=" + version, "GOTOOLCHAIN=local", "GOPATH=/go",
			},
			WorkingDir: "/go",
			Cmd:        []string{"go", "version"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer/layer.tar"}}})

	// The `docker save` format: manifest.json, the config, and the layer uncompressed (no gzip
	// of ~150 MB on a busy machine).
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := func() error {
			for _, f := range []struct {
				name string
				data []byte
			}{{"config.json", cfg}, {"manifest.json", manifest}} {
				if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
					return err
				}
				if _, err := tw.Write(f.data); err != nil {
					return err
				}
			}
			if err := tw.WriteHeader(&tar.Header{Name: "layer/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}); err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: "layer/layer.tar", Mode: 0o644, Size: size, ModTime: time.Now()}); err != nil {
				return err
			}
			if _, err := layer.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, layer, size); err != nil {
				return err
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := e.Docker.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		_ = pr.CloseWithError(err)
		t.Fatalf("loading the Go base image: %v", err)
	}
	defer res.Close()
	if _, err := readJSONStream(res, nil); err != nil {
		t.Fatalf("loading the Go base image: %v", err)
	}
	img, err := e.Docker.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("the loaded Go base image: %v", err)
	}
	return img.ID
}

// writeGoRootLayer writes the layer of the Go base image: what `go build` needs of GOROOT (the
// go command, the compiler and linker, the standard library's sources; not the toolchain's own
// sources, tests or docs), CA certificates and /tmp.
func writeGoRootLayer(w io.Writer, goroot string) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	for _, d := range []string{"usr/", "usr/local/", "etc/", "etc/ssl/", "etc/ssl/certs/", "go/", "root/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: now}); err != nil {
		return err
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return fmt.Errorf("this machine's CA certificates (the image copies them from the build stage): %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Size: int64(len(certs)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(certs); err != nil {
		return err
	}
	tools := "pkg/tool/" + runtime.GOOS + "_" + runtime.GOARCH
	keep := func(rel string, dir bool) bool {
		top, _, _ := strings.Cut(rel, "/")
		switch {
		case rel == ".", rel == "bin", rel == "bin/go", rel == "pkg", rel == "pkg/tool", rel == tools:
			return true
		case rel == "go.env", rel == "VERSION", rel == "LICENSE":
			return !dir
		case strings.HasPrefix(rel, tools+"/"):
			// The compiler, assembler, linker and cgo; not vet, cover, fix, preprofile.
			return slices.Contains([]string{"compile", "asm", "link", "cgo"}, path.Base(rel))
		case rel == "pkg/include" || strings.HasPrefix(rel, "pkg/include/"):
			return true
		case top == "src":
			return rel != "src/cmd" && path.Base(rel) != "testdata"
		}
		return false
	}
	err = filepath.WalkDir(goroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(goroot, p)
		rel = filepath.ToSlash(rel)
		if !keep(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := "usr/local/go"
		if rel != "." {
			name += "/" + rel
		}
		return addFile(tw, p, name, d)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// addFile writes one file, directory or symlink at p into tw as name.
func addFile(tw *tar.Writer, p, name string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	} else if !info.Mode().IsRegular() && !info.IsDir() {
		return nil // sockets, devices: nothing a build needs
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// moduleProxy serves this machine's module cache as a Go module proxy on 127.0.0.1 (the cache's
// download directory has the proxy protocol's layout), so the image build's `go mod download`
// needs no network beyond this machine. Requests it cannot answer are logged.
func moduleProxy(t *testing.T, root string) string {
	t.Helper()
	// Make sure every module go.mod needs is in the cache (a no-op when it is; otherwise this
	// fetches them through the machine's usual GOPROXY).
	cmd := exec.Command("go", "mod", "download")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	dir := filepath.Join(goEnv(t, "GOMODCACHE"), "cache", "download")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	var mu sync.Mutex
	var missing []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(path.Clean("/"+r.URL.Path)))); err != nil {
			mu.Lock()
			missing = append(missing, r.URL.Path)
			mu.Unlock()
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(missing) > 0 {
			t.Logf("module proxy: not in this machine's module cache: %s", strings.Join(missing, ", "))
		}
	})
	return "http://" + l.Addr().String()
}

// dockerCLI runs the Docker CLI found on PATH, as a user would type it, in dir, against the
// test's engine (DOCKER_HOST is inherited). It returns the combined output and fails the test
// when the command fails.
func dockerCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("the Docker CLI is not on PATH (Debian's docker.io ships it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out stampWriter
	out.began = time.Now()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out.b.String())
	}
	return out.b.String()
}

// stampWriter keeps a command's output, each build step's line stamped with the time since began.
type stampWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	began time.Time
	mid   bool // the last write ended inside a line
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		if !w.mid && strings.HasPrefix(line, "Step ") {
			fmt.Fprintf(&w.b, "[%6.1fs] ", time.Since(w.began).Seconds())
		}
		w.b.WriteString(line)
		w.mid = !strings.HasSuffix(line, "\n")
	}
	return len(p), nil
}

// dockerBuild runs `docker build` in dir, the repository root, as the README says, with the
// options a user without Docker Hub and without a bridge network would add: build arguments
// (GO_IMAGE, GOPROXY, …) and --network host so that `go mod download` reaches the module proxy
// on 127.0.0.1. It returns the image ID.
func dockerBuild(t *testing.T, e *testenv.Env, dir, tag string, args map[string]string) string {
	t.Helper()
	cmd := []string{"build", "--network", "host", "--force-rm", "-t", tag}
	for _, k := range slices.Sorted(maps.Keys(args)) {
		cmd = append(cmd, "--build-arg", k+"="+args[k])
	}
	out := dockerCLI(t, dir, append(cmd, ".")...)
	t.Logf("docker %s:\n%s", strings.Join(cmd, " "), out)
	img, err := e.Docker.ImageInspect(context.Background(), tag)
	if err != nil {
		t.Fatalf("the image docker build tagged %s: %v", tag, err)
	}
	return img.ID
}

// readJSONStream reads an engine progress stream to its end. It returns the error the stream
// carried (errors arrive inside it, with a 200) and the image ID from an aux message, if any.
func readJSONStream(r io.Reader, log io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	id := ""
	began := time.Now()
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return id, nil
		} else if err != nil {
			return id, err
		}
		if log != nil && m.Stream != "" {
			if strings.HasPrefix(m.Stream, "Step ") {
				_, _ = fmt.Fprintf(log, "[%6.1fs] ", time.Since(began).Seconds())
			}
			_, _ = io.WriteString(log, m.Stream)
		}
		if m.Error != nil {
			return id, errors.New(m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
}

// removeDescendants removes every image built on top of base (the legacy builder keeps each
// step's image as cache: a full copy of the filesystem each with vfs), leaves first, pruning
// untagged parents; base itself stays for its own cleanup.
func removeDescendants(logf func(format string, args ...any), docker *client.Client, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range 20 {
		res, err := docker.ImageList(ctx, client.ImageListOptions{All: true})
		if err != nil {
			logf("listing images: %v", err)
			return
		}
		parent := map[string]string{}
		for _, img := range res.Items {
			parent[img.ID] = img.ParentID
		}
		isParent := map[string]bool{}
		var below []string
		for id := range parent {
			for p := parent[id]; p != ""; p = parent[p] {
				if p == base {
					below = append(below, id)
					isParent[parent[id]] = true
					break
				}
			}
		}
		if len(below) == 0 {
			return
		}
		for _, id := range below {
			if !isParent[id] {
				if _, err := docker.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
					logf("removing build image %s: %v", id, err)
				}
			}
		}
	}
}
