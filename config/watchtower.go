package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Watchtower's configuration (flags and WATCHTOWER_* variables) is read as a layer under
// watcher's own: it fills only the keys that neither the config file nor a WATCHER_* variable
// set, and where both set one, watcher's wins and a notice says so. Everything Watchtower
// accepted is either mapped to a key, read by the command (run once, Docker connection, named
// containers), accepted without effect (with a notice), or refused with what to use instead.
// docs/migrating-from-watchtower.md has the whole table.

// Flag is one Watchtower command-line flag as given, translated to the variable it stands for
// (--interval 30 is WATCHTOWER_POLL_INTERVAL=30). Flags beat variables, as in Watchtower.
type Flag struct {
	Name  string // as given, e.g. "--interval" or "-i"; errors name it
	Var   string // the variable it stands for
	Value string
}

// Watchtower is what LoadWatchtower needs besides the file and the environment.
type Watchtower struct {
	Flags []Flag
	// Legacy turns WATCHTOWER_NOTIFICATIONS and its per-service variables into shoutrrr URLs
	// (notify.WatchtowerURLs), with notices about settings that have no effect. get returns a
	// variable's value (a flag's beating it) and which flag or variable it came from. An error
	// starting "NAME: " is about that variable. When nil, those variables are refused.
	Legacy func(get func(name string) (value, origin string)) (urls, notes []string, err error)
}

// WatchtowerFlag describes one of Watchtower's flags for a command-line parser.
type WatchtowerFlag struct {
	Name  string // long name without dashes
	Short string // one letter, or ""
	Var   string // the variable the flag sets
	Bool  bool   // takes no value
	Sep   string // repeatable: the values are joined with Sep ("" = the last one wins)
}

type wtKind int

const (
	wtString   wtKind = iota
	wtBool            // strconv.ParseBool, as Watchtower's; "" is false
	wtInt             // decimal
	wtDuration        // Go duration with a unit (Watchtower read "30" as 30ns)
	wtList            // separated by commas or spaces
)

// wtVar is one Watchtower variable (and its flag). Exactly one of key, apply, refuse, note or ext
// says what happens to it.
type wtVar struct {
	name, flag, short string
	kind              wtKind
	key               string                       // config key set from the parsed value (conv)
	conv              func(v wtValue) (any, error) // for key; nil = the parsed value as is
	apply             func(w *wtLoader, v wtValue) error
	refuse            string // set and on: refused, with what to use instead
	note              string // set and on: accepted without effect, said once
	ext               bool   // read by the command or by Legacy, not here
}

// wtValue is one variable's value with where it came from.
type wtValue struct {
	raw    string
	origin string // the variable or the flag as given
	b      bool
	n      int
	d      time.Duration
	list   []string
}

// on reports whether a value asks for something: true, or non-empty.
func (v wtValue) on(k wtKind) bool {
	if k == wtBool {
		return v.b
	}
	return strings.TrimSpace(v.raw) != ""
}

const refusePrefix = "not supported by watcher: "

