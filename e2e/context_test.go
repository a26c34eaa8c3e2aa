package e2e

import (
	"slices"
	"strings"
	"testing"
)

// contextFile reports whether a file belongs in the image's build context: what the build of
// cmd/watcher reads, and nothing else.
func contextFile(f string) bool {
	switch {
	case f == "Dockerfile", f == ".dockerignore", f == "go.mod", f == "go.sum":
		return true
	case strings.HasPrefix(f, "e2e/"), strings.HasSuffix(f, "_test.go"), strings.Contains(f, "/testdata/"):
		return false
	}
	return strings.HasSuffix(f, ".go")
}

// TestBuildContext checks .dockerignore (read with the Docker CLI's rules) against the
// repository: the sources of the binary go in; tests, docs, CI files, binaries and state stay out.
// It needs no engine.
func TestBuildContext(t *testing.T) {
	root := moduleRoot(t)
	_, files := buildContext(t, root)
	for _, want := range []string{"Dockerfile", "go.mod", "go.sum", "cmd/watcher/main.go", "lifecycle/replace.go"} {
		if !slices.Contains(files, want) {
			t.Errorf("build context lacks %s", want)
		}
	}
	for _, f := range files {
		if !contextFile(f) {
			t.Errorf("build context holds %s", f)
		}
	}

	pats := dockerignore(t, root)
	for rel, want := range map[string]bool{
		"watcher":                    true, // a binary built at the top
		"bin/watcher":                true,
		".env":                       true,
		"var/lib/watcher/watcher.db": true,
		"README.md":                  true,
		"docs/sidecar.md":            true,
		"api/server_test.go":         true,
		"e2e/sidecar_test.go":        true,
		"e2e/doc.go":                 true,
		"config/testdata/x.go":       true,
		"go.mod":                     false,
		"main.go":                    false,
		"cmd/watcher/app.go":         false,
		"internal/engine/engine.go":  false,
	} {
		if got := ignored(rel, pats); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}
