package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// The registry runs in a child process (this program with -registry-child), so the allocations
// and CPU profile of a check cycle show the watcher's side only, not the registry serving it.
// The child serves the registry on one 127.0.0.1 port and a control API on another.

// registryChild is the child's main: it runs until its stdin closes (the parent exited).
func registryChild() error {
	reg, stop, err := testenv.StartRegistry()
	if err != nil {
		return err
	}
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(reg.Requests()) })
	mux.HandleFunc("POST /reset", func(http.ResponseWriter, *http.Request) { reg.ResetRequests() })
	mux.HandleFunc("POST /token", func(http.ResponseWriter, *http.Request) { reg.RequireToken("", "") })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(l, mux) }()
	fmt.Printf("%s %s\n", reg.Host, l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// regClient is the parent's handle on the child registry.
type regClient struct {
	Host string // 127.0.0.1:PORT of the registry
	ctrl string
	cmd  *exec.Cmd
	in   io.WriteCloser
}

func startRegistryChild() (*regClient, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-registry-child")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("registry child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("registry child said %q", line)
	}
	return &regClient{Host: f[0], ctrl: "http://" + f[1], cmd: cmd, in: in}, nil
}

func (r *regClient) Close() {
	_ = r.in.Close()
	_ = r.cmd.Wait()
}

func (r *regClient) post(path string) {
	resp, err := http.Post(r.ctrl+path, "", nil)
	if err == nil {
		resp.Body.Close()
	}
}

func (r *regClient) Reset()        { r.post("/reset") }
func (r *regClient) RequireToken() { r.post("/token") }

// regCounts are the registry requests of one measured step.
type regCounts struct {
	Heads, Gets, Tokens, Pings, Other int
}

func (c regCounts) String() string {
	s := fmt.Sprintf("%d HEAD, %d GET, %d token, %d ping", c.Heads, c.Gets, c.Tokens, c.Pings)
	if c.Other > 0 {
		s += fmt.Sprintf(", %d other", c.Other)
	}
	return s
}

func (r *regClient) Counts() regCounts {
	var reqs []testenv.Request
	resp, err := http.Get(r.ctrl + "/requests")
	if err != nil {
		return regCounts{Other: -1}
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&reqs)
	var c regCounts
	for _, q := range reqs {
		switch {
		case strings.Contains(q.Path, "/manifests/") && q.Method == http.MethodHead:
			c.Heads++
		case strings.Contains(q.Path, "/manifests/") && q.Method == http.MethodGet:
			c.Gets++
		case strings.HasPrefix(q.Path, "/token"):
			c.Tokens++
		case q.Path == "/v2/" || q.Path == "/v2":
			c.Pings++
		default:
			c.Other++
		}
	}
	return c
}
