package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/internal/testcerts"
)

// certs writes a valid set, another set (whose key belongs to another certificate), an expired
// client certificate and junk, and returns the directory; tests refer to the files as $DIR/...
func certs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"ok", "other", "expired"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testcerts.Write(filepath.Join(dir, "ok"), testcerts.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testcerts.Write(filepath.Join(dir, "other"), testcerts.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testcerts.Write(filepath.Join(dir, "expired"), testcerts.Options{ClientNotAfter: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "junk.pem", "not a certificate\n")
	return dir
}

func TestHostsValid(t *testing.T) {
	dir := certs(t)
	yml := `watch:
  scope: prod
hosts:
  - name: local
    host: unix:///var/run/docker.sock
  - name: edge-1
    host: tcp://10.0.0.5:2376
    tls_ca_file: $DIR/ok/ca.pem
    tls_cert_file: $DIR/ok/cert.pem
    tls_key_file: $DIR/ok/key.pem
    scope: edge
  - name: edge.2
    host: tcp://edge2.example:2376
    tls_verify: false
    scope: ""
`
	c, _, err := load(t, dir, yml)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := []Host{
		{Name: "local", Host: "unix:///var/run/docker.sock", TLSVerify: true, Scope: "prod"},
		{Name: "edge-1", Host: "tcp://10.0.0.5:2376", TLS: true, TLSCAFile: dir + "/ok/ca.pem", TLSCertFile: dir + "/ok/cert.pem",
			TLSKeyFile: dir + "/ok/key.pem", TLSVerify: true, Scope: "edge"},
		{Name: "edge.2", Host: "tcp://edge2.example:2376", TLS: true, TLSVerify: false, Scope: ""},
	}
	if !reflect.DeepEqual(c.Hosts, want) {
		t.Errorf("Hosts =\n%+v\nwant\n%+v", c.Hosts, want)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "hosts.edge.2.tls_verify: false: the engine's certificate is not verified") {
		t.Errorf("Warnings = %q, want one about edge.2's tls_verify", c.Warnings)
	}

	for _, empty := range []string{"hosts: []\n", "hosts:\n", "-"} {
		c, _, err := load(t, dir, empty)
		if err != nil || c.Hosts != nil {
			t.Errorf("Load(%q) = %+v, %v; want no hosts (the one engine of DOCKER_HOST)", empty, c.Hosts, err)
		}
	}

	c, _, err = load(t, dir, "hosts:\n  - name: plain\n    host: tcp://127.0.0.1:2375\n")
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "hosts.plain.host: tcp://127.0.0.1:2375 is plain TCP") {
		t.Errorf("plain TCP: %v, warnings %q; want one warning naming hosts.plain.host", err, c.Warnings)
	}
}

// TestHostsErrors: every bad entry is one error naming the entry and the key, at its line.
func TestHostsErrors(t *testing.T) {
	dir := certs(t)
	entry := func(lines ...string) string {
		return "hosts:\n  - name: a\n    host: unix:///a.sock\n  - " + strings.Join(lines, "\n    ") + "\n"
	}
	tls := func(ca, cert, key string) string {
		return entry("name: edge", "host: tcp://127.0.0.1:2376", "tls_ca_file: "+ca, "tls_cert_file: "+cert, "tls_key_file: "+key)
	}
	tests := []struct {
		name, yml, key string
		line           int
		msg            string
	}{
		{"not a list", "hosts: {a: b}\n", "hosts", 1, "want a list of hosts"},
		{"entry not mapping", "hosts:\n  - edge\n", "hosts[0]", 2, "want a mapping with name and host"},
		{"unknown key", entry("name: b", "host: unix:///b.sock", "tls_cafile: x"), "hosts[1].tls_cafile", 6, "did you mean tls_ca_file?"},
		{"duplicate key", entry("name: b", "name: c"), "hosts[1].name", 5, "duplicate key"},
		{"missing name", entry("host: unix:///b.sock"), "hosts[1].name", 4, "missing: every host needs a name"},
		{"bad name", entry("name: edge/1", "host: unix:///b.sock"), "hosts[1].name", 4, `"edge/1" is not a host name`},
		{"duplicate name", entry("name: a", "host: unix:///b.sock"), "hosts[1].name", 4, `duplicate name "a" (first used by hosts[0] at line 2)`},
		{"missing host", entry("name: b"), "hosts.b.host", 4, "missing: want unix:///path/to/docker.sock or tcp://host:port"},
		{"relative socket", entry("name: b", "host: unix://b.sock"), "hosts.b.host", 5, "absolute path"},
		{"tcp without port", entry("name: b", "host: tcp://10.0.0.5"), "hosts.b.host", 5, "with a port"},
		{"tcp with path", entry("name: b", "host: tcp://10.0.0.5:2376/x"), "hosts.b.host", 5, "nothing else"},
		{"http scheme", entry("name: b", "host: https://10.0.0.5:2376"), "hosts.b.host", 5, `unsupported scheme "https"`},
		{"no scheme", entry("name: b", "host: 10.0.0.5:2376"), "hosts.b.host", 5, "is not an engine URL"},
		{"ssh", entry("name: b", "host: ssh://me@edge"), "hosts.b.host", 5, "ssh:// is not supported"},
		{"tls on unix", entry("name: b", "host: unix:///b.sock", "tls_verify: true"), "hosts.b.tls_verify", 6, "TLS applies to tcp:// hosts only"},
		{"bad bool", entry("name: b", "host: tcp://h:1", "tls_verify: maybe"), "hosts[1].tls_verify", 6, "want true or false"},
		{"list value", entry("name: b", "host: [a]"), "hosts[1].host", 5, "want a string, got a list"},
		{"control character", entry("name: b", `host: "unix:///b.sock\n"`), "hosts[1].host", 5, "control character"},
		{"cert without key", entry("name: b", "host: tcp://h:1", "tls_cert_file: $DIR/ok/cert.pem"), "hosts.b.tls_cert_file", 6, "set without tls_key_file"},
		{"key without cert", entry("name: b", "host: tcp://h:1", "tls_key_file: $DIR/ok/key.pem"), "hosts.b.tls_key_file", 6, "set without tls_cert_file"},
		{"unreadable ca", tls("$DIR/nope.pem", "$DIR/ok/cert.pem", "$DIR/ok/key.pem"), "hosts.edge.tls_ca_file", 6, "cannot read: stat " + dir + "/nope.pem: no such file"},
		{"junk ca", tls("$DIR/junk.pem", "$DIR/ok/cert.pem", "$DIR/ok/key.pem"), "hosts.edge.tls_ca_file", 6, "holds no PEM certificate"},
		{"junk cert", tls("$DIR/ok/ca.pem", "$DIR/junk.pem", "$DIR/ok/key.pem"), "hosts.edge.tls_cert_file", 7, "holds no PEM certificate"},
		{"key is a cert", tls("$DIR/ok/ca.pem", "$DIR/ok/cert.pem", "$DIR/ok/ca.pem"), "hosts.edge.tls_key_file", 8, "does not belong to tls_cert_file"},
		{"mismatched key", tls("$DIR/ok/ca.pem", "$DIR/ok/cert.pem", "$DIR/other/key.pem"), "hosts.edge.tls_key_file", 8, "does not belong to tls_cert_file " + dir + "/ok/cert.pem: private key does not match public key"},
		{"expired cert", tls("$DIR/expired/ca.pem", "$DIR/expired/cert.pem", "$DIR/expired/key.pem"), "hosts.edge.tls_cert_file", 7, "expired on"},
		{"key is a directory", tls("$DIR/ok/ca.pem", "$DIR/ok/cert.pem", "$DIR/ok"), "hosts.edge.tls_key_file", 8, "is not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := load(t, dir, tc.yml)
			var e *Error
			if !errors.As(err, &e) || e.Key != tc.key || e.Line != tc.line || e.File != path || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("Load = %v\nwant key %s at line %d with %q", err, tc.key, tc.line, tc.msg)
			}
			if s := err.Error(); strings.Contains(s, "\n") || !strings.HasPrefix(s, "config: "+tc.key+": ") {
				t.Errorf("error %q: want one line starting with the key", s)
			}
		})
	}
}

func TestHostsNotFromEnvironment(t *testing.T) {
	_, _, err := load(t, t.TempDir(), "-", "WATCHER_HOSTS=a")
	if err == nil || !strings.Contains(err.Error(), "WATCHER_HOSTS: unknown environment variable; hosts are set in the config file only") {
		t.Errorf("Load(WATCHER_HOSTS) = %v, want it refused as a file-only key", err)
	}
}
