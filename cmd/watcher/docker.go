package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/config"
)

// dockerOptions reads the Docker connection the way Watchtower did — DOCKER_HOST or -H,
// DOCKER_TLS_VERIFY or --tlsverify, DOCKER_CERT_PATH, DOCKER_API_VERSION or -a — and returns the
// client options that the environment alone (engine.Connect) does not give, and warnings to log.
//
// Two things differ, both for safety: the API version is never pinned (a pinned version is what
// broke Watchtower on Docker 29; it is negotiated), and TLS verification asked for without
// certificates is an error, where Watchtower's client quietly connected without TLS.
func dockerOptions(environ []string, flags []config.Flag) (opts []client.Opt, warnings []string, err error) {
	host, hostFrom, err := config.WatchtowerValue(environ, flags, "DOCKER_HOST")
	if err != nil {
		return nil, nil, err
	}
	if strings.HasPrefix(hostFrom, "-") {
		opts = append(opts, client.WithHost(host))
	}
	// The Docker client verifies whenever DOCKER_TLS_VERIFY is set at all ("false" too), and so
	// did Watchtower, which only ever set it (to 1) for --tlsverify.
	verifyFrom := ""
	if lookupEnv(environ, "DOCKER_TLS_VERIFY") != "" {
		verifyFrom = "DOCKER_TLS_VERIFY"
	}
	if v, from, err := config.WatchtowerValue(nil, flags, "DOCKER_TLS_VERIFY"); err != nil {
		return nil, nil, err
	} else if v == "true" {
		verifyFrom = from
	}
	wantsTLS := verifyFrom != ""
	certs := lookupEnv(environ, "DOCKER_CERT_PATH")
	tcp := strings.HasPrefix(host, "tcp://") || strings.HasPrefix(host, "https://")
	switch {
	case wantsTLS && certs == "" && tcp:
		return nil, nil, fmt.Errorf("%s: TLS verification needs DOCKER_CERT_PATH, the directory with ca.pem, cert.pem and key.pem; without it the connection to %s would not use TLS at all", verifyFrom, host)
	case wantsTLS && certs != "" && strings.HasPrefix(verifyFrom, "-"):
		// The flag: the environment did not ask for verification, so engine.Connect would not.
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(certs, "ca.pem"), filepath.Join(certs, "cert.pem"), filepath.Join(certs, "key.pem")))
	}
	if v, from, _ := config.WatchtowerValue(environ, flags, "DOCKER_API_VERSION"); v != "" {
		warnings = append(warnings, fmt.Sprintf("%s=%s is ignored: watcher negotiates the API version with the engine (a pinned version is what broke Watchtower on Docker 29)", from, v))
	}
	return opts, warnings, nil
}
