package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"

	"github.com/watcher-dev/watcher/internal/defaults"
	"github.com/watcher-dev/watcher/internal/schedule"
)

// DefaultPath is the config file cmd reads when --config is not given, if it exists.
const DefaultPath = "/etc/watcher/config.yaml"

// Config is the validated configuration of the daemon. The yaml key of each field is given in
// its comment; config.example.yaml documents every key with its default.
type Config struct {
	Schedule string   // schedule: cron expression, default "@every 6h"; "" = HTTP trigger only
	Watch    Watch    // watch
	Update   Update   // update
	Registry Registry // registry
	StateDir string   // state_dir, default /var/lib/watcher
	HTTP     HTTP     // http
	Notify   Notify   // notify
	Log      Log      // log
	// Hosts are the engines one instance watches (hosts); nil = the one engine of DOCKER_HOST.
	Hosts []Host
	Swarm Swarm // swarm

	// Warnings are what Load accepted but the user should fix (a secret file readable by every
	// user), one line each. The daemon logs them once at start.
	Warnings []string
}

// Watch selects the containers to watch.
type Watch struct {
	LabelEnable    bool   // label_enable: only containers labelled watcher.enable=true; default true
	Scope          string // scope: only containers whose watcher.scope label equals this
	IncludeStopped bool   // include_stopped
}

// Update controls how containers are replaced.
type Update struct {
	Mode          string        // mode: "update" or "monitor" (report only); default update
	StopTimeout   time.Duration // stop_timeout, default 10s
	Verify        time.Duration // verify: the new container must stay up this long; default 10s
	HealthTimeout time.Duration // health_timeout: max wait for "healthy"; default 2m
	Rollback      bool          // rollback, default true
	Cleanup       bool          // cleanup: remove the superseded image; default true
	Parallel      int           // parallel: independent containers updated at once; default 4
	// lifecycle_hooks: run Watchtower's lifecycle hook labels (sh -c in the container); default false
	LifecycleHooks bool
	// Window: maintenance windows "[Mon-Fri ]HH:MM-HH:MM" in the schedule's zone; outside all of
	// them nothing is replaced. Nil = always.
	Window     []string
	KeepImages int // keep_images: superseded images kept per container for `watcher rollback`; default 1
	// Approve: the kinds of update (digest, patch, minor, major) that wait for a person's
	// approval (POST /v1/approve). Nil = none.
	Approve []string
	// ServiceTimeout (service_timeout) bounds the wait for a Swarm service's rolling update;
	// default 10m.
	ServiceTimeout time.Duration
}

// Swarm controls Swarm services.
type Swarm struct {
	// Services (services): on a manager, watch the services labelled watcher.enable=true;
	// default true.
	Services bool
}

// Registry controls registry lookups.
type Registry struct {
	Concurrency int                     // concurrency: requests in flight overall; default 16
	PerHost     int                     // per_host: requests in flight per registry host; default 8
	Timeout     time.Duration           // timeout per request, default 15s
	Auth        map[string]RegistryAuth // auth: registry host -> credentials; nil when none
}

// RegistryAuth is one registry's credentials (yaml: username, password or password_file).
type RegistryAuth struct {
	Username string
	Password string
}

// HTTP configures the HTTP API.
type HTTP struct {
	Listen     string // listen, default ":8080"
	Token      string // token (or token_file): at least MinSecretLen characters; "" = mutating endpoints disabled
	PublicRead bool   // public_read: GET /v1/* and /metrics without the token
	TLSCert    string // tls_cert: path of a PEM certificate (needs tls_key)
	TLSKey     string // tls_key: path of its PEM key
	RateLimit  int    // rate_limit: POST /v1/update per authenticated client per minute; 0 = no limit; default 30
	// WebhookSecret (or webhook_secret_file) authenticates POST /v1/webhooks/{kind}; "" = webhooks
	// disabled. The same rules as Token.
	WebhookSecret string
}

// Notify configures run reports.
type Notify struct {
	URLs     []string // urls (or urls_file): shoutrrr URLs; nil when none
	Template string   // template: Go text/template; "" = built-in default
	Startup  bool     // startup: send a message when the daemon starts
	// On: the outcomes sent (update_available, skipped, ...); nil = every outcome but up_to_date.
	On []string
}

