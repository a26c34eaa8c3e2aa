package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/watcher-dev/watcher/config"
	"github.com/watcher-dev/watcher/updater"
)

var (
	codeBlock   = regexp.MustCompile("(?s)```(yaml|sh)\n(.*?)```")
	secretPath  = regexp.MustCompile(`/run/secrets/\w+`)
	labelInLine = regexp.MustCompile(`--label (?:'(watcher\.[a-z.-]+)=([^']*)'|(watcher\.[a-z.-]+)=(\S*))`)
)

// TestOperationsExamples keeps docs/operations.md copyable: each watcher config in it loads as
// the daemon loads it (secret files stand in for /run/secrets), and each watcher.* label in its
// docker run and compose examples reads without error.
func TestOperationsExamples(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secrets := map[string]string{"watcher_webhook": "q8Yk1zP+3fG/9hJ2mN4vR6tX0wB5cE7aD1sL8uI3oQk=", "notify_urls": "generic+http://127.0.0.1:9/hook"}
	configs, labels := 0, 0
	for _, m := range codeBlock.FindAllStringSubmatch(string(b), -1) {
		kind, text := m[1], m[2]
		if kind == "sh" {
			for _, l := range labelInLine.FindAllStringSubmatch(text, -1) {
				checkLabel(t, l[1]+l[3], l[2]+l[4])
				labels++
			}
			continue
		}
		var top map[string]any
		if err := yaml.Unmarshal([]byte(text), &top); err != nil {
			t.Errorf("a yaml block does not parse: %v\n%s", err, text)
			continue
		}
		switch {
		case top["notifications"] != nil:
			continue // the registry's own config
		case top["services"] != nil:
			for _, svc := range top["services"].(map[string]any) {
				for k, v := range svc.(map[string]any)["labels"].(map[string]any) {
					checkLabel(t, k, v.(string))
					labels++
				}
			}
			continue
		}
		text = secretPath.ReplaceAllStringFunc(text, func(p string) string {
			f := filepath.Join(dir, filepath.Base(p))
			if err := os.WriteFile(f, []byte(secrets[filepath.Base(p)]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		})
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path, nil); err != nil {
			t.Errorf("a config example does not load: %v\n%s", err, text)
		}
		configs++
	}
	if configs < 4 || labels < 4 {
		t.Errorf("found %d config examples and %d labels; the document has more", configs, labels)
	}
}

func checkLabel(t *testing.T, key, value string) {
	t.Helper()
	if !strings.HasPrefix(key, "watcher.") {
		return
	}
	if _, err := updater.ParseSettings(map[string]string{key: value}, updater.Defaults{}); err != nil {
		t.Errorf("label %s=%q in docs/operations.md: %v", key, value, err)
	}
}
