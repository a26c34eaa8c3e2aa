package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemonResult is a real `watcher run` process with the check scenario's containers: its memory
// and its check cycles, triggered over HTTP as a user would.
type daemonResult struct {
	watched   int
	images    int
	idle      int64 // VmRSS, KiB, after start and a settle (the inventory's first resync done)
	peak      int64 // VmHWM, KiB, after the cycles
	idleAfter int64 // VmRSS, KiB, after the cycles and a settle
	// idleMem and afterMem split idle and idleAfter: the binary's and the state file's pages
	// (file-backed) against the heap, stacks and the runtime's own (anonymous), and the heap.
	idleMem, afterMem memSplit
	// aged is VmRSS (and its split) idle after agedRuns runs in all; restarted, idle after a
	// restart on that state file.
	aged, restarted       int64
	agedMem, restartedMem memSplit
	cold                  time.Duration
	warm                  time.Duration   // median of the warm cycles' own duration (the run report's)
	warmHTTP              time.Duration   // median of the same cycles' POST /v1/update?wait=true round trips
	walls                 []time.Duration // each warm cycle's own duration
	warmAPI               string          // the first warm cycle's Engine API requests
	check                 *checkResult    // the in-process check of the same containers: its floors
}

// daemonBinary builds ./cmd/watcher as `make build` does, once per bench run.
func (b *bench) daemonBinary() (string, error) {
	if b.binary != "" {
		return b.binary, nil
	}
	dir, err := os.MkdirTemp("", "watcher-bench-bin")
	if err != nil {
		return "", err
	}
	b.cleanups = append(b.cleanups, func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "watcher")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/watcher")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ./cmd/watcher (run from the repository root): %v\n%s", err, out)
	}
	b.binary = bin
	return bin, nil
}

// daemon is one `watcher run` process of the bench.
type daemon struct {
	api   *apiCounter // its Engine API requests (through a counting proxy)
	cmd   *exec.Cmd
	dir   string
	base  string // http://127.0.0.1:port
	log   *os.File
	proxy *countingProxy
}

const daemonToken = "bench-token-0123456789"

