package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// countingProxy sits between a daemon and the engine (a unix socket each) and counts the daemon's
// Engine API requests the way the bench's own client hook does, so the real binary's engine calls
// are measured too. Streams (events, waits) pass through unbuffered.
type countingProxy struct {
	Host string // unix://<socket>, the daemon's DOCKER_HOST
	api  *apiCounter
	srv  *http.Server
	dir  string
}

func startCountingProxy(engineHost string) (*countingProxy, error) {
	upstream, ok := strings.CutPrefix(engineHost, "unix://")
	if !ok {
		return nil, fmt.Errorf("the engine must be on a unix socket, not %q", engineHost)
	}
	dir, err := os.MkdirTemp("", "wbp")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &countingProxy{Host: "unix://" + sock, api: &apiCounter{n: map[string]int{}}, dir: dir}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "engine"})
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", upstream)
	}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = p.api.hook(r)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *countingProxy) Close() {
	_ = p.srv.Close()
	os.RemoveAll(p.dir)
}