// wtVars lists every variable and flag of Watchtower v1.7.1, in the order they are applied
// (later ones beat earlier ones for the same key: --trace beats --debug beats --log-level).
var wtVars = []wtVar{
	// Docker connection: read by the command.
	{name: "DOCKER_HOST", flag: "host", short: "H", ext: true},
	{name: "DOCKER_TLS_VERIFY", flag: "tlsverify", short: "v", kind: wtBool, ext: true},
	{name: "DOCKER_API_VERSION", flag: "api-version", short: "a", ext: true},

	{name: "WATCHTOWER_POLL_INTERVAL", flag: "interval", short: "i", kind: wtInt, apply: (*wtLoader).interval},
	{name: "WATCHTOWER_SCHEDULE", flag: "schedule", short: "s", apply: (*wtLoader).schedule},
	{name: "WATCHTOWER_TIMEOUT", flag: "stop-timeout", short: "t", kind: wtDuration, key: "update.stop_timeout"},
	{name: "WATCHTOWER_NO_PULL", flag: "no-pull", kind: wtBool, refuse: "watcher asks the image's registry for new digests and never watches images built on this host (they are reported InvalidReference and left alone); drop it"},
	{name: "WATCHTOWER_NO_RESTART", flag: "no-restart", kind: wtBool, refuse: "watcher starts and verifies every new container before it removes the old one, and never leaves one stopped; to be told about updates without applying them use --monitor-only (update.mode: monitor)"},
	{name: "WATCHTOWER_NO_STARTUP_MESSAGE", flag: "no-startup-message", kind: wtBool, key: "notify.startup", conv: func(v wtValue) (any, error) { return !v.b, nil }},
	{name: "WATCHTOWER_CLEANUP", flag: "cleanup", short: "c", kind: wtBool, key: "update.cleanup"},
	{name: "WATCHTOWER_REMOVE_VOLUMES", flag: "remove-volumes", kind: wtBool, refuse: "watcher never removes volumes; the new container gets the old one's volumes, anonymous ones included; drop it"},
	{name: "WATCHTOWER_LABEL_ENABLE", flag: "label-enable", short: "e", kind: wtBool, key: "watch.label_enable"},
	{name: "WATCHTOWER_DISABLE_CONTAINERS", flag: "disable-containers", short: "x", kind: wtList, ext: true},
	{name: "WATCHTOWER_LOG_FORMAT", flag: "log-format", short: "l", key: "log.format", conv: logFormat},
	{name: "WATCHTOWER_LOG_LEVEL", flag: "log-level", key: "log.level", conv: logLevel},
	{name: "WATCHTOWER_DEBUG", flag: "debug", short: "d", kind: wtBool, apply: (*wtLoader).debug},
	{name: "WATCHTOWER_TRACE", flag: "trace", kind: wtBool, apply: (*wtLoader).debug},
	{name: "WATCHTOWER_MONITOR_ONLY", flag: "monitor-only", short: "m", kind: wtBool, key: "update.mode", conv: func(v wtValue) (any, error) {
		if v.b {
			return "monitor", nil
		}
		return "update", nil
	}},
	{name: "WATCHTOWER_RUN_ONCE", flag: "run-once", short: "R", kind: wtBool, ext: true},
	{name: "WATCHTOWER_INCLUDE_RESTARTING", flag: "include-restarting", kind: wtBool, ext: true},
	{name: "WATCHTOWER_INCLUDE_STOPPED", flag: "include-stopped", short: "S", kind: wtBool, key: "watch.include_stopped"},
	{name: "WATCHTOWER_REVIVE_STOPPED", flag: "revive-stopped", kind: wtBool, refuse: "watcher never starts a container that was stopped: with --include-stopped it updates it and leaves it stopped (it may be stopped on purpose); start it with docker start, or drop it"},
	{name: "WATCHTOWER_LIFECYCLE_HOOKS", flag: "enable-lifecycle-hooks", kind: wtBool, key: "update.lifecycle_hooks"},
	{name: "WATCHTOWER_ROLLING_RESTART", flag: "rolling-restart", kind: wtBool, apply: (*wtLoader).rolling},
	{name: "WATCHTOWER_HTTP_API_TOKEN", flag: "http-api-token", apply: (*wtLoader).token},
	{name: "WATCHTOWER_HTTP_API_PERIODIC_POLLS", flag: "http-api-periodic-polls", kind: wtBool, ext: true}, // read by HTTP_API_UPDATE
	{name: "WATCHTOWER_HTTP_API_UPDATE", flag: "http-api-update", kind: wtBool, apply: (*wtLoader).httpAPI},
	{name: "WATCHTOWER_HTTP_API_METRICS", flag: "http-api-metrics", kind: wtBool, note: "metrics are always served, at GET /metrics and GET /v1/metrics with Watchtower's metric names too (token unless http.public_read)"},
	{name: "NO_COLOR", flag: "no-color", kind: wtBool, ext: true}, // watcher's logs have no colours
	{name: "WATCHTOWER_SCOPE", flag: "scope", key: "watch.scope", conv: func(v wtValue) (any, error) {
		if v.raw == "none" { // Watchtower's name for "only unscoped containers", which is watcher's ""
			return "", nil
		}
		return v.raw, nil
	}},
	{name: "WATCHTOWER_PORCELAIN", flag: "porcelain", short: "P", refuse: "for machine-readable results run `watcher once --json`"},
	{name: "WATCHTOWER_LABEL_TAKE_PRECEDENCE", flag: "label-take-precedence", kind: wtBool, note: "watcher.* labels always beat the config; Watchtower's monitor-only=false label never turns a global --monitor-only off (label the container watcher.mode=update for that)"},
	{name: "WATCHTOWER_WARN_ON_HEAD_FAILURE", flag: "warn-on-head-failure", note: "watcher never falls back to pulling: a failed registry check is reported with its reason every time"},

	// Notifications.
	{name: "WATCHTOWER_NOTIFICATION_URL", flag: "notification-url", kind: wtList, apply: (*wtLoader).urls},
	{name: "WATCHTOWER_NOTIFICATIONS", flag: "notifications", short: "n", kind: wtList, apply: (*wtLoader).legacy},
	{name: "WATCHTOWER_NOTIFICATIONS_LEVEL", flag: "notifications-level", note: "watcher sends one message per run with its results, not log lines"},
	{name: "WATCHTOWER_NOTIFICATIONS_DELAY", flag: "notifications-delay", kind: wtInt, note: "watcher sends its message when the run ends"},
	{name: "WATCHTOWER_NOTIFICATIONS_HOSTNAME", flag: "notifications-hostname", note: "messages name the machine's own hostname"},
	{name: "WATCHTOWER_NOTIFICATION_TEMPLATE", flag: "notification-template", refuse: "Watchtower's templates read Watchtower's data; write one over watcher's run report as notify.template (WATCHER_NOTIFY_TEMPLATE), see docs/configuration.md"},
	{name: "WATCHTOWER_NOTIFICATION_REPORT", flag: "notification-report", kind: wtBool, note: "watcher always sends the run report"},
	{name: "WATCHTOWER_NOTIFICATION_TITLE_TAG", flag: "notification-title-tag", note: "the title is watcher's own"},
	{name: "WATCHTOWER_NOTIFICATION_SKIP_TITLE", flag: "notification-skip-title", kind: wtBool, note: "the title is watcher's own"},
	{name: "WATCHTOWER_NOTIFICATION_LOG_STDOUT", flag: "notification-log-stdout", kind: wtBool, note: "watcher logs to stderr only"},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_DELAY", flag: "notification-email-delay", kind: wtInt, note: "watcher sends its message when the run ends"},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_FROM", flag: "notification-email-from", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_TO", flag: "notification-email-to", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SERVER", flag: "notification-email-server", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT", flag: "notification-email-server-port", kind: wtInt, ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_TLS_SKIP_VERIFY", flag: "notification-email-server-tls-skip-verify", kind: wtBool, ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER", flag: "notification-email-server-user", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD", flag: "notification-email-server-password", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_EMAIL_SUBJECTTAG", flag: "notification-email-subjecttag", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL", flag: "notification-slack-hook-url", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_SLACK_IDENTIFIER", flag: "notification-slack-identifier", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_SLACK_CHANNEL", flag: "notification-slack-channel", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_SLACK_ICON_EMOJI", flag: "notification-slack-icon-emoji", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_SLACK_ICON_URL", flag: "notification-slack-icon-url", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL", flag: "notification-msteams-hook", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_MSTEAMS_USE_LOG_DATA", flag: "notification-msteams-data", kind: wtBool, ext: true},
	{name: "WATCHTOWER_NOTIFICATION_GOTIFY_URL", flag: "notification-gotify-url", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN", flag: "notification-gotify-token", ext: true},
	{name: "WATCHTOWER_NOTIFICATION_GOTIFY_TLS_SKIP_VERIFY", flag: "notification-gotify-tls-skip-verify", kind: wtBool, ext: true},

	// Registry credentials for every registry at once.
	{name: "REPO_USER", refuse: "credentials are given per registry host: registry.auth.<host> in the config file, WATCHER_REGISTRY_AUTH_<NAME>_HOST/_USERNAME/_PASSWORD, or a Docker config.json (DOCKER_CONFIG)"},
	{name: "REPO_PASS", refuse: "credentials are given per registry host: registry.auth.<host> in the config file, WATCHER_REGISTRY_AUTH_<NAME>_HOST/_USERNAME/_PASSWORD, or a Docker config.json (DOCKER_CONFIG)"},
}

