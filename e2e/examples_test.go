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
// volume mounted, a read-only root, no new privileges and no capabilities, the token from a
// Compose secret made readable by the socket's group only, a labelled app, and an environment
// the real config loader accepts without a warning. It needs no engine.
func TestComposeExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		ReadOnly    bool              `yaml:"read_only"`
		SecurityOpt []string          `yaml:"security_opt"`
		CapDrop     []string          `yaml:"cap_drop"`
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
	if !slices.Contains(w.SecurityOpt, "no-new-privileges:true") || !slices.Equal(w.CapDrop, []string{"ALL"}) {
		t.Errorf("watcher: security_opt %v, cap_drop %v; want no-new-privileges:true and [ALL]", w.SecurityOpt, w.CapDrop)
	}
	checkTokenAdvice(t, "examples/compose.yaml", string(b))
	if len(w.GroupAdd) == 0 {
		t.Error("watcher: no group_add for the socket's group (the image is not root)")
	}
	checkMounts(t, w.Volumes, compose.Volumes)
	if len(w.Secrets) != 1 || compose.Secrets[w.Secrets[0]].File == "" {
		t.Fatalf("watcher: secrets %v, want one file-backed secret", w.Secrets)
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

	cfg := exampleConfig(t, w.Environment, "/run/secrets/"+w.Secrets[0], 0o440)
	if cfg.HTTP.Token == "" || cfg.StateDir != "/var/lib/watcher" || len(cfg.Warnings) > 0 {
		t.Errorf("config from the example: token set %v, state_dir %q, warnings %q; want a token, /var/lib/watcher, no warning",
			cfg.HTTP.Token != "", cfg.StateDir, cfg.Warnings)
	}
}

// checkMounts fails unless volumes mount the Docker socket and a named volume (one of named)
// at the state directory.
func checkMounts(t *testing.T, volumes []string, named map[string]any) {
	t.Helper()
	if !slices.Contains(volumes, "/var/run/docker.sock:/var/run/docker.sock") {
		t.Errorf("watcher: volumes %v lack the Docker socket", volumes)
	}
	stateVolume := ""
	for _, v := range volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == "/var/lib/watcher" {
			stateVolume = src
		}
	}
	if _, ok := named[stateVolume]; !ok {
		t.Errorf("watcher: no named volume at /var/lib/watcher (volumes %v)", volumes)
	}
}

