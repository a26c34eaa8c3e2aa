// Command testapp is the program inside every test image: a tiny static binary that behaves like a
// well- or badly-behaved service, as its environment tells it to. It never touches the network.
//
//	APP_EXIT_CODE=N, APP_EXIT_AFTER=D  exit with N after D (default D=0 when only the code is set)
//	APP_SELF_KILL_AFTER=D              SIGKILL itself after D (exit 137)
//	APP_CRASH_AFTER=D                  die of SIGSEGV after D (exit 139)
//	APP_IGNORE_TERM=1                  ignore SIGTERM (only SIGKILL stops it)
//	APP_UNHEALTHY=1                    `testapp health` fails (so a HEALTHCHECK reports unhealthy)
//	APP_HEALTHY_AFTER=D                `testapp health` fails until D after start
//	APP_WRITE=path=content[;...]       write these files at start if they do not exist yet
//	APP_ALLOC_MB=N                     allocate and touch N MiB (to provoke the OOM killer)
//
// On SIGTERM (or the signal named by APP_STOP_SIGNAL) it exits 0, like a service shutting down cleanly.
// `testapp health` is the healthcheck command; `testapp sleep` just runs (the default).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const startFile = "/tmp/testapp.started"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health())
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

	if code := os.Getenv("APP_EXIT_CODE"); code != "" {
		n, _ := strconv.Atoi(code)
		after(os.Getenv("APP_EXIT_AFTER"), func() { os.Exit(n) })
	}
	if d := os.Getenv("APP_SELF_KILL_AFTER"); d != "" {
		after(d, func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) })
	}
	if d := os.Getenv("APP_CRASH_AFTER"); d != "" {
		after(d, func() {
			signal.Reset(syscall.SIGSEGV)
			_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		})
	}

	sig := <-sigs
	fmt.Printf("testapp got %v, exiting\n", sig)
	os.Exit(0)
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