// Host is one entry of hosts: an engine watched by this instance, with its own client, journal,
// locks and update.parallel. Load has checked every field (see hosts.go).
type Host struct {
	Name string // name: unique; how reports, the API, metrics (label host) and notifications name it
	Host string // host: unix:///path or tcp://host:port
	// TLS is true when any tls_* key is set: the engine is spoken to over TLS (tcp:// only).
	TLS         bool
	TLSCAFile   string // tls_ca_file: PEM CA the engine's certificate must chain to ("" = system roots)
	TLSCertFile string // tls_cert_file: PEM client certificate (with tls_key_file)
	TLSKeyFile  string // tls_key_file: its PEM private key
	TLSVerify   bool   // tls_verify: verify the engine's certificate; default true
	Scope       string // scope: this host's watch.scope; default watch.scope
}

// Log configures log/slog output.
type Log struct {
	Level  string // level: debug, info, warn or error; default info
	Format string // format: text or json; default text
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Schedule: "@every 6h",
		Watch:    Watch{LabelEnable: true},
		Update: Update{
			Mode:          "update",
			StopTimeout:   defaults.StopTimeout,
			Verify:        defaults.Verify,
			HealthTimeout: defaults.HealthTimeout,
			Rollback:      true,
			Cleanup:       true,
			Parallel:      defaults.Parallel,
			KeepImages:    1,
			// ServiceTimeout: swarm.DefaultTimeout (config imports nothing of the packages it configures).
			ServiceTimeout: 10 * time.Minute,
		},
		Swarm:    Swarm{Services: true},
		Registry: Registry{Concurrency: 16, PerHost: 8, Timeout: 15 * time.Second},
		StateDir: "/var/lib/watcher",
		HTTP:     HTTP{Listen: ":8080", RateLimit: 30},
		Log:      Log{Level: "info", Format: "text"},
	}
}

// Error is a configuration error. Key is the dotted config key (or the environment variable)
// it concerns; File and Line say where the value was written, when known.
type Error struct {
	Key  string
	File string
	Line int
	Msg  string
}

// Error returns one line, e.g.
// `config: schedule: bad cron expression "* * *": expected 5 or 6 fields (config.yaml:3)`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Key != "" {
		b.WriteString(printable(e.Key))
		b.WriteString(": ")
	}
	b.WriteString(oneLine(e.Msg))
	if e.File != "" {
		b.WriteString(" (")
		b.WriteString(printable(e.File))
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(")")
	}
	return b.String()
}

// printable shortens s and quotes it if it holds anything but printable characters.
func printable(s string) string {
	const max = 120
	if len(s) > max {
		s = s[:max] + "…"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// oneLine replaces control characters so that a message stays on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r):
			return '?'
		}
		return r
	}, s)
}

// CronSchedule parses Schedule. It returns a nil schedule and no error when Schedule is "".
func (c Config) CronSchedule() (cron.Schedule, error) {
	if c.Schedule == "" {
		return nil, nil
	}
	return schedule.Parse(c.Schedule)
}

// Zone is the time zone of the schedule (its CRON_TZ= or TZ= prefix, else the local zone):
// maintenance windows are read in it.
func (c Config) Zone() *time.Location {
	loc, err := schedule.Zone(c.Schedule)
	if err != nil {
		return time.Local // validated at load: unreachable for a loaded Config
	}
	return loc
}

// Windows are update.window, parsed (validated at load); nil when there are none.
func (c Config) Windows() schedule.Windows {
	ws, _ := schedule.ParseWindows(c.Update.Window)
	return ws
}

// Redacted returns a copy of c with secrets replaced by "REDACTED", for logging: the HTTP token,
// registry passwords and everything after the scheme of notification URLs (they carry tokens).
func (c Config) Redacted() Config {
	const r = "REDACTED"
	if c.HTTP.Token != "" {
		c.HTTP.Token = r
	}
	if c.HTTP.WebhookSecret != "" {
		c.HTTP.WebhookSecret = r
	}
	if c.Registry.Auth != nil {
		auth := maps.Clone(c.Registry.Auth)
		for host, a := range auth {
			if a.Password != "" {
				a.Password = r
			}
			auth[host] = a
		}
		c.Registry.Auth = auth
	}
	if c.Notify.URLs != nil {
		urls := slices.Clone(c.Notify.URLs)
		for i, u := range urls {
			if p, err := url.Parse(u); err == nil && p.Scheme != "" {
				urls[i] = p.Scheme + "://" + r
			} else {
				urls[i] = r
			}
		}
		c.Notify.URLs = urls
	}
	return c
}