// wtDefaults are Watchtower's defaults where they differ from watcher's, applied to the keys
// nothing set when Watchtower's configuration is in use, so a deployment behaves as it did.
var wtDefaults = []struct {
	key  string
	val  any
	what string
}{
	{"schedule", "@every 24h", "checks every 24h"},
	{"watch.label_enable", false, "every container not labelled enable=false is watched (--label-enable to opt in instead)"},
	{"update.cleanup", false, "old images are kept (--cleanup removes them)"},
	{"notify.startup", true, "a startup message is sent (--no-startup-message)"},
}

var wtByName = map[string]*wtVar{}

func init() {
	for i := range wtVars {
		wtByName[wtVars[i].name] = &wtVars[i]
	}
}

// WatchtowerFlags lists Watchtower's command-line flags (without --health-check, which is a
// command) for a parser that turns them into Flags.
func WatchtowerFlags() []WatchtowerFlag {
	var out []WatchtowerFlag
	for _, v := range wtVars {
		if v.flag == "" {
			continue
		}
		f := WatchtowerFlag{Name: v.flag, Short: v.short, Var: v.name, Bool: v.kind == wtBool}
		switch v.name {
		case "WATCHTOWER_NOTIFICATION_URL":
			f.Sep = " "
		case "WATCHTOWER_NOTIFICATIONS", "WATCHTOWER_DISABLE_CONTAINERS":
			f.Sep = ","
		}
		out = append(out, f)
	}
	return out
}