// exampleConfig is an example's environment as the real loader sees it (the WATCHER_* variables),
// with the token file it names (which must be secret, where the secret is mounted) written with
// mode perm; the loader must accept it.
func exampleConfig(t *testing.T, environment map[string]string, secret string, perm os.FileMode) config.Config {
	t.Helper()
	token := filepath.Join(t.TempDir(), "watcher_token")
	if err := os.WriteFile(token, []byte(randomHex(16)+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range environment {
		if k == "WATCHER_HTTP_TOKEN_FILE" {
			if v != secret {
				t.Errorf("WATCHER_HTTP_TOKEN_FILE = %q, want %q (where the secret is mounted)", v, secret)
			}
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
	return cfg
}

// TestSidecarDocs keeps the README's and docs/sidecar.md's `docker run` of the watcher in step
// with what TestSidecar runs: no new privileges, no capabilities, the token from a file readable
// by the socket's group only. It needs no engine.
func TestSidecarDocs(t *testing.T) {
	for _, doc := range []string{"README.md", "docs/sidecar.md"} {
		b, err := os.ReadFile(filepath.Join(moduleRoot(t), doc))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		checkTokenAdvice(t, doc, text)
		run := ""
		for _, block := range strings.Split(text, "```")[1:] {
			if i := strings.Index(block, "docker run -d --name watcher"); i >= 0 {
				run, _, _ = strings.Cut(block[i:], "watcher:latest")
				break
			}
		}
		if run == "" {
			t.Errorf("%s: no `docker run -d --name watcher` block", doc)
			continue
		}
		for _, flag := range []string{"--read-only", "--security-opt no-new-privileges", "--cap-drop ALL", "--group-add",
			"-v /var/run/docker.sock:/var/run/docker.sock", "WATCHER_HTTP_TOKEN_FILE=/run/secrets/watcher_token"} {
			if !strings.Contains(run, flag) {
				t.Errorf("%s: the watcher's docker run lacks %s", doc, flag)
			}
		}
	}
}

// checkTokenAdvice fails when text tells to make the token readable by every user, or does not
// show making it readable by the socket's group only.
func checkTokenAdvice(t *testing.T, name, text string) {
	t.Helper()
	if strings.Contains(text, "0444") || strings.Contains(text, "0644") {
		t.Errorf("%s recommends a secret file readable by every user", name)
	}
	if !strings.Contains(text, "chmod 0440 watcher_token") || !strings.Contains(text, "chgrp ") {
		t.Errorf("%s does not show the token file made readable by the socket's group only (chgrp, chmod 0440)", name)
	}
}

// TestSwarmStackExample keeps examples/swarm-stack.yaml a stack that runs the watcher as a Swarm
// service as docs/swarm.md says: on a manager, with the socket and a state volume, its service
// labelled (deploy.labels: service labels, which the watcher reads) so that it updates itself,
// Swarm's rollback on failure, the token from a Swarm secret only its user may read, a labelled app
// service, and an environment the real config loader accepts without a warning. It needs no engine.
func TestSwarmStackExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "swarm-stack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type deploy struct {
		Placement struct {
			Constraints []string `yaml:"constraints"`
		} `yaml:"placement"`
		Labels       map[string]string `yaml:"labels"`
		UpdateConfig struct {
			FailureAction string `yaml:"failure_action"`
			Order         string `yaml:"order"`
		} `yaml:"update_config"`
	}
	type service struct {
		User        string            `yaml:"user"`
		ReadOnly    bool              `yaml:"read_only"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Labels      map[string]string `yaml:"labels"`
		Deploy      deploy            `yaml:"deploy"`
		Secrets     []struct {
			Source string `yaml:"source"`
			UID    string `yaml:"uid"`
			Mode   int    `yaml:"mode"`
		} `yaml:"secrets"`
	}
	var stack struct {
		Version  string             `yaml:"version"`
		Services map[string]service `yaml:"services"`
		Secrets  map[string]struct {
			External bool `yaml:"external"`
		} `yaml:"secrets"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &stack); err != nil {
		t.Fatalf("examples/swarm-stack.yaml: %v", err)
	}
	if stack.Version == "" {
		t.Error("no version: docker stack deploy wants one")
	}
	w, ok := stack.Services["watcher"]
	if !ok {
		t.Fatal("no watcher service")
	}
	if !slices.Contains(w.Deploy.Placement.Constraints, "node.role == manager") {
		t.Errorf("watcher: constraints %v, want node.role == manager", w.Deploy.Placement.Constraints)
	}
	if w.Deploy.Labels["watcher.enable"] != "true" || len(w.Labels) > 0 {
		t.Errorf("watcher: deploy.labels %v, labels %v; want watcher.enable=true as a service label (deploy.labels)", w.Deploy.Labels, w.Labels)
	}
	if w.Deploy.UpdateConfig.FailureAction != "rollback" {
		t.Errorf("watcher: update_config.failure_action %q, want rollback", w.Deploy.UpdateConfig.FailureAction)
	}
	if !w.ReadOnly || !strings.HasPrefix(w.User, "65532:") {
		t.Errorf("watcher: read_only %v, user %q; want a read-only root and the image's non-root user with the socket's group", w.ReadOnly, w.User)
	}
	checkMounts(t, w.Volumes, stack.Volumes)
	if len(w.Secrets) != 1 || !stack.Secrets[w.Secrets[0].Source].External || w.Secrets[0].UID != "65532" || w.Secrets[0].Mode != 0o400 {
		t.Fatalf("watcher: secrets %+v, want one external secret, uid 65532, mode 0400", w.Secrets)
	}
	apps := 0
	for n, s := range stack.Services {
		if n != "watcher" && s.Deploy.Labels["watcher.enable"] == "true" {
			apps++
		}
	}
	if apps == 0 {
		t.Error("no app service labelled watcher.enable=true in deploy.labels")
	}
	cfg := exampleConfig(t, w.Environment, "/run/secrets/"+w.Secrets[0].Source, 0o400)
	if cfg.HTTP.Token == "" || !cfg.Swarm.Services || len(cfg.Warnings) > 0 {
		t.Errorf("config from the example: token set %v, swarm.services %v, warnings %q", cfg.HTTP.Token != "", cfg.Swarm.Services, cfg.Warnings)
	}
}
