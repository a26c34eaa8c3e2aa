// Command watcher keeps labelled Docker containers on their newest image, safely.
//
//	watcher [run]        the daemon: schedule + HTTP API
//	watcher once         one cycle now, print the report, exit (0 ok, 1 something failed, 2 bad config/usage, 3 engine unreachable)
//	watcher check        dry run: what would update and why (--json for machines); changes nothing
//	watcher version
//	watcher healthcheck  asks the running daemon's /healthz (for the image's HEALTHCHECK)
//	watcher rollback NAME [--host H]  put NAME back on the image it ran before its last update (exit codes as once)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes (README.md "Commands").
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// exitError carries an exit code and a one-line message for the user.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	var wt *wtArgs
	switch {
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	case len(args) > 0:
		// No subcommand: Watchtower's command line, which is what `docker run … watcher
		// --interval 30 --cleanup` and a compose file's `command:` give with the image's ENTRYPOINT.
		var err error
		if wt, args, err = watchtowerCommandLine(args, stderr); err != nil {
			if errors.Is(err, errWatchtowerHelp) {
				return exitOK
			}
			fmt.Fprintf(stderr, "watcher: %v\n", err)
			return exitUsage
		}
	}
	fs := flag.NewFlagSet("watcher "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default /etc/watcher/config.yaml if present, or $WATCHER_CONFIG)")
	asJSON := fs.Bool("json", false, "once, check, rollback: print the report as JSON")
	host := fs.String("host", "", "rollback: the host NAME runs on, one of the config's hosts")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: watcher [run|once|check|version|healthcheck] [--config PATH] [--json]\n       watcher rollback NAME [--host H] [--config PATH] [--json]\n")
		fs.PrintDefaults()
	}
	name, code := parseArgs(fs, cmd, args, stderr)
	if code >= 0 {
		return code
	}

	cmd, err := watchtowerCommand(cmd, environ, wt)
	if err != nil {
		fmt.Fprintf(stderr, "watcher: %v\n", err)
		return exitUsage
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "watcher %s\n", version)
		return exitOK
	case "run", "once", "check", "healthcheck", "rollback":
		var a *app
		a, err = newApp(ctx, cmd, *configPath, environ, wt, stderr)
		if err == nil {
			defer a.close()
			switch cmd {
			case "run":
				err = a.daemon(ctx)
			case "once":
				err = a.once(ctx, stdout, *asJSON)
			case "check":
				err = a.check(ctx, stdout, *asJSON)
			case "healthcheck":
				err = a.healthcheck(ctx, stdout)
			case "rollback":
				err = a.rollback(ctx, stdout, *host, name, *asJSON)
			}
		}
	default:
		fmt.Fprintf(stderr, "watcher: unknown command %q (want run, once, check, rollback, version or healthcheck)\n", cmd)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errReexec) {
		fmt.Fprintf(stderr, "watcher %s: %v\n", cmd, err)
		if err := reexec(); err != nil {
			fmt.Fprintf(stderr, "watcher %s: re-executing failed: %v (the self-update is rolled back when the watcher starts again)\n", cmd, err)
		}
		return exitFailed
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(stderr, "watcher %s: %s\n", cmd, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "watcher %s: %v\n", cmd, err)
	return exitFailed
}

// parseArgs parses the flags, which may follow rollback's NAME too. It returns NAME (rollback
// only) and an exit code, or -1 to go on.
func parseArgs(fs *flag.FlagSet, cmd string, args []string, stderr io.Writer) (string, int) {
	parse := func(args []string) int {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		return -1
	}
	if code := parse(args); code >= 0 {
		return "", code
	}
	name := ""
	if cmd == "rollback" {
		if fs.NArg() == 0 {
			fmt.Fprintf(stderr, "watcher rollback: which container? usage: watcher rollback NAME [--host H]\n")
			return "", exitUsage
		}
		name = strings.TrimPrefix(fs.Arg(0), "/")
		if code := parse(fs.Args()[1:]); code >= 0 {
			return "", code
		}
	} else if f := fs.Lookup("host"); f.Value.String() != "" {
		fmt.Fprintf(stderr, "watcher %s: --host is a flag of rollback only\n", cmd)
		return "", exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "watcher %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return "", exitUsage
	}
	return name, -1
}