// WatchtowerValue returns the value of a variable read by the command (WATCHTOWER_RUN_ONCE,
// DOCKER_HOST, ...): a flag's beating the environment's, with where it came from ("" = unset).
// Booleans come back as "true" or "false"; a bad one is an *Error.
func WatchtowerValue(environ []string, flags []Flag, name string) (value, origin string, err error) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			value, origin = v, name
		}
	}
	for _, f := range flags {
		if f.Var == name {
			value, origin = f.Value, f.Name
		}
	}
	spec := wtByName[name]
	if origin == "" || spec == nil {
		return value, origin, nil
	}
	parsed, err := parseWt(spec.kind, value)
	if err != nil {
		return "", origin, &Error{Key: origin, Msg: err.Error()}
	}
	if spec.kind == wtBool {
		value = strconv.FormatBool(parsed.b)
	}
	return value, origin, nil
}

// LoadWatchtower is Load with Watchtower's configuration as a layer under watcher's own. It
// returns the notices to log once at start: Watchtower settings that watcher's configuration
// overrides, that have no effect, and Watchtower's defaults in use.
func LoadWatchtower(path string, environ []string, wt Watchtower) (Config, []string, error) {
	return loadAll(path, environ, &wt)
}

// wtLoader applies Watchtower's settings to a loader whose file and environment are read.
type wtLoader struct {
	l      *loader
	wt     *Watchtower
	vals   map[string]wtValue // by variable, parsed
	notes  []string
	seen   map[string]bool // notices already given
	active bool            // any Watchtower variable or flag is set
}

// loadWatchtower applies the Watchtower layer; see the comment at the top of this file.
func (l *loader) loadWatchtower(environ []string, wt *Watchtower) ([]string, error) {
	w := &wtLoader{l: l, wt: wt, vals: map[string]wtValue{}, seen: map[string]bool{}}
	if err := w.collect(environ); err != nil {
		return nil, err
	}
	if len(w.vals) == 0 {
		return nil, nil
	}
	if _, ok := w.vals["WATCHTOWER_POLL_INTERVAL"]; ok {
		if s, ok := w.vals["WATCHTOWER_SCHEDULE"]; ok && s.raw != "" {
			return nil, &Error{Key: s.origin, Msg: fmt.Sprintf("set only one of %s and %s, as in Watchtower", w.vals["WATCHTOWER_POLL_INTERVAL"].origin, s.origin)}
		}
	}
	for i := range wtVars {
		spec := &wtVars[i]
		v, ok := w.vals[spec.name]
		if !ok {
			continue
		}
		if err := w.applyVar(spec, v); err != nil {
			return nil, err
		}
	}
	if w.active {
		w.defaults()
	}
	return w.notes, nil
}

