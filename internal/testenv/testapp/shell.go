package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// shell is testapp run as /sh (ImageSpec.Shell): `sh -c SCRIPT [NAME [ARGS...]]` with a POSIX
// shell interpreter (mvdan.cc/sh), so lifecycle hooks can be exec'd in test containers as they are
// in real ones. `sleep` and `kill` are built in (test images have no coreutils); any other command
// is run as a child process, e.g. `app sleep` for a process that runs until killed.
func shell(args []string) int {
	if len(args) < 3 || args[1] != "-c" {
		fmt.Fprintln(os.Stderr, "sh: only `sh -c SCRIPT [NAME [ARGS...]]` is supported")
		return 2
	}
	prog, err := syntax.NewParser().Parse(strings.NewReader(args[2]), "sh")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 2
	}
	params := []string{"--"}
	if len(args) > 4 {
		params = append(params, args[4:]...)
	}
	r, err := interp.New(interp.StdIO(os.Stdin, os.Stdout, os.Stderr), interp.Params(params...),
		interp.CallHandler(ownKill), interp.ExecHandlers(builtins))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 2
	}
	err = r.Run(context.Background(), prog)
	if status, ok := interp.IsExitStatus(err); ok {
		return int(status)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 1
	}
	return 0
}

// ownKill sends `kill` to builtins: the interpreter's own kill builtin is not implemented.
func ownKill(_ context.Context, args []string) ([]string, error) {
	if args[0] == "kill" {
		args = append([]string{killCommand}, args[1:]...)
	}
	return args, nil
}

const killCommand = "testapp-kill"

// builtins adds sleep and kill in front of running programs.
func builtins(next interp.ExecHandlerFunc) interp.ExecHandlerFunc {
	return func(ctx context.Context, args []string) error {
		switch args[0] {
		case "sleep":
			d := time.Second
			if len(args) > 1 {
				if s, err := strconv.ParseFloat(args[1], 64); err == nil {
					d = time.Duration(s * float64(time.Second))
				}
			}
			select {
			case <-time.After(d):
				return nil
			case <-ctx.Done():
				return interp.ExitStatus(130)
			}
		case killCommand:
			return kill(args[1:])
		}
		return next(ctx, args)
	}
}

// kill [-SIGNAL] [--] PID...: a negative PID is a process group, as in every shell.
func kill(args []string) error {
	signals := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "9": syscall.SIGKILL,
		"TERM": syscall.SIGTERM, "15": syscall.SIGTERM, "INT": syscall.SIGINT, "2": syscall.SIGINT}
	sig := syscall.SIGTERM
	if len(args) > 1 && strings.HasPrefix(args[0], "-") {
		if s, ok := signals[strings.TrimPrefix(strings.TrimPrefix(args[0], "-"), "SIG")]; ok {
			sig, args = s, args[1:]
		}
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	status := uint8(0)
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err != nil || syscall.Kill(pid, sig) != nil {
			status = 1
		}
	}
	return interp.ExitStatus(status)
}
