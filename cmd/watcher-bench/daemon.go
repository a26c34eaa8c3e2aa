package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemonResult is a real `watcher run` process's memory with the check scenario's containers.
type daemonResult struct {
	idle      int64 // VmRSS, KiB, after start and a settle
	peak      int64 // VmHWM, KiB, after a check cycle over HTTP
	idleAfter int64 // VmRSS, KiB, after the cycle and a settle
	cycle     time.Duration
	watched   int
}

func (b *bench) daemonMemory(ctx context.Context, scope string, want int) (*daemonResult, error) {
	dir, err := os.MkdirTemp("", "watcher-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "watcher")
	// As `make build` builds it.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/watcher")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building ./cmd/watcher (run from the repository root): %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_ = os.MkdirAll(filepath.Join(dir, "state"), 0o755)
	_ = os.MkdirAll(filepath.Join(dir, "docker"), 0o755)
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{
		"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"),
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"), // no credentials from this machine
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"WATCHER_STATE_DIR=" + filepath.Join(dir, "state"),
		"WATCHER_WATCH_SCOPE=" + scope,
		"WATCHER_SCHEDULE=@every 1h",
		"WATCHER_HTTP_LISTEN=" + addr,
		"WATCHER_HTTP_TOKEN=bench-token-0123456789",
	}
	logFile, _ := os.Create(filepath.Join(dir, "daemon.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}()
	pid := cmd.Process.Pid
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			return nil, fmt.Errorf("daemon not healthy after 30s: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := &daemonResult{}
	time.Sleep(5 * time.Second)
	r.idle = procStatus(pid, "VmRSS")

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/update?wait=true", nil)
	req.Header.Set("Authorization", "Bearer bench-token-0123456789")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	var rep struct {
		Containers []struct{ Outcome string } `json:"containers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	r.cycle = time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("POST /v1/update?wait=true: %d %v", resp.StatusCode, err)
	}
	for _, c := range rep.Containers {
		if c.Outcome == "up_to_date" {
			r.watched++
		}
	}
	if r.watched != want {
		return nil, fmt.Errorf("daemon cycle: %d of %d containers up to date (%d lines)", r.watched, want, len(rep.Containers))
	}
	r.peak = procStatus(pid, "VmHWM")
	time.Sleep(5 * time.Second)
	r.idleAfter = procStatus(pid, "VmRSS")
	logf("daemon: idle %d KiB, peak %d KiB, after cycle %d KiB; cycle over HTTP %s", r.idle, r.peak, r.idleAfter, r.cycle.Round(time.Millisecond))
	return r, nil
}

// procStatus reads a "Key:   123 kB" line of /proc/pid/status, in KiB.
func procStatus(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}
