package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/watcher-dev/watcher/config"
)

// TestComposeExample keeps examples/compose.yaml a deployment that works: the socket and a state
// volume mounted, a read-only root, the token from a Compose secret, a labelled app, and an
// environment the real config loader accepts. It needs no engine.
func TestComposeExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		ReadOnly    bool              `yaml:"read_only"`
		GroupAdd    []string          `yaml:"group_add"`
		Volumes     []string          `yaml:"volumes"`
		Secrets     []string          `yaml:"secrets"`
		Environment map[string]string `yaml:"environment"`
		Labels      map[string]string `yaml:"labels"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("examples/compose.yaml: %v", err)
	}
	w, ok := compose.Services["watcher"]
	if !ok {
		t.Fatal("no watcher service")
	}
	if !w.ReadOnly {
		t.Error("watcher: read_only is not set")
	}
	if len(w.GroupAdd) == 0 {
		t.Error("watcher: no group_add for the socket's group (the image is not root)")
	}
	if !slices.Contains(w.Volumes, "/var/run/docker.sock:/var/run/docker.sock") {
		t.Errorf("watcher: volumes %v lack the Docker socket", w.Volumes)
	}
	stateVolume := ""
	for _, v := range w.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == "/var/lib/watcher" {
			stateVolume = src
		}
	}
	if _, ok := compose.Volumes[stateVolume]; !ok {
		t.Errorf("watcher: no named volume at /var/lib/watcher (volumes %v)", w.Volumes)
	}
	if len(w.Secrets) != 1 || compose.Secrets[w.Secrets[0]].File == "" {
		t.Fatalf("watcher: secrets %v, want one file-backed secret", w.Secrets)
	}
	if got, want := w.Environment["WATCHER_HTTP_TOKEN_FILE"], "/run/secrets/"+w.Secrets[0]; got != want {
		t.Errorf("WATCHER_HTTP_TOKEN_FILE = %q, want %q (where Compose mounts the secret)", got, want)
	}
	apps := 0
	for n, s := range compose.Services {
		if n != "watcher" && s.Labels["watcher.enable"] == "true" {
			apps++
		}
	}
	if apps == 0 {
		t.Error("no labelled app")
	}

	// The environment as the real loader sees it, with the secret file where Compose puts it.
	token := filepath.Join(t.TempDir(), "watcher_token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range w.Environment {
		if k == "WATCHER_HTTP_TOKEN_FILE" {
			v = token
		}
		if strings.HasPrefix(k, "WATCHER_") {
			env = append(env, k+"="+v)
		}
	}
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatalf("the example's environment is refused: %v", err)
	}
	if cfg.HTTP.Token == "" || cfg.StateDir != "/var/lib/watcher" {
		t.Errorf("config from the example: token set %v, state_dir %q; want a token and /var/lib/watcher", cfg.HTTP.Token != "", cfg.StateDir)
	}
}