// collect reads the Watchtower variables of environ and then the flags, which beat them, and
// parses each. Unknown WATCHTOWER_* variables are errors.
func (w *wtLoader) collect(environ []string) error {
	raw := map[string]wtValue{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "WATCHTOWER_") && wtByName[name] == nil && !kubernetesServiceVarOf("WATCHTOWER", name) {
			msg := "not a Watchtower variable watcher knows"
			if s := suggest(name, wtNames()); s != "" {
				msg += "; did you mean " + s + "?"
			}
			return &Error{Key: name, Msg: msg + " (see docs/migrating-from-watchtower.md)"}
		}
		if spec := wtByName[name]; spec != nil && !strings.HasPrefix(name, "DOCKER_") && name != "NO_COLOR" {
			raw[name] = wtValue{raw: val, origin: name}
		}
	}
	for _, f := range w.wt.Flags {
		if wtByName[f.Var] == nil {
			return &Error{Key: f.Name, Msg: "not a Watchtower flag watcher knows (see docs/migrating-from-watchtower.md)"}
		}
		raw[f.Var] = wtValue{raw: f.Value, origin: f.Name}
		w.active = true
	}
	for name, v := range raw {
		spec := wtByName[name]
		p, err := parseWt(spec.kind, v.raw)
		if err != nil {
			return &Error{Key: v.origin, Msg: err.Error()}
		}
		p.raw, p.origin = v.raw, v.origin
		w.vals[name] = p
		if strings.HasPrefix(name, "WATCHTOWER_") {
			w.active = true
		}
	}
	return nil
}

func wtNames() []string {
	names := make([]string, 0, len(wtVars))
	for _, v := range wtVars {
		names = append(names, v.name)
	}
	return names
}

// parseWt parses a value the way Watchtower did, but strictly: what it would have read as
// false or 0 without a word is an error here.
func parseWt(k wtKind, s string) (wtValue, error) {
	v := wtValue{raw: s}
	var err error
	switch k {
	case wtBool:
		if strings.TrimSpace(s) != "" {
			if v.b, err = strconv.ParseBool(strings.TrimSpace(s)); err != nil {
				return v, fmt.Errorf("want true or false, got %q", s)
			}
		}
	case wtInt:
		if strings.TrimSpace(s) != "" {
			if v.n, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
				return v, fmt.Errorf("want a whole number, got %q", s)
			}
		}
	case wtDuration:
		if strings.TrimSpace(s) != "" {
			if v.d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil || v.d < 0 {
				return v, fmt.Errorf("want a duration with a unit, like 30s or 2m, got %q", s)
			}
		}
	case wtList:
		v.list = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	}
	return v, nil
}

// applyVar does what spec says with its value.
func (w *wtLoader) applyVar(spec *wtVar, v wtValue) error {
	on := v.on(spec.kind)
	switch {
	case spec.refuse != "":
		if on {
			return &Error{Key: v.origin, Msg: refusePrefix + spec.refuse}
		}
	case spec.note != "":
		if on {
			w.notice(v.origin + " has no effect: " + spec.note)
		}
	case spec.apply != nil:
		return spec.apply(w, v)
	case spec.key != "":
		if spec.kind != wtBool && strings.TrimSpace(v.raw) == "" {
			return nil // an empty variable is Watchtower's default
		}
		val := any(v.raw)
		switch spec.kind {
		case wtBool:
			val = v.b
		case wtDuration:
			val = v.d
		}
		if spec.conv != nil {
			var err error
			if val, err = spec.conv(v); err != nil {
				return &Error{Key: v.origin, Msg: err.Error()}
			}
		}
		w.set(spec.key, val, v.origin)
	}
	return nil
}

func (w *wtLoader) notice(s string) {
	if !w.seen[s] {
		w.seen[s] = true
		w.notes = append(w.notes, s)
	}
}

// setByWatcher says where watcher's own configuration set key ("" = it did not).
func (w *wtLoader) setByWatcher(key string) string {
	src, ok := w.l.src[key]
	switch {
	case !ok || isWatchtowerOrigin(src.env):
		return ""
	case src.env != "":
		return src.env
	case src.line > 0:
		return fmt.Sprintf("%s (%s:%d)", key, src.file, src.line)
	}
	return key
}