// startDaemon runs `watcher run` watching scope (the bench's containers only), schedule hourly,
// and waits until /healthz answers. Its state file is in dir, a new directory when "".
func (b *bench) startDaemon(scope, dir string) (*daemon, error) {
	bin, err := b.daemonBinary()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "watcher-bench"); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_ = os.MkdirAll(filepath.Join(dir, "state"), 0o755)
	_ = os.MkdirAll(filepath.Join(dir, "docker"), 0o755)
	proxy, err := startCountingProxy(os.Getenv("DOCKER_HOST"))
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, base: "http://" + addr, cmd: exec.Command(bin, "run"), api: proxy.api, proxy: proxy}
	d.cmd.Env = []string{
		"DOCKER_HOST=" + proxy.Host,
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"), // no credentials from this machine
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
		"WATCHER_STATE_DIR=" + filepath.Join(dir, "state"),
		"WATCHER_WATCH_SCOPE=" + scope,
		"WATCHER_SCHEDULE=@every 1h",
		"WATCHER_HTTP_LISTEN=" + addr,
		"WATCHER_HTTP_TOKEN=" + daemonToken,
	}
	d.log, _ = os.OpenFile(filepath.Join(dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		proxy.Close()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := nethttp.Get(d.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			d.stop()
			return nil, fmt.Errorf("daemon not healthy after 30s: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the daemon and removes its directory.
func (d *daemon) stop() {
	d.halt()
	os.RemoveAll(d.dir)
}

// halt ends the daemon (SIGTERM, then SIGKILL after 15 s), keeping its directory.
func (d *daemon) halt() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.log.Close()
	d.proxy.Close()
}

// cycle triggers one run over HTTP and waits for its report: the run's own duration (its
// report's start to finish), the round trip, and how many lines were up to date.
func (d *daemon) cycle(ctx context.Context) (own, http time.Duration, upToDate int, err error) {
	req, _ := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, d.base+"/v1/update?wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+daemonToken)
	start := time.Now()
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	var rep struct {
		StartedAt  time.Time                  `json:"started_at"`
		FinishedAt time.Time                  `json:"finished_at"`
		Containers []struct{ Outcome string } `json:"containers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	http = time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		return 0, 0, 0, fmt.Errorf("POST /v1/update?wait=true: %d %v", resp.StatusCode, err)
	}
	for _, c := range rep.Containers {
		if c.Outcome == "up_to_date" {
			upToDate++
		}
	}
	return rep.FinishedAt.Sub(rep.StartedAt), http, upToDate, nil
}

// daemonScenario measures a real daemon watching the check scenario's want containers: its
// memory idle after start, a first (cold) cycle and then c.cycles warm ones over HTTP, its peak
// and its memory idle again.
func (b *bench) daemonScenario(ctx context.Context, c config, scope string, want, images int) (*daemonResult, error) {
	d, err := b.startDaemon(scope, "")
	if err != nil {
		return nil, err
	}
	defer func() { // the restarted daemon, when there is one
		if d != nil {
			d.stop()
		}
	}()
	pid := d.cmd.Process.Pid
	r := &daemonResult{watched: want, images: images}
	time.Sleep(5 * time.Second) // the inventory's first resync, and the runtime settling
	r.idle = procStatus(pid, "VmRSS")
	r.idleMem = d.memSplit(ctx, pid)
	cold, _, n, err := d.cycle(ctx)
	if err != nil {
		return nil, err
	}
	if n != want {
		return nil, fmt.Errorf("daemon cycle: %d of %d containers up to date", n, want)
	}
	r.cold = cold
	var https []time.Duration
	d.api.Reset()
	for i := range c.cycles {
		own, rt, n, err := d.cycle(ctx)
		if err != nil {
			return nil, err
		}
		if n != want {
			return nil, fmt.Errorf("daemon cycle: %d of %d containers up to date", n, want)
		}
		r.walls, https = append(r.walls, own), append(https, rt)
		if i == 0 {
			r.warmAPI = d.api.String()
		}
	}
	r.warm, r.warmHTTP = median(r.walls), median(https)
	r.peak = procStatus(pid, "VmHWM")
	time.Sleep(5 * time.Second)
	r.idleAfter = procStatus(pid, "VmRSS")
	r.afterMem = d.memSplit(ctx, pid)
	logf("daemon %d/%d: idle %d KiB (%s), cold cycle %s, warm median %s of %v (HTTP round trip %s; engine %s), peak %d KiB, idle after %d KiB (%s)",
		want, images, r.idle, r.idleMem, cold.Round(time.Millisecond), r.warm.Round(100*time.Microsecond), roundAll(r.walls), r.warmHTTP.Round(100*time.Microsecond), r.warmAPI, r.peak, r.idleAfter, r.afterMem)
	if d, err = b.agedDaemon(ctx, d, r, scope, want, c.cycles+1); err != nil {
		return nil, err
	}
	return r, nil
}

// agedRuns: a daemon that has run this often keeps as many reports in memory as it ever will
// (its last 32 runs') and has that many in its state file.
const agedRuns = 32

// agedDaemon measures d idle after agedRuns runs in all (done of them already), then a daemon
// restarted on its state file, which it returns (d is halted; nil when the restart failed).
func (b *bench) agedDaemon(ctx context.Context, d *daemon, r *daemonResult, scope string, want, done int) (*daemon, error) {
	for range agedRuns - done {
		if _, _, n, err := d.cycle(ctx); err != nil || n != want {
			return d, fmt.Errorf("daemon cycle: %d of %d containers up to date (%v)", n, want, err)
		}
	}
	time.Sleep(5 * time.Second)
	r.aged, r.agedMem = procStatus(d.cmd.Process.Pid, "VmRSS"), d.memSplit(ctx, d.cmd.Process.Pid)
	d.halt()
	d, err := b.startDaemon(scope, d.dir)
	if err != nil {
		return nil, fmt.Errorf("restarting the daemon on its state file: %w", err)
	}
	time.Sleep(5 * time.Second)
	r.restarted, r.restartedMem = procStatus(d.cmd.Process.Pid, "VmRSS"), d.memSplit(ctx, d.cmd.Process.Pid)
	logf("daemon %d: idle after %d runs %d KiB (%s); restarted on that state file, idle %d KiB (%s)",
		want, agedRuns, r.aged, r.agedMem, r.restarted, r.restartedMem)
	return d, nil
}

// memSplit is where a daemon's resident memory is: KiB from /proc/pid/status, bytes from its
// /metrics (the Go runtime's own counters).
type memSplit struct {
	file, anon           int64 // RssFile, RssAnon
	heapAlloc, heapInUse int64 // go_memstats_heap_alloc_bytes (live and garbage not collected), _inuse_bytes (their spans)
}

func (m memSplit) String() string {
	return fmt.Sprintf("file-backed %d KiB, anonymous %d KiB; heap allocated %.1f MiB in %.1f MiB of spans",
		m.file, m.anon, float64(m.heapAlloc)/(1<<20), float64(m.heapInUse)/(1<<20))
}

func (d *daemon) memSplit(ctx context.Context, pid int) memSplit {
	m := memSplit{file: procStatus(pid, "RssFile"), anon: procStatus(pid, "RssAnon"), heapAlloc: -1, heapInUse: -1}
	req, _ := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, d.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+daemonToken)
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		name, v, _ := strings.Cut(s.Text(), " ")
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil:
		case name == "go_memstats_heap_alloc_bytes":
			m.heapAlloc = int64(f)
		case name == "go_memstats_heap_inuse_bytes":
			m.heapInUse = int64(f)
		}
	}
	return m
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
