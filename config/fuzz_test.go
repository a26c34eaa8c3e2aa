package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary config files (and WATCHER_* variables, one per line) to Load: it
// must never panic and must return either a valid Config or a one-line *Error.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct{ yml, env string }{
		{string(example), ""},
		{"", ""},
		{"schedule: '* * *'\n", ""},
		{"schedule: 'TZ=UTC'\n", ""},
		{"schedule: 'CRON_TZ=UTC 0 4 * * *'\n", ""},
		{"schedule: '@every 5m'\n", "WATCHER_SCHEDULE="},
		{"update:\n  verfy: 10s\n", ""},
		{"update: {verify: -1s, parallel: 0, mode: monitor}\n", "WATCHER_UPDATE_PARALLEL=2"},
		{"registry:\n  auth:\n    ghcr.io: {username: u, password_file: /nonexistent}\n", "WATCHER_REGISTRY_AUTH_GHCR_IO_PASSWORD=p"},
		{"http: {token: a, token_file: /dev/null}\n", ""},
		{"http: {tls_cert: /etc/hostname}\n", "WATCHER_HTTP_TLS_KEY=/etc/hostname"},
		{"notify: {urls: [slack://a@b, 'x'], template: '{{ .X '}\n", "WATCHER_NOTIFY_URLS=a b,c"},
		{"a: &a [*a]\n", ""},
		{"x: &x {a: 1}\nlog: *x\n", ""},
		{"log:\n  <<: {level: info}\n", ""},
		{"- 1\n", "WATCHER_FOO=1"},
		{"log: {level: info}\n---\nlog: {}\n", ""},
		{"watch: {label_enable: yes}\n", "WATCHER_WATCH_LABEL_ENABLE=maybe\nWATCHER_REGISTRY_AUTH_X_HOST="},
	}
	for _, s := range seeds {
		f.Add([]byte(s.yml), s.env)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, env string) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var environ []string
		for _, line := range strings.Split(env, "\n") {
			if line != "" {
				environ = append(environ, line)
			}
		}
		c, err := Load(path, environ)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Load returned %T %v, want *Error", err, err)
			}
			if s := e.Error(); strings.ContainsAny(s, "\n\r") {
				t.Fatalf("Error() is not one line: %q", s)
			}
			return
		}
		// A loaded config is valid on its own.
		l := &loader{src: map[string]source{}}
		if err := l.validate(c); err != nil {
			t.Fatalf("Load returned a config that does not validate: %v\n%+v", err, c)
		}
		if _, err := c.CronSchedule(); err != nil {
			t.Fatalf("CronSchedule() = %v after a successful Load", err)
		}
		_ = c.Redacted()
	})
}
