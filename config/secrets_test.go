package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenRules: a token shorter than 16 characters or holding whitespace or control characters
// is refused, naming the key (or its _file key) and never showing the token.
func TestTokenRules(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string { return writeFile(t, dir, name, content) }
	tests := []struct {
		name, yml string
		env       []string
		key, msg  string // key "" = accepted
	}{
		{name: "16 characters", env: []string{"WATCHER_HTTP_TOKEN=0123456789abcdef"}},
		{name: "16 characters, not ASCII", env: []string{"WATCHER_HTTP_TOKEN=ééééééééééééééé€"}},
		{name: "base64 of 32 bytes", yml: "http: {token: 'q8Yk1zP+3fG/9hJ2mN4vR6tX0wB5cE7aD1sL8uI3oQk='}\n"},
		{name: "15 characters", env: []string{"WATCHER_HTTP_TOKEN=0123456789abcde"}, key: "http.token", msg: "has 15 characters, at least 16 are needed"},
		{name: "short in the file", yml: "http:\n  token: hunter2\n", key: "http.token", msg: "has 7 characters"},
		{name: "short token_file", env: []string{"WATCHER_HTTP_TOKEN_FILE=" + file("short", "hunter2\n")}, key: "http.token_file", msg: "the token in " + filepath.Join(dir, "short") + " has 7 characters"},
		{name: "space inside", env: []string{"WATCHER_HTTP_TOKEN=0123456789 abcdef"}, key: "http.token", msg: "holds whitespace"},
		{name: "leading space", yml: "http: {token: ' 0123456789abcdef'}\n", key: "http.token", msg: "holds whitespace"},
		{name: "no-break space", env: []string{"WATCHER_HTTP_TOKEN=0123456789\u00a0abcdef"}, key: "http.token", msg: "holds whitespace"},
		{name: "tab", env: []string{"WATCHER_HTTP_TOKEN=0123456789\tabcdef"}, key: "http.token", msg: `control character '\t'`},
		{name: "newline in the file", yml: "http: {token: \"0123456789\\nabcdef\"}\n", key: "http.token", msg: `control character '\n'`},
		{name: "NUL", env: []string{"WATCHER_HTTP_TOKEN=0123456789\x00abcdef"}, key: "http.token", msg: `control character '\x00'`},
		{name: "DEL", env: []string{"WATCHER_HTTP_TOKEN=0123456789\x7fabcdef"}, key: "http.token", msg: `control character '\x7f'`},
		{name: "invalid UTF-8", env: []string{"WATCHER_HTTP_TOKEN=0123456789\xffabcdef"}, key: "http.token", msg: "invalid UTF-8"},
		{name: "two lines in token_file", yml: "http: {token_file: " + file("two", "0123456789abcdef\nsecond-line-here\n") + "}\n", key: "http.token_file", msg: `the value in ` + filepath.Join(dir, "two") + ` holds a control character '\n'`},
		{name: "CRLF in token_file is trimmed", env: []string{"WATCHER_HTTP_TOKEN_FILE=" + file("crlf", "0123456789abcdef\r\n")}},
		// the webhook secret obeys the same rules
		{name: "short webhook secret", env: []string{"WATCHER_HTTP_TOKEN=0123456789abcdef", "WATCHER_HTTP_WEBHOOK_SECRET=hunter2"}, key: "http.webhook_secret", msg: "the secret has 7 characters, at least 16 are needed"},
		{name: "webhook secret with a space", yml: "http: {token: 0123456789abcdef, webhook_secret: '0123456789 abcdef'}\n", key: "http.webhook_secret", msg: "the secret holds whitespace"},
		{name: "short webhook_secret_file", env: []string{"WATCHER_HTTP_TOKEN=0123456789abcdef", "WATCHER_HTTP_WEBHOOK_SECRET_FILE=" + file("hook", "hunter2\n")}, key: "http.webhook_secret_file", msg: "the secret in " + filepath.Join(dir, "hook") + " has 7 characters"},
		{name: "webhook secret and its file", yml: "http: {webhook_secret: 0123456789abcdef, webhook_secret_file: /x}\n", key: "http.webhook_secret_file", msg: "set only one of http.webhook_secret and http.webhook_secret_file"},
		{name: "webhook secret from a file", env: []string{"WATCHER_HTTP_TOKEN=0123456789abcdef", "WATCHER_HTTP_WEBHOOK_SECRET_FILE=" + file("hookok", "hook-0123456789abcdef\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadCase(t, dir, tt.yml, tt.env)
			if tt.key == "" {
				if err != nil || c.HTTP.Token == "" {
					t.Fatalf("Load = %v, token set %v; want it accepted", err, c.HTTP.Token != "")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Key != tt.key || !strings.Contains(e.Error(), tt.msg) {
				t.Fatalf("Load = %v, want an error about %s saying %q", err, tt.key, tt.msg)
			}
			for _, secret := range []string{"0123456789", "hunter2", "abcdef"} {
				if strings.Contains(e.Error(), secret) {
					t.Errorf("the error shows the token: %s", e)
				}
			}
		})
	}
}

// TestControlCharacters: a newline or other control character in any value is refused with the
// value quoted (secrets not shown), wherever it was set; notify.template alone may span lines.
func TestControlCharacters(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "pass\x00word\n")
	urls := writeFile(t, dir, "urls", "slack://tok\x1b[31m@chan\n")
	tests := []struct {
		name, yml string
		env       []string
		key, msg  string
	}{
		{name: "scope from env", env: []string{"WATCHER_WATCH_SCOPE=prod\nevil=1"}, key: "watch.scope", msg: `"prod\nevil=1" holds a control character '\n'`},
		{name: "scope in the file", yml: "watch:\n  scope: \"prod\\r\"\n", key: "watch.scope", msg: `"prod\r" holds a control character '\r'`},
		{name: "state_dir", yml: "state_dir: \"/data\\u0000x\"\n", key: "state_dir", msg: `"/data\x00x"`},
		{name: "listen", env: []string{"WATCHER_HTTP_LISTEN=:8080\u0085"}, key: "http.listen", msg: `control character '\u0085'`},
		{name: "tls_cert", env: []string{"WATCHER_HTTP_TLS_CERT=/c\n.pem", "WATCHER_HTTP_TLS_KEY=/k.pem"}, key: "http.tls_cert", msg: `"/c\n.pem"`},
		{name: "token_file path", env: []string{"WATCHER_HTTP_TOKEN_FILE=/run/secrets/t\n"}, key: "http.token_file", msg: `"/run/secrets/t\n"`},
		{name: "log level", yml: "log: {level: \"info\\n\"}\n", key: "log.level", msg: `"info\n"`},
		{name: "notify url", yml: "notify:\n  urls: [\"slack://tok@chan\\n\"]\n", key: "notify.urls", msg: `holds a control character '\n' (the secret is not shown)`},
		{name: "notify url from a file", env: []string{"WATCHER_NOTIFY_URLS_FILE=" + urls}, key: "notify.urls_file", msg: `the value in ` + urls + ` holds a control character '\x1b'`},
		{name: "template with a bell", yml: "notify: {template: \"a\\u0007b\"}\n", key: "notify.template", msg: `"a\ab"`},
		{name: "registry host", yml: "registry:\n  auth:\n    \"ghcr.io\\u0000\": {username: u, password: p}\n", key: "registry.auth.ghcr.io\x00", msg: `"ghcr.io\x00"`},
		{name: "registry username", yml: "registry:\n  auth:\n    ghcr.io: {username: \"me\\n\", password: p}\n", key: "registry.auth.ghcr.io.username", msg: `"me\n"`},
		{name: "registry password", env: []string{"WATCHER_REGISTRY_AUTH_X_HOST=ghcr.io", "WATCHER_REGISTRY_AUTH_X_USERNAME=u", "WATCHER_REGISTRY_AUTH_X_PASSWORD=pass\nword"}, key: "registry.auth.ghcr.io.password", msg: "(the secret is not shown)"},
		{name: "registry password_file", yml: "registry:\n  auth:\n    ghcr.io: {username: u, password_file: " + pw + "}\n", key: "registry.auth.ghcr.io.password_file", msg: `the value in ` + pw + ` holds a control character '\x00'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadCase(t, dir, tt.yml, tt.env)
			var e *Error
			if !errors.As(err, &e) || e.Key != tt.key || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("Load = %#v, want an error about %q containing %s", err, tt.key, tt.msg)
			}
			if s := e.Error(); strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("Error() = %q holds a control character", s)
			}
			for _, secret := range []string{"word", "tok"} {
				if strings.Contains(e.Msg, secret) {
					t.Errorf("the error shows a secret: %s", e)
				}
			}
		})
	}
	c, _, err := load(t, dir, "notify:\n  template: |\n    {{ .ID }}\n    \t{{ .Trigger }}\r\n", nil...)
	if err != nil || !strings.Contains(c.Notify.Template, "\n\t") {
		t.Errorf("a multi-line template = %v, %q; want it accepted", err, c.Notify.Template)
	}
}

// TestSecretFileWarnings: a secret file every user may read gives one warning naming the key,
// the file and its mode; one readable by its owner or group only gives none.
func TestSecretFileWarnings(t *testing.T) {
	dir := t.TempDir()
	secret := func(name string, mode os.FileMode, content string) string {
		p := writeFile(t, dir, name, content)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := "0123456789abcdef\n"
	tests := []struct {
		name string
		env  []string
		want []string // substrings of each warning, in order
	}{
		{"token 0400", []string{"WATCHER_HTTP_TOKEN_FILE=" + secret("t400", 0o400, tok)}, nil},
		{"token 0440", []string{"WATCHER_HTTP_TOKEN_FILE=" + secret("t440", 0o440, tok)}, nil},
		{"token 0600", []string{"WATCHER_HTTP_TOKEN_FILE=" + secret("t600", 0o600, tok)}, nil},
		{"token 0444", []string{"WATCHER_HTTP_TOKEN_FILE=" + secret("t444", 0o444, tok)}, []string{"config: http.token_file: " + filepath.Join(dir, "t444") + " is readable by every user (mode 0444)"}},
		{"token 0604", []string{"WATCHER_HTTP_TOKEN_FILE=" + secret("t604", 0o604, tok)}, []string{"(mode 0604)"}},
		{"every secret file", []string{
			"WATCHER_HTTP_TOKEN_FILE=" + secret("t644", 0o644, tok),
			"WATCHER_NOTIFY_URLS_FILE=" + secret("urls", 0o644, "slack://a@b\n"),
			"WATCHER_REGISTRY_AUTH_X_HOST=ghcr.io", "WATCHER_REGISTRY_AUTH_X_USERNAME=u",
			"WATCHER_REGISTRY_AUTH_X_PASSWORD_FILE=" + secret("pw", 0o444, "pw\n"),
			"WATCHER_HTTP_TLS_CERT=" + secret("cert.pem", 0o644, "cert"), "WATCHER_HTTP_TLS_KEY=" + secret("key.pem", 0o644, "key"),
		}, []string{"http.token_file:", "notify.urls_file:", "registry.auth.ghcr.io.password_file:", "http.tls_key: " + filepath.Join(dir, "key.pem")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", c.Warnings, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(c.Warnings[i], w) || !strings.Contains(c.Warnings[i], "chmod 0440") {
					t.Errorf("warning %d = %q, want it to say %q and how to fix it", i, c.Warnings[i], w)
				}
			}
		})
	}
}

// loadCase is load with no config file when yml is empty.
func loadCase(t *testing.T, dir, yml string, env []string) (Config, error) {
	t.Helper()
	if yml == "" {
		yml = "-"
	}
	c, _, err := load(t, dir, yml, env...)
	return c, err
}