func isWatchtowerOrigin(s string) bool {
	return strings.HasPrefix(s, "WATCHTOWER_") || strings.HasPrefix(s, "-") || s == wtDefaultOrigin
}

const wtDefaultOrigin = "Watchtower's default"

// set gives key the value, unless watcher's configuration set it (or the other key of its
// secret pair), which then wins with a notice.
func (w *wtLoader) set(key string, val any, origin string) {
	keys := []string{key}
	for _, p := range secretPairs {
		if key == p[0] || key == p[1] {
			keys = p[:]
		}
	}
	for _, k := range keys {
		if by := w.setByWatcher(k); by != "" {
			if origin != wtDefaultOrigin {
				w.notice(fmt.Sprintf("%s is overridden by %s", origin, by))
			}
			return
		}
	}
	for _, k := range keys { // the pair's other key must not keep a value from elsewhere
		if k != key {
			w.l.set(fieldByKey[k], zero(fieldByKey[k].kind))
			delete(w.l.src, k)
		}
	}
	w.l.set(fieldByKey[key], val)
	w.l.src[key] = source{env: origin}
}

// defaults applies wtDefaults to the keys nothing set, and says which.
func (w *wtLoader) defaults() {
	var used []string
	for _, d := range wtDefaults {
		if _, ok := w.l.src[d.key]; ok {
			continue
		}
		w.set(d.key, d.val, wtDefaultOrigin)
		used = append(used, d.what)
	}
	// Watchtower's cleanup removes the old image right after the update. watcher would keep the
	// newest superseded one for `watcher rollback` (update.keep_images: 1); a Watchtower
	// deployment asked for its disk back, so it keeps none unless watcher's own settings say.
	// A rollback then pulls the previous digest again.
	if src, ok := w.l.src["update.cleanup"]; ok && isWatchtowerOrigin(src.env) && w.l.s.Update.Cleanup {
		if _, set := w.l.src["update.keep_images"]; !set {
			w.set("update.keep_images", 0, wtDefaultOrigin)
			used = append(used, "an old image is removed right after its update (update.keep_images: 0; `watcher rollback` pulls it again)")
		}
	}
	if len(used) > 0 {
		w.notice("Watchtower configuration in use, so Watchtower's defaults apply where nothing else is set: " + strings.Join(used, "; "))
	}
}

// ----- variables with more to them than one key -----

func (w *wtLoader) interval(v wtValue) error {
	if strings.TrimSpace(v.raw) == "" {
		return nil
	}
	if v.n < 1 {
		return &Error{Key: v.origin, Msg: fmt.Sprintf("want a number of seconds of at least 1, got %q", v.raw)}
	}
	w.set("schedule", fmt.Sprintf("@every %ds", v.n), v.origin)
	return nil
}

// schedule takes Watchtower's cron expression: seconds first, the day of the week optional
// (robfig/cron v1), so "0 0 4 * *" is 04:00 every day there, not the 4th of the month.
func (w *wtLoader) schedule(v wtValue) error {
	spec := strings.TrimSpace(v.raw)
	if spec == "" {
		return nil
	}
	if !strings.HasPrefix(spec, "@") {
		switch n := len(strings.Fields(spec)); n {
		case 6:
		case 5:
			spec += " *"
		default:
			return &Error{Key: v.origin, Msg: fmt.Sprintf("want Watchtower's 6-field cron expression with seconds first, like \"0 0 4 * * *\"; got %d fields in %q", n, v.raw)}
		}
	}
	w.set("schedule", spec, v.origin)
	return nil
}

func (w *wtLoader) debug(v wtValue) error {
	if v.b {
		w.set("log.level", "debug", v.origin)
	}
	return nil
}

func (w *wtLoader) rolling(v wtValue) error {
	if v.b { // one container at a time, each verified before the next
		w.set("update.parallel", 1, v.origin)
	}
	return nil
}

// token takes the HTTP API token, or the file it names (Watchtower read a value naming an
// existing file as that file's content).
func (w *wtLoader) token(v wtValue) error {
	switch {
	case v.raw == "":
	case isFilePath(v.raw):
		w.set("http.token_file", v.raw, v.origin)
	default:
		w.set("http.token", v.raw, v.origin)
	}
	return nil
}

