package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestBuildContext checks what the Docker CLI sends as the build context of `docker build .`,
// read from .dockerignore by the CLI itself: a probe Dockerfile that copies the whole context
// into an image is built by `docker build` from the repository root, and the image's files are
// compared with what `go build ./cmd/watcher` reads. Then the same .dockerignore, in a directory
// holding what a working copy may hold (a binary, .env, a state database, tests, docs), must
// keep all of that out.
func TestBuildContext(t *testing.T) {
	e := testenv.New(t)
	root := moduleRoot(t)

	want := binarySources(t, root)
	got := contextFiles(t, e, root)
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("the build context lacks %s: add `!%s/*.go` to .dockerignore", f, path.Dir(f))
		}
	}
	for _, f := range got {
		if !slices.Contains(want, f) {
			t.Errorf("the build context holds %s, which `go build ./cmd/watcher` does not read", f)
		}
	}

	junk := t.TempDir()
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	keep := []string{"go.mod", "go.sum", "api/server.go", "cmd/watcher/main.go", "internal/engine/engine.go"}
	out := []string{
		"watcher", "bin/watcher", "cmd/watcher/watcher", ".env", "var/lib/watcher/watcher.db", "watcher.db",
		"README.md", "docs/sidecar.md", "api/notes.md", "api/server_test.go", "e2e/doc.go",
		"config/testdata/x.go", "internal/testenv/env.go", "main.go", "newpkg/x.go", ".git/config",
	}
	for _, f := range append(append([]string{".dockerignore"}, keep...), out...) {
		content := []byte("x\n")
		if f == ".dockerignore" {
			content = ignore
		}
		p := filepath.Join(junk, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keep)
	if got := contextFiles(t, e, junk); !slices.Equal(got, keep) {
		t.Errorf("from a working copy with junk, the context is %v; want only %v", got, keep)
	}
}

// binarySources lists, relative to root and sorted, what the build of cmd/watcher reads: go.mod,
// go.sum and the non-test .go files (and embedded files) of the module's packages it imports.
func binarySources(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if .Main}}{{$.Dir}}\t{{join $.EmbedFiles \",\"}}{{end}}{{end}}", "./cmd/watcher")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		dir, embeds, _ := strings.Cut(strings.TrimSpace(line), "\t")
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		gos, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, g := range gos {
			if !strings.HasSuffix(g, "_test.go") {
				files = append(files, path.Join(filepath.ToSlash(rel), filepath.Base(g)))
			}
		}
		for _, f := range strings.Split(embeds, ",") {
			if f != "" {
				files = append(files, path.Join(filepath.ToSlash(rel), f))
			}
		}
	}
	slices.Sort(files)
	return files
}

// contextFiles builds, with the Docker CLI, a probe image holding the build context of dir (read
// through dir's .dockerignore) and returns its files, relative and sorted.
func contextFiles(t *testing.T, e *testenv.Env, dir string) []string {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(probe, []byte("FROM scratch\nCOPY . /context/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := e.Registry.Ref("context-probe", e.Owner) // removed with the test's images
	dockerCLI(t, dir, "build", "--quiet", "--file", probe, "--tag", ref, ".")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	saved, err := e.Docker.ImageSave(ctx, []string{ref})
	if err != nil {
		t.Fatalf("saving the context probe: %v", err)
	}
	defer saved.Close()
	var files []string
	tr := tar.NewReader(saved)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading the context probe: %v", err)
		}
		if path.Base(hdr.Name) != "layer.tar" && !strings.HasPrefix(hdr.Name, "blobs/") {
			continue
		}
		files = append(files, layerFiles(tr)...)
	}
	if _, err := e.Docker.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
		t.Logf("removing the context probe: %v", err)
	}
	slices.Sort(files)
	return files
}

// layerFiles lists the regular files under context/ in a layer tarball (nothing when r is not one).
func layerFiles(r io.Reader) []string {
	var files []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return files
		}
		if rel, ok := strings.CutPrefix(hdr.Name, "context/"); ok && hdr.Typeflag == tar.TypeReg {
			files = append(files, rel)
		}
	}
}
