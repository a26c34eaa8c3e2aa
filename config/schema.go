package config

import (
	"slices"
	"strings"
)

// kind is the type of a config value as written in YAML or the environment.
type kind int

const (
	kString   kind = iota
	kBool          // true/false/1/0/yes/no
	kInt           // decimal integer
	kDuration      // Go duration, not negative
	kList          // YAML list of strings; in env space or comma separated
)

func (k kind) String() string {
	return [...]string{"a string", "true or false", "an integer", "a duration like 30s or 5m", "a list of strings"}[k]
}

// settings is a Config plus the keys that are resolved while loading and not kept.
type settings struct {
	Config
	tokenFile         string
	webhookSecretFile string
	urlsFile          string
	auth              map[string]*authSettings // registry.auth by host
	hosts             []*hostSettings          // hosts, in order
}

type authSettings struct {
	username, password, passwordFile string
}

// field is one key other than those under registry.auth.
type field struct {
	key  string              // dotted yaml key
	kind kind                // what it holds
	ref  func(*settings) any // pointer to the value: *string, *bool, *int, *time.Duration, *[]string
	norm func(string) string // applied to string values (and list items), may be nil
	// sep separates a list's items in an environment variable; "" = commas and whitespace.
	sep string
}

// fields lists every key outside registry.auth, in the order of config.example.yaml.
var fields = []field{
	{key: "schedule", kind: kString, ref: func(s *settings) any { return &s.Schedule }, norm: strings.TrimSpace},
	{key: "watch.label_enable", kind: kBool, ref: func(s *settings) any { return &s.Watch.LabelEnable }},
	{key: "watch.scope", kind: kString, ref: func(s *settings) any { return &s.Watch.Scope }},
	{key: "watch.include_stopped", kind: kBool, ref: func(s *settings) any { return &s.Watch.IncludeStopped }},
	{key: "update.mode", kind: kString, ref: func(s *settings) any { return &s.Update.Mode }, norm: strings.ToLower},
	{key: "update.stop_timeout", kind: kDuration, ref: func(s *settings) any { return &s.Update.StopTimeout }},
	{key: "update.verify", kind: kDuration, ref: func(s *settings) any { return &s.Update.Verify }},
	{key: "update.health_timeout", kind: kDuration, ref: func(s *settings) any { return &s.Update.HealthTimeout }},
	{key: "update.rollback", kind: kBool, ref: func(s *settings) any { return &s.Update.Rollback }},
	{key: "update.cleanup", kind: kBool, ref: func(s *settings) any { return &s.Update.Cleanup }},
	{key: "update.parallel", kind: kInt, ref: func(s *settings) any { return &s.Update.Parallel }},
	{key: "update.lifecycle_hooks", kind: kBool, ref: func(s *settings) any { return &s.Update.LifecycleHooks }},
	{key: "update.window", kind: kList, ref: func(s *settings) any { return &s.Update.Window }, norm: strings.TrimSpace, sep: ",;\n"},
	{key: "update.keep_images", kind: kInt, ref: func(s *settings) any { return &s.Update.KeepImages }},
	{key: "update.service_timeout", kind: kDuration, ref: func(s *settings) any { return &s.Update.ServiceTimeout }},
	{key: "update.approve", kind: kList, ref: func(s *settings) any { return &s.Update.Approve }, norm: strings.ToLower},
	{key: "registry.concurrency", kind: kInt, ref: func(s *settings) any { return &s.Registry.Concurrency }},
	{key: "registry.per_host", kind: kInt, ref: func(s *settings) any { return &s.Registry.PerHost }},
	{key: "registry.timeout", kind: kDuration, ref: func(s *settings) any { return &s.Registry.Timeout }},
	{key: "swarm.services", kind: kBool, ref: func(s *settings) any { return &s.Swarm.Services }},
	{key: "state_dir", kind: kString, ref: func(s *settings) any { return &s.StateDir }},
	{key: "http.listen", kind: kString, ref: func(s *settings) any { return &s.HTTP.Listen }},
	{key: "http.token", kind: kString, ref: func(s *settings) any { return &s.HTTP.Token }},
	{key: "http.token_file", kind: kString, ref: func(s *settings) any { return &s.tokenFile }},
	{key: "http.public_read", kind: kBool, ref: func(s *settings) any { return &s.HTTP.PublicRead }},
	{key: "http.tls_cert", kind: kString, ref: func(s *settings) any { return &s.HTTP.TLSCert }},
	{key: "http.tls_key", kind: kString, ref: func(s *settings) any { return &s.HTTP.TLSKey }},
	{key: "http.rate_limit", kind: kInt, ref: func(s *settings) any { return &s.HTTP.RateLimit }},
	{key: "http.webhook_secret", kind: kString, ref: func(s *settings) any { return &s.HTTP.WebhookSecret }},
	{key: "http.webhook_secret_file", kind: kString, ref: func(s *settings) any { return &s.webhookSecretFile }},
	{key: "notify.urls", kind: kList, ref: func(s *settings) any { return &s.Notify.URLs }},
	{key: "notify.urls_file", kind: kString, ref: func(s *settings) any { return &s.urlsFile }},
	{key: "notify.template", kind: kString, ref: func(s *settings) any { return &s.Notify.Template }},
	{key: "notify.startup", kind: kBool, ref: func(s *settings) any { return &s.Notify.Startup }},
	{key: "notify.on", kind: kList, ref: func(s *settings) any { return &s.Notify.On }, norm: strings.ToLower},
	{key: "log.level", kind: kString, ref: func(s *settings) any { return &s.Log.Level }, norm: strings.ToLower},
	{key: "log.format", kind: kString, ref: func(s *settings) any { return &s.Log.Format }, norm: strings.ToLower},
}

// sections are the keys that hold a mapping (hosts: a list of them). registry.auth and hosts are
// walked by hand.
var sections = []string{"watch", "update", "registry", "swarm", "http", "notify", "log", "registry.auth", "hosts"}

// authKeys are the keys of one registry.auth entry.
var authKeys = []string{"username", "password", "password_file"}

// secretPairs are the keys that may instead be read from a file named by <key>_file.
var secretPairs = [][2]string{{"http.token", "http.token_file"}, {"http.webhook_secret", "http.webhook_secret_file"}, {"notify.urls", "notify.urls_file"}}

const envPrefix = "WATCHER_"

// envConfig is the variable cmd reads the config path from; Load ignores it.
const envConfig = "WATCHER_CONFIG"

// envAuthPrefix starts WATCHER_REGISTRY_AUTH_<NAME>_{HOST,USERNAME,PASSWORD,PASSWORD_FILE}.
const envAuthPrefix = "WATCHER_REGISTRY_AUTH_"

var (
	fieldByKey = map[string]*field{}
	fieldByEnv = map[string]*field{}
)

func init() {
	for i := range fields {
		f := &fields[i]
		fieldByKey[f.key] = f
		fieldByEnv[envName(f.key)] = f
	}
}

// envName is the environment variable of a dotted key: http.token -> WATCHER_HTTP_TOKEN.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// knownKeys lists every dotted key and section, for suggestions.
func knownKeys() []string {
	keys := slices.Clone(sections)
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	return keys
}

// suggest returns the candidate closest to s, or "" when none is close.
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD >= len(s) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance of a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