// httpAPI: Watchtower's HTTP API mode needs a token and turns the schedule off unless
// --http-api-periodic-polls keeps it.
func (w *wtLoader) httpAPI(v wtValue) error {
	if !v.b {
		return nil
	}
	if w.l.s.HTTP.Token == "" && w.l.s.tokenFile == "" {
		return &Error{Key: v.origin, Msg: "needs a token: set --http-api-token / WATCHTOWER_HTTP_API_TOKEN (or http.token)"}
	}
	if !w.vals["WATCHTOWER_HTTP_API_PERIODIC_POLLS"].b {
		w.set("schedule", "", v.origin+" (without --http-api-periodic-polls)")
	}
	return nil
}

// urls takes the space-separated shoutrrr URLs; an entry naming an existing file stands for the
// URLs in it, one per line, as in Watchtower.
func (w *wtLoader) urls(v wtValue) error {
	var urls []string
	for _, u := range strings.Fields(v.raw) {
		if !isFilePath(u) {
			urls = append(urls, u)
			continue
		}
		text, err := w.l.readSecret(v.origin, u)
		if err != nil {
			return &Error{Key: v.origin, Msg: "cannot read the URL file: " + err.Error()}
		}
		for line := range strings.Lines(text) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				urls = append(urls, line)
			}
		}
	}
	if len(urls) > 0 {
		w.addURLs(urls, v.origin)
	}
	return nil
}

// addURLs adds to the notification URLs Watchtower's settings gave so far.
func (w *wtLoader) addURLs(urls []string, origin string) {
	if src, ok := w.l.src["notify.urls"]; ok && isWatchtowerOrigin(src.env) {
		urls = append(append([]string(nil), w.l.s.Notify.URLs...), urls...)
		origin = src.env
	}
	w.set("notify.urls", urls, origin)
}

// legacy translates WATCHTOWER_NOTIFICATIONS and its per-service variables with wt.Legacy.
func (w *wtLoader) legacy(v wtValue) error {
	if len(v.list) == 0 {
		return nil
	}
	if w.wt.Legacy == nil {
		return &Error{Key: v.origin, Msg: "Watchtower's notification types cannot be translated here; give shoutrrr URLs in notify.urls"}
	}
	urls, notes, err := w.wt.Legacy(func(name string) (string, string) {
		if x, ok := w.vals[name]; ok {
			return x.raw, x.origin
		}
		return "", ""
	})
	if err != nil {
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || (wtByName[key] == nil && !strings.HasPrefix(key, "-")) {
			key, msg = v.origin, err.Error()
		}
		return &Error{Key: key, Msg: msg}
	}
	for _, n := range notes {
		w.notice(n)
	}
	if len(urls) > 0 {
		w.addURLs(urls, v.origin)
	}
	return nil
}

// isFilePath reports whether s names an existing file the way Watchtower decided it: no colon
// (which URLs and tokens with a scheme have) and something there.
func isFilePath(s string) bool {
	if strings.Contains(s, ":") {
		return false
	}
	_, err := os.Stat(s)
	return err == nil
}

// ----- conversions -----

func logFormat(v wtValue) (any, error) {
	switch strings.ToLower(v.raw) {
	case "auto", "logfmt", "pretty":
		return "text", nil
	case "json":
		return "json", nil
	}
	return nil, fmt.Errorf("want Auto, LogFmt, Pretty or JSON, got %q", v.raw)
}

func logLevel(v wtValue) (any, error) {
	switch strings.ToLower(v.raw) {
	case "panic", "fatal", "error":
		return "error", nil
	case "warn", "warning":
		return "warn", nil
	case "info":
		return "info", nil
	case "debug", "trace": // watcher has no trace level, and never logs credentials
		return "debug", nil
	}
	return nil, fmt.Errorf("want panic, fatal, error, warn, info, debug or trace, got %q", v.raw)
}

// kubernetesServiceVarOf is kubernetesServiceVar for a Service of another name: a Service called
// "watchtower" kept while migrating injects WATCHTOWER_SERVICE_HOST and WATCHTOWER_PORT_*.
func kubernetesServiceVarOf(service, name string) bool {
	return strings.HasPrefix(name, service+"_SERVICE_") || name == service+"_PORT" || strings.HasPrefix(name, service+"_PORT_")
}
