package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/watcher-dev/watcher/config"
)

// wtArgs is a Watchtower command line (`watcher --interval 30 --cleanup nginx redis`): the
// flags for config.LoadWatchtower, the container names, and what the command needs.
type wtArgs struct {
	flags       []config.Flag
	names       []string // positional: only these containers
	healthCheck bool     // --health-check: Watchtower's image health check
	configPath  string   // our own --config, accepted alongside
	asJSON      bool     // our own --json
}

// errWatchtowerHelp is -h/--help on a Watchtower command line: usage was printed.
var errWatchtowerHelp = errors.New("help requested")

// parseWatchtower reads args with Watchtower's own flag syntax (spf13/pflag, as Watchtower used):
// --flag value, --flag=value, -i 30, grouped short booleans (-cR), repeated list flags, and
// container names anywhere. Every flag of Watchtower v1.7.1 is known (config.WatchtowerFlags);
// what watcher does with each is config's business. An error is one line naming the flag.
func parseWatchtower(args []string, stderr io.Writer) (*wtArgs, error) {
	fs := pflag.NewFlagSet("watcher", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	wt := &wtArgs{}
	specs := config.WatchtowerFlags()
	for _, f := range specs {
		switch {
		case f.Bool:
			fs.BoolP(f.Name, f.Short, false, f.Var)
		case f.Sep != "":
			fs.StringArrayP(f.Name, f.Short, nil, f.Var)
		default:
			// Numbers and durations are taken as text: config checks them and names the flag.
			fs.StringP(f.Name, f.Short, "", f.Var)
		}
	}
	fs.BoolVar(&wt.healthCheck, "health-check", false, "Watchtower's health check: asks the running daemon")
	fs.StringVar(&wt.configPath, "config", "", "watcher's config file")
	fs.BoolVar(&wt.asJSON, "json", false, "with --run-once: print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: watcher [run|once|check|version|healthcheck] [--config PATH] [--json]\n"+
				"   or: watcher [Watchtower's flags] [container names]  (see docs/migrating-from-watchtower.md)\n\n%s", fs.FlagUsages())
			return nil, errWatchtowerHelp
		}
		return nil, wtParseError(err)
	}
	for _, f := range specs {
		pf := fs.Lookup(f.Name)
		if !pf.Changed {
			continue
		}
		value := pf.Value.String()
		if sv, ok := pf.Value.(pflag.SliceValue); ok {
			value = strings.Join(sv.GetSlice(), f.Sep)
		}
		wt.flags = append(wt.flags, config.Flag{Name: "--" + f.Name, Var: f.Var, Value: value})
	}
	for _, n := range fs.Args() {
		if n = strings.TrimPrefix(n, "/"); n != "" {
			wt.names = append(wt.names, n)
		}
	}
	return wt, nil
}

// wtParseError turns pflag's error into one line that names the flag and says where to look.
func wtParseError(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "unknown flag: "), strings.HasPrefix(msg, "unknown shorthand flag: "):
		return fmt.Errorf("%s: neither a watcher flag (--config, --json) nor one of Watchtower's; see docs/migrating-from-watchtower.md for what each Watchtower flag became", msg)
	case strings.HasPrefix(msg, "bad flag syntax: "):
		return fmt.Errorf("%s: flags start with -- (or - for one letter)", msg)
	}
	return errors.New(msg) // pflag's own text names the flag: "flag needs an argument: --scope", "invalid argument …"
}

// watchtowerCommandLine parses a Watchtower command line and returns it with the arguments left
// for watcher's own flag parsing (--config, --json).
func watchtowerCommandLine(args []string, stderr io.Writer) (*wtArgs, []string, error) {
	wt, err := parseWatchtower(args, stderr)
	if err != nil {
		return nil, nil, err
	}
	var rest []string
	if wt.configPath != "" {
		rest = append(rest, "--config", wt.configPath)
	}
	if wt.asJSON {
		rest = append(rest, "--json")
	}
	return wt, rest, nil
}

// watchtowerCommand is the command a daemon run becomes: WATCHTOWER_RUN_ONCE or --run-once make
// it `once` (its exit codes included), --health-check makes it `healthcheck`.
func watchtowerCommand(cmd string, environ []string, wt *wtArgs) (string, error) {
	if cmd != "run" {
		return cmd, nil
	}
	if wt != nil && wt.healthCheck {
		return "healthcheck", nil
	}
	once, _, err := config.WatchtowerValue(environ, wt.configFlags(), "WATCHTOWER_RUN_ONCE")
	if err != nil {
		return "", err
	}
	if once == "true" {
		return "once", nil
	}
	return cmd, nil
}

// configFlags is nil-safe: no Watchtower command line, no flags.
func (wt *wtArgs) configFlags() []config.Flag {
	if wt == nil {
		return nil
	}
	return wt.flags
}

// compat is what a Watchtower configuration asks of the updater beyond watcher's config keys.
type compat struct {
	names             []string // positional container names: only these are watched
	exclude           []string // --disable-containers / WATCHTOWER_DISABLE_CONTAINERS
	includeRestarting bool     // --include-restarting / WATCHTOWER_INCLUDE_RESTARTING
}

// watchtowerCompat reads them from the command line and the environment.
func watchtowerCompat(environ []string, wt *wtArgs) (compat, error) {
	var c compat
	if wt != nil {
		c.names = wt.names
	}
	v, _, err := config.WatchtowerValue(environ, wt.configFlags(), "WATCHTOWER_DISABLE_CONTAINERS")
	if err != nil {
		return c, err
	}
	for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		c.exclude = append(c.exclude, strings.TrimPrefix(n, "/"))
	}
	v, _, err = config.WatchtowerValue(environ, wt.configFlags(), "WATCHTOWER_INCLUDE_RESTARTING")
	c.includeRestarting = v == "true"
	return c, err
}

// withoutWatchtower is environ without Watchtower's own variables (WATCHTOWER_*, REPO_USER,
// REPO_PASS); Docker's stay.
func withoutWatchtower(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "WATCHTOWER_") && name != "REPO_USER" && name != "REPO_PASS" {
			out = append(out, kv)
		}
	}
	return out
}
