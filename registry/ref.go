package registry

import (
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// parseRef parses a reference the way the engine reads Config.Image: no registry means Docker Hub
// (index.docker.io, "library/" for official images), no tag means "latest".
func parseRef(s string) (name.Reference, error) {
	return name.ParseReference(s, name.WeakValidation)
}

// localDigests returns the digests among repoDigests ("repo@sha256:…", any spelling of the
// repository) that belong to repo, in their original order.
func localDigests(repoDigests []string, repo name.Repository) []string {
	return newParser().localDigests(repoDigests, repo.Name())
}

// isLoopback reports whether a registry host ("host", "host:port", "[::1]:port") is this machine:
// localhost, *.localhost or an address in 127.0.0.0/8 or ::1. Only these are spoken to over plain
// HTTP, as the engine does by default.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// scheme is the URL scheme for a registry host: http for loopback registries, https for all others.
func scheme(host string) string {
	if isLoopback(host) {
		return "http"
	}
	return "https"
}

// isDockerHub reports whether host is Docker Hub's registry, where a manifest GET counts as a pull
// against the rate limit.
func isDockerHub(host string) bool {
	switch strings.ToLower(host) {
	case "index.docker.io", "registry-1.docker.io", "docker.io":
		return true
	}
	return false
}

// normalizeHost turns the ways people write a registry in config ("docker.io",
// "https://index.docker.io/v1/", "ghcr.io") into the host go-containerregistry uses.
func normalizeHost(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "https://")
	s = strings.TrimPrefix(s, "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	s = strings.ToLower(s)
	if isDockerHub(s) {
		return name.DefaultRegistry
	}
	return s
}
