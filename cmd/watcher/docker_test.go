package main

import (
	"strings"
	"testing"

	"github.com/watcher-dev/watcher/config"
)

// TestDockerOptions: the Docker connection as Watchtower read it — -H and --tlsverify add
// options, DOCKER_API_VERSION and -a only warn (the version is negotiated), and TLS
// verification asked for a tcp:// engine without certificates is refused.
func TestDockerOptions(t *testing.T) {
	tests := []struct {
		env      []string
		flags    []config.Flag
		opts     int
		warnings []string
		err      string
	}{
		{env: nil, opts: 0},
		{env: []string{"DOCKER_HOST=tcp://a:2375"}, opts: 0}, // the environment is engine.Connect's own
		{flags: []config.Flag{{Name: "--host", Var: "DOCKER_HOST", Value: "tcp://b:2375"}}, opts: 1},
		{env: []string{"DOCKER_API_VERSION=1.25"}, warnings: []string{"DOCKER_API_VERSION=1.25 is ignored"}},
		{flags: []config.Flag{{Name: "--api-version", Var: "DOCKER_API_VERSION", Value: "1.44"}}, warnings: []string{"--api-version=1.44 is ignored"}},
		{env: []string{"DOCKER_CERT_PATH=/certs"}, flags: []config.Flag{{Name: "--tlsverify", Var: "DOCKER_TLS_VERIFY", Value: "true"}, {Name: "--host", Var: "DOCKER_HOST", Value: "tcp://b:2376"}}, opts: 2},
		{env: []string{"DOCKER_CERT_PATH=/certs", "DOCKER_TLS_VERIFY=1", "DOCKER_HOST=tcp://b:2376"}, opts: 0}, // engine.Connect reads these itself
		{env: []string{"DOCKER_TLS_VERIFY=1", "DOCKER_HOST=tcp://b:2376"}, err: "DOCKER_TLS_VERIFY: TLS verification needs DOCKER_CERT_PATH"},
		{env: []string{"DOCKER_TLS_VERIFY=1"}, opts: 0}, // a unix socket: nothing to verify
		{flags: []config.Flag{{Name: "--tlsverify", Var: "DOCKER_TLS_VERIFY", Value: "false"}}, opts: 0},
	}
	for _, tc := range tests {
		opts, warnings, err := dockerOptions(tc.env, tc.flags)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("dockerOptions(%v, %v) error = %v, want %q", tc.env, tc.flags, err, tc.err)
			}
			continue
		case err != nil:
			t.Errorf("dockerOptions(%v, %v) error = %v", tc.env, tc.flags, err)
			continue
		}
		if len(opts) != tc.opts || len(warnings) != len(tc.warnings) {
			t.Errorf("dockerOptions(%v, %v) = %d options, warnings %q; want %d and %q", tc.env, tc.flags, len(opts), warnings, tc.opts, tc.warnings)
			continue
		}
		for i, w := range tc.warnings {
			if !strings.Contains(warnings[i], w) {
				t.Errorf("warning %q, want %q", warnings[i], w)
			}
		}
	}
}
