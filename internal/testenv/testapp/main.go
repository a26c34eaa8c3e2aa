// Command testapp is the program inside every test image: a tiny static binary that behaves like a
// well- or badly-behaved service, as its environment tells it to. It touches the network only when
// told to serve or probe (net.go), and then only the networks of the test's own containers.
//
//	APP_EXIT_CODE=N, APP_EXIT_AFTER=D  exit with N after D (default D=0 when only the code is set)
//	APP_SELF_KILL_AFTER=D              SIGKILL itself after D (exit 137)
//	APP_CRASH_AFTER=D                  die of SIGSEGV after D (exit 139)
//	APP_IGNORE_TERM=1                  ignore SIGTERM (only SIGKILL stops it)
//	APP_UNHEALTHY=1                    `testapp health` fails (so a HEALTHCHECK reports unhealthy)
//	APP_HEALTHY_AFTER=D                `testapp health` fails until D after start
//	APP_WRITE=path=content[;...]       write these files at start if they do not exist yet
//	APP_ALLOC_MB=N                     allocate and touch N MiB (to provoke the OOM killer)
//	APP_SERVE=addr                     answer each TCP connection on addr with APP_VERSION
//	APP_PROBE=host:port, APP_PROBE_EVERY=D  connect every D (default 50ms), print each outcome
//
// On SIGTERM (or the signal named by APP_STOP_SIGNAL) it exits 0, like a service shutting down cleanly.
// `testapp health` is the healthcheck command; `testapp sleep` just runs (the default). Run as
// /sh (images built with ImageSpec.Shell) it is a small POSIX shell for `sh -c` (shell.go).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const startFile = "/tmp/testapp.started"

func main() {
	if filepath.Base(os.Args[0]) == "sh" {
		os.Exit(shell(os.Args))
	}
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health())
	}
	if os.Getpid() == 1 && os.Getenv("APP_CHILD") != "1" {
		os.Exit(supervise())
	}
	_ = os.WriteFile(startFile, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644)
	writeFiles(os.Getenv("APP_WRITE"))
	fmt.Printf("testapp %s started\n", os.Getenv("APP_VERSION"))

	if mb, _ := strconv.Atoi(os.Getenv("APP_ALLOC_MB")); mb > 0 {
		keep := make([][]byte, 0, mb)
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		defer func() { _ = keep }()
	}

	sigs := make(chan os.Signal, 1)
	stop := syscall.SIGTERM
	if s := os.Getenv("APP_STOP_SIGNAL"); s == "SIGINT" || s == "INT" {
		stop = syscall.SIGINT
	} else if s == "SIGUSR1" || s == "USR1" {
		stop = syscall.SIGUSR1
	}
	if os.Getenv("APP_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(sigs, stop)
	}

	if addr := os.Getenv("APP_SERVE"); addr != "" {
		serve(addr)
	}
	if addr := os.Getenv("APP_PROBE"); addr != "" {
		every, err := time.ParseDuration(os.Getenv("APP_PROBE_EVERY"))
		if err != nil || every <= 0 {
			every = 50 * time.Millisecond
		}
		probe(addr, every)
	}
	if code := os.Getenv("APP_EXIT_CODE"); code != "" {
		n, _ := strconv.Atoi(code)
		after(os.Getenv("APP_EXIT_AFTER"), func() { os.Exit(n) })
	}
	if d := os.Getenv("APP_SELF_KILL_AFTER"); d != "" {
		after(d, func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) })
	}
	if d := os.Getenv("APP_CRASH_AFTER"); d != "" {
		after(d, func() {
			// Go's runtime owns SIGSEGV and turns it into a panic (exit 2); put the kernel's
			// default action back so the process dies of the signal like a C program would.
			defaultAction(syscall.SIGSEGV)
			_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		})
	}

	if os.Getenv("APP_IGNORE_TERM") == "1" {
		// Nothing but SIGKILL ends it. (A bare channel receive would be a deadlock the Go
		// runtime ends with exit 2.)
		for {
			time.Sleep(time.Hour)
		}
	}
	sig := <-sigs
	fmt.Printf("testapp got %v, exiting\n", sig)
	os.Exit(0)
}

// supervise runs the app as a child of PID 1. The kernel shields PID 1 of a namespace from
// signals it has no handler for, even SIGKILL and SIGSEGV sent to itself, so an app that must be
// able to die of a signal cannot be PID 1. Like a shell or tini, this parent forwards signals
// and exits with the child's code, or 128+n when the child died of signal n, which is exactly what
// the engine reports for a containerised process killed that way.
func supervise() int {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "APP_CHILD=1")
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 127
	}
	ignore := os.Getenv("APP_IGNORE_TERM") == "1"
	go func() {
		for s := range sigs {
			if s == syscall.SIGCHLD || s == syscall.SIGURG || (ignore && (s == syscall.SIGTERM || s == syscall.SIGINT)) {
				continue // not forwarded: a child still starting would die of it before it could ignore it
			}
			_ = cmd.Process.Signal(s)
		}
	}()
	_ = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		return 128 + int(ws.Signal())
	case ok:
		return ws.ExitStatus()
	}
	return cmd.ProcessState.ExitCode()
}

func after(d string, f func()) {
	dur, _ := time.ParseDuration(d)
	time.AfterFunc(dur, f)
}

func health() int {
	if os.Getenv("APP_UNHEALTHY") == "1" {
		return 1
	}
	if d := os.Getenv("APP_HEALTHY_AFTER"); d != "" {
		dur, _ := time.ParseDuration(d)
		b, err := os.ReadFile(startFile)
		if err != nil {
			return 1
		}
		ns, _ := strconv.ParseInt(string(b), 10, 64)
		if time.Since(time.Unix(0, ns)) < dur {
			return 1
		}
	}
	return 0
}

func writeFiles(spec string) {
	for _, kv := range strings.Split(spec, ";") {
		path, content, ok := strings.Cut(kv, "=")
		if !ok || path == "" {
			continue
		}
		if _, err := os.Stat(path); err == nil {
			continue
		}
		_ = os.WriteFile(path, []byte(content), 0o644)
	}
}

// defaultAction sets sig's disposition to SIG_DFL with rt_sigaction, beneath the Go runtime.
// The kernel's struct sigaction on linux/amd64 and linux/arm64: handler, flags, restorer, mask.
func defaultAction(sig syscall.Signal) {
	var act struct {
		handler  uintptr
		flags    uint64
		restorer uintptr
		mask     uint64
	}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}
