package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// secrets writes the secret files the tests refer to as $DIR/...
func secrets(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, dir, "token", "s3cret-0123456789abcdef\n")
	writeFile(t, dir, "token-crlf", "s3cret-0123456789abcdef\r\n")
	writeFile(t, dir, "empty", "")
	writeFile(t, dir, "ghcr", "ghcr-pass\n")
	writeFile(t, dir, "urls", "# notifications\nslack://a@b\n\n  telegram://t@telegram?chats=1  \n")
	writeFile(t, dir, "cert.pem", "cert")
	writeFile(t, dir, "key.pem", "key")
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// load writes yml (with $DIR replaced) to config.yaml unless it is "-", and loads it with env.
func load(t *testing.T, dir, yml string, env ...string) (Config, string, error) {
	t.Helper()
	path := ""
	if yml != "-" {
		path = writeFile(t, t.TempDir(), "config.yaml", strings.ReplaceAll(yml, "$DIR", dir))
	}
	for i := range env {
		env[i] = strings.ReplaceAll(env[i], "$DIR", dir)
	}
	c, err := Load(path, env)
	return c, path, err
}

func TestLoadValid(t *testing.T) {
	def := Default()
	with := func(f func(c *Config)) Config {
		c := Default()
		f(&c)
		return c
	}
	tests := []struct {
		name string
		yml  string // "-" = no file
		env  []string
		want Config
	}{
		{name: "no file", yml: "-", want: def},
		{name: "empty file", yml: "", want: def},
		{name: "comments only", yml: "# nothing\n", want: def},
		{name: "null document", yml: "---\n~\n", want: def},
		{name: "empty sections", yml: "watch:\nupdate: {}\nregistry:\n  auth:\n", want: def},
		{name: "env without file", yml: "-", env: []string{"PATH=/bin", "WATCHER_CONFIG=/x.yaml", "WATCHER_SERVICE_HOST=10.0.0.1", "WATCHER_PORT_8080_TCP=tcp://10.0.0.1:8080", "WATCHER_LOG_LEVEL=debug", "watcher_log_level=bogus", "NOEQUALS"},
			want: with(func(c *Config) { c.Log.Level = "debug" })},
		{name: "every key", yml: `
schedule: "0 4 * * *"
watch: {label_enable: false, scope: prod, include_stopped: true}
update:
  mode: monitor
  stop_timeout: 30s
  verify: 1m
  health_timeout: 5m30s
  rollback: false
  cleanup: false
  parallel: 2
  window: ["Mon-Fri 22:00-06:00", " sat 10:00-12:00 "]
  keep_images: 3
  service_timeout: 90s
registry:
  concurrency: 4
  per_host: 2
  timeout: 1m
  auth:
    ghcr.io: {username: me, password: pw}
swarm: {services: false}
state_dir: /data
http:
  listen: 127.0.0.1:9000
  token: tok-0123456789abcdef
  public_read: true
  tls_cert: $DIR/cert.pem
  tls_key: $DIR/key.pem
  rate_limit: 0
  webhook_secret: hook-0123456789abcdef
notify:
  urls: ["slack://a@b", "discord://t@c"]
  template: "{{ .Summary }}"
  startup: true
  on: [Failed, update_available]
log:
  level: warn
  format: json
`, want: Config{
			Schedule: "0 4 * * *",
			Watch:    Watch{LabelEnable: false, Scope: "prod", IncludeStopped: true},
			Update: Update{Mode: "monitor", StopTimeout: 30 * time.Second, Verify: time.Minute,
				HealthTimeout: 5*time.Minute + 30*time.Second, Rollback: false, Cleanup: false, Parallel: 2,
				Window: []string{"Mon-Fri 22:00-06:00", "sat 10:00-12:00"}, KeepImages: 3, ServiceTimeout: 90 * time.Second},
			Swarm: Swarm{Services: false},
			Registry: Registry{Concurrency: 4, PerHost: 2, Timeout: time.Minute,
				Auth: map[string]RegistryAuth{"ghcr.io": {Username: "me", Password: "pw"}}},
			StateDir: "/data",
			HTTP: HTTP{Listen: "127.0.0.1:9000", Token: "tok-0123456789abcdef", PublicRead: true,
				TLSCert: "$DIR/cert.pem", TLSKey: "$DIR/key.pem", RateLimit: 0, WebhookSecret: "hook-0123456789abcdef"},
			Notify: Notify{URLs: []string{"slack://a@b", "discord://t@c"}, Template: "{{ .Summary }}", Startup: true,
				On: []string{"failed", "update_available"}},
			Log: Log{Level: "warn", Format: "json"},
		}},
		{name: "env beats file", yml: "update:\n  verify: 1m\n  parallel: 2\nschedule: '@daily'\n",
			env: []string{"WATCHER_UPDATE_VERIFY=5s", "WATCHER_STATE_DIR=/s", "WATCHER_HTTP_TOKEN=env-token-0123456789", "WATCHER_REGISTRY_PER_HOST=3"},
			want: with(func(c *Config) {
				c.Schedule, c.Update.Verify, c.Update.Parallel, c.StateDir, c.HTTP.Token, c.Registry.PerHost = "@daily", 5*time.Second, 2, "/s", "env-token-0123456789", 3
			})},
		{name: "windows in env", yml: "-", env: []string{"WATCHER_UPDATE_WINDOW=Mon-Fri 22:00-06:00, Sat 10:00-12:00;Sun 00:00-24:00"},
			want: with(func(c *Config) {
				c.Update.Window = []string{"Mon-Fri 22:00-06:00", "Sat 10:00-12:00", "Sun 00:00-24:00"}
			})},
		{name: "empty env var turns schedule off", yml: "schedule: '@daily'\n", env: []string{"WATCHER_SCHEDULE="},
			want: with(func(c *Config) { c.Schedule = "" })},
		{name: "empty env var zeroes", yml: "-", env: []string{"WATCHER_WATCH_LABEL_ENABLE=", "WATCHER_UPDATE_VERIFY=", "WATCHER_HTTP_RATE_LIMIT=", "WATCHER_NOTIFY_URLS="},
			want: with(func(c *Config) { c.Watch.LabelEnable, c.Update.Verify, c.HTTP.RateLimit = false, 0, 0 })},
		{name: "null values are empty", yml: "schedule:\nwatch:\n  scope: ~\n  label_enable:\nnotify:\n  urls:\n",
			want: with(func(c *Config) { c.Schedule, c.Watch.LabelEnable = "", false })},
		{name: "bools in yaml", yml: "watch: {label_enable: no, include_stopped: YES}\nupdate: {rollback: 0, cleanup: 1}\nhttp: {public_read: True}\n",
			want: with(func(c *Config) {
				c.Watch.LabelEnable, c.Watch.IncludeStopped, c.Update.Rollback, c.Update.Cleanup, c.HTTP.PublicRead = false, true, false, true, true
			})},
		{name: "bools in env", yml: "-", env: []string{"WATCHER_WATCH_LABEL_ENABLE=0", "WATCHER_WATCH_INCLUDE_STOPPED=yes", "WATCHER_UPDATE_ROLLBACK=false", "WATCHER_HTTP_PUBLIC_READ=1", "WATCHER_NOTIFY_STARTUP=TRUE"},
			want: with(func(c *Config) {
				c.Watch.LabelEnable, c.Watch.IncludeStopped, c.Update.Rollback, c.HTTP.PublicRead, c.Notify.Startup = false, true, false, true, true
			})},
		{name: "case normalized", yml: "update: {mode: Monitor}\nlog: {level: DEBUG, format: JSON}\n",
			want: with(func(c *Config) { c.Update.Mode, c.Log.Level, c.Log.Format = "monitor", "debug", "json" })},
		{name: "notify urls env comma or space", yml: "-", env: []string{"WATCHER_NOTIFY_URLS=slack://a@b, discord://c@d  gotify://e/f"},
			want: with(func(c *Config) { c.Notify.URLs = []string{"slack://a@b", "discord://c@d", "gotify://e/f"} })},
		{name: "env urls replace file urls", yml: "notify: {urls: ['slack://a@b']}\n", env: []string{"WATCHER_NOTIFY_URLS=discord://c@d"},
			want: with(func(c *Config) { c.Notify.URLs = []string{"discord://c@d"} })},
		{name: "empty url list", yml: "notify: {urls: []}\n", want: def},
		{name: "token_file in yaml", yml: "http:\n  token: ''\n  token_file: $DIR/token\n",
			want: with(func(c *Config) { c.HTTP.Token = "s3cret-0123456789abcdef" })},
		{name: "token_file crlf trimmed", yml: "http: {token_file: $DIR/token-crlf}\n",
			want: with(func(c *Config) { c.HTTP.Token = "s3cret-0123456789abcdef" })},
		{name: "token_file in env", yml: "-", env: []string{"WATCHER_HTTP_TOKEN_FILE=$DIR/token"},
			want: with(func(c *Config) { c.HTTP.Token = "s3cret-0123456789abcdef" })},
		{name: "env token beats file token_file", yml: "http: {token_file: /does/not/exist}\n", env: []string{"WATCHER_HTTP_TOKEN=env-token-0123456789"},
			want: with(func(c *Config) { c.HTTP.Token = "env-token-0123456789" })},
		{name: "env token_file beats file token", yml: "http: {token: t}\n", env: []string{"WATCHER_HTTP_TOKEN_FILE=$DIR/token"},
			want: with(func(c *Config) { c.HTTP.Token = "s3cret-0123456789abcdef" })},
		{name: "empty env token turns file token_file off", yml: "http: {token_file: /does/not/exist}\n", env: []string{"WATCHER_HTTP_TOKEN="},
			want: def},
		{name: "urls_file", yml: "notify: {urls_file: $DIR/urls}\n",
			want: with(func(c *Config) { c.Notify.URLs = []string{"slack://a@b", "telegram://t@telegram?chats=1"} })},
		{name: "urls_file in env", yml: "-", env: []string{"WATCHER_NOTIFY_URLS_FILE=$DIR/urls"},
			want: with(func(c *Config) { c.Notify.URLs = []string{"slack://a@b", "telegram://t@telegram?chats=1"} })},
		{name: "auth password_file", yml: "registry:\n  auth:\n    ghcr.io:\n      username: me\n      password_file: $DIR/ghcr\n    localhost:5000: {username: u, password: p}\n",
			want: with(func(c *Config) {
				c.Registry.Auth = map[string]RegistryAuth{"ghcr.io": {"me", "ghcr-pass"}, "localhost:5000": {"u", "p"}}
			})},
		{name: "auth env matches file host", yml: "registry: {auth: {ghcr.io: {username: me, password: old}, localhost:5000: {username: u}}}\n",
			env: []string{"WATCHER_REGISTRY_AUTH_GHCR_IO_PASSWORD_FILE=$DIR/ghcr", "WATCHER_REGISTRY_AUTH_LOCALHOST_5000_PASSWORD=p"},
			want: with(func(c *Config) {
				c.Registry.Auth = map[string]RegistryAuth{"ghcr.io": {"me", "ghcr-pass"}, "localhost:5000": {"u", "p"}}
			})},
		{name: "auth env with host", yml: "-",
			env: []string{"WATCHER_REGISTRY_AUTH_MINE_HOST=registry.example.com:5000", "WATCHER_REGISTRY_AUTH_MINE_USERNAME=u", "WATCHER_REGISTRY_AUTH_MINE_PASSWORD=p"},
			want: with(func(c *Config) {
				c.Registry.Auth = map[string]RegistryAuth{"registry.example.com:5000": {"u", "p"}}
			})},
		{name: "cron 6 fields", yml: "schedule: '0 30 4 * * *'\n", want: with(func(c *Config) { c.Schedule = "0 30 4 * * *" })},
		{name: "cron every", yml: "schedule: '@every 5m'\n", want: with(func(c *Config) { c.Schedule = "@every 5m" })},
		{name: "cron daily", yml: "schedule: '@daily'\n", want: with(func(c *Config) { c.Schedule = "@daily" })},
		{name: "cron CRON_TZ", yml: "schedule: 'CRON_TZ=UTC 0 4 * * 1-5'\n", want: with(func(c *Config) { c.Schedule = "CRON_TZ=UTC 0 4 * * 1-5" })},
		{name: "cron TZ descriptor", yml: "schedule: 'TZ=UTC @weekly'\n", want: with(func(c *Config) { c.Schedule = "TZ=UTC @weekly" })},
		{name: "schedule trimmed", yml: "schedule: ' @hourly '\n", want: with(func(c *Config) { c.Schedule = "@hourly" })},
		{name: "alias values", yml: "update:\n  stop_timeout: &d 30s\n  verify: *d\n",
			want: with(func(c *Config) { c.Update.StopTimeout, c.Update.Verify = 30*time.Second, 30*time.Second })},
		{name: "template with unknown funcs parses", yml: "notify: {template: '{{ upper .Title }}'}\n",
			want: with(func(c *Config) { c.Notify.Template = "{{ upper .Title }}" })},
		{name: "duplicate env last wins", yml: "-", env: []string{"WATCHER_LOG_LEVEL=debug", "WATCHER_LOG_LEVEL=error"},
			want: with(func(c *Config) { c.Log.Level = "error" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := secrets(t)
			got, _, err := load(t, dir, tt.yml, tt.env...)
			if err != nil {
				t.Fatalf("Load(%q, %q) = error %v, want success", tt.yml, tt.env, err)
			}
			want := tt.want
			want.HTTP.TLSCert = strings.ReplaceAll(want.HTTP.TLSCert, "$DIR", dir)
			want.HTTP.TLSKey = strings.ReplaceAll(want.HTTP.TLSKey, "$DIR", dir)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load(%q, %q) =\n%+v\nwant\n%+v", tt.yml, tt.env, got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yml  string // "-" = no file
		env  []string
		key  string // want Error.Key
		line int    // want Error.Line; 0 = no file position
		msg  string // want substring of Error.Msg
	}{
		// unknown keys
		{name: "unknown top key", yml: "schedul: '@daily'\n", key: "schedul", line: 1, msg: "unknown key; did you mean schedule?"},
		{name: "unknown nested key", yml: "# c\nupdate:\n  verfy: 10s\n", key: "update.verfy", line: 3, msg: "did you mean update.verify?"},
		{name: "unknown key far off", yml: "log:\n  colour: true\n", key: "log.colour", line: 2, msg: "unknown key"},
		{name: "unknown auth key", yml: "registry:\n  auth:\n    ghcr.io:\n      username: u\n      pasword: p\n", key: "registry.auth.ghcr.io.pasword", line: 5, msg: "did you mean password?"},
		{name: "dotted key", yml: "update.verify: 1s\n", key: "update.verify", line: 1, msg: "nested"},
		{name: "dotted key in section", yml: "update:\n  a.b: 1s\n", key: "update.a.b", line: 2, msg: "unknown key"},
		{name: "duplicate key", yml: "log:\n  level: info\n  level: debug\n", key: "log.level", line: 3, msg: "duplicate key (first set at line 2)"},
		{name: "merge key in section", yml: "log:\n  <<: {level: info}\n", key: "log.<<", line: 2, msg: "merge keys"},
		{name: "non-string key", yml: "log:\n  [a]: 1\n", key: "log", line: 2, msg: "keys must be strings"},
		// YAML and types
		{name: "yaml syntax", yml: "log:\n  level: info\n bad\n", line: 2, msg: "bad YAML"},
		{name: "yaml tab", yml: "log:\n\tlevel: info\n", line: 2, msg: "bad YAML"},
		{name: "two documents", yml: "log: {level: info}\n---\nlog: {level: debug}\n", line: 3, msg: "more than one YAML document"},
		{name: "top level list", yml: "- a\n- b\n", line: 1, msg: "top level must be a mapping"},
		{name: "top level scalar", yml: "hello\n", line: 1, msg: "top level must be a mapping"},
		{name: "section not mapping", yml: "watch: true\n", key: "watch", line: 1, msg: "watch must be a mapping"},
		{name: "int not int", yml: "update:\n  parallel: four\n", key: "update.parallel", line: 2, msg: `want an integer, got "four"`},
		{name: "int float", yml: "update:\n  parallel: 2.5\n", key: "update.parallel", line: 2, msg: "want an integer"},
		{name: "int list", yml: "update:\n  parallel: [1]\n", key: "update.parallel", line: 2, msg: "want an integer, got a list"},
		{name: "bool not bool", yml: "watch:\n  label_enable: maybe\n", key: "watch.label_enable", line: 2, msg: "want true or false"},
		{name: "string mapping", yml: "http:\n  listen: {a: b}\n", key: "http.listen", line: 2, msg: "want a string, got a mapping"},
		{name: "urls not list", yml: "notify:\n  urls: slack://a@b\n", key: "notify.urls", line: 2, msg: "want a list of strings"},
		{name: "urls nested list", yml: "notify:\n  urls:\n    - [a]\n", key: "notify.urls", line: 3, msg: "list entries must be strings"},
		{name: "auth not mapping", yml: "registry:\n  auth: [a]\n", key: "registry.auth", line: 2, msg: "must be a mapping"},
		{name: "auth entry not mapping", yml: "registry:\n  auth:\n    ghcr.io: me\n", key: "registry.auth.ghcr.io", line: 3, msg: "must be a mapping"},
		// durations
		{name: "duration without unit", yml: "update:\n  verify: 10\n", key: "update.verify", line: 2, msg: `bad duration "10"`},
		{name: "duration garbage", yml: "update:\n  stop_timeout: soon\n", key: "update.stop_timeout", line: 2, msg: "bad duration"},
		{name: "negative duration", yml: "update:\n  health_timeout: -1m\n", key: "update.health_timeout", line: 2, msg: "negative duration"},
		{name: "zero registry timeout", yml: "registry:\n  timeout: 0s\n", key: "registry.timeout", line: 2, msg: "more than 0"},
		// windows, keep_images, notify.on
		{name: "bad window", yml: "update:\n  window: ['Mon-Fri 22:00']\n", key: "update.window", line: 2, msg: `bad maintenance window "Mon-Fri 22:00"`},
		{name: "bad window in env", yml: "-", env: []string{"WATCHER_UPDATE_WINDOW=02:00-04:00,Sun 25:00-26:00"}, key: "update.window", msg: "(from WATCHER_UPDATE_WINDOW)"},
		{name: "negative keep_images", yml: "update:\n  keep_images: -1\n", key: "update.keep_images", line: 2, msg: "must not be negative"},
		{name: "zero service_timeout", yml: "update:\n  service_timeout: 0s\n", key: "update.service_timeout", line: 2, msg: "must be more than 0"},
		{name: "unknown notify outcome", yml: "notify:\n  on: [updated, broken]\n", key: "notify.on", line: 2, msg: `unknown outcome "broken"`},
		// cron
		{name: "cron 3 fields", yml: "# c\n\nschedule: '* * *'\n", key: "schedule", line: 3, msg: `bad cron expression "* * *": expected 5 or 6 fields`},
		{name: "cron 7 fields", yml: "schedule: '* * * * * * *'\n", key: "schedule", line: 1, msg: "expected 5 or 6 fields"},
		{name: "cron out of range", yml: "schedule: '61 * * * *'\n", key: "schedule", line: 1, msg: "bad cron expression"},
		{name: "cron bad descriptor", yml: "schedule: '@fortnightly'\n", key: "schedule", line: 1, msg: "unrecognized descriptor"},
		{name: "cron every zero", yml: "schedule: '@every 0s'\n", key: "schedule", line: 1, msg: "at least 1s"},
		{name: "cron every negative", yml: "schedule: '@every -5m'\n", key: "schedule", line: 1, msg: "at least 1s"},
		{name: "cron every garbage", yml: "schedule: '@every often'\n", key: "schedule", line: 1, msg: "@every wants a duration"},
		{name: "cron never fires", yml: "schedule: '0 0 30 2 *'\n", key: "schedule", line: 1, msg: "never fires"},
		{name: "cron TZ alone", yml: "schedule: 'TZ=UTC'\n", key: "schedule", line: 1, msg: "time zone prefix"},
		{name: "cron TZ tab", yml: "schedule: \"CRON_TZ=UTC\\t@daily\"\n", key: "schedule", line: 1, msg: `holds a control character '\t'`},
		{name: "cron TZ empty", yml: "schedule: 'TZ= @daily'\n", key: "schedule", line: 1, msg: "empty time zone"},
		{name: "cron TZ unknown", yml: "schedule: 'TZ=Nowhere/Atlantis @daily'\n", key: "schedule", line: 1, msg: "bad location"},
		{name: "cron from env", yml: "-", env: []string{"WATCHER_SCHEDULE=* * *"}, key: "schedule", msg: "expected 5 or 6 fields (from WATCHER_SCHEDULE)"},
		// validation
		{name: "bad mode", yml: "update:\n  mode: yolo\n", key: "update.mode", line: 2, msg: `want update or monitor, got "yolo"`},
		{name: "parallel zero", yml: "update:\n  parallel: 0\n", key: "update.parallel", line: 2, msg: "at least 1"},
		{name: "concurrency zero", yml: "registry:\n  concurrency: 0\n", key: "registry.concurrency", line: 2, msg: "at least 1"},
		{name: "per_host negative", yml: "registry:\n  per_host: -1\n", key: "registry.per_host", line: 2, msg: "at least 1"},
		{name: "rate_limit negative", yml: "http:\n  rate_limit: -1\n", key: "http.rate_limit", line: 2, msg: "must not be negative"},
		{name: "bad log level", yml: "log:\n  level: verbose\n", key: "log.level", line: 2, msg: "want debug, info, warn or error"},
		{name: "bad log format", yml: "log: {level: info,\n  format: xml}\n", key: "log.format", line: 2, msg: "want text or json"},
		{name: "empty state_dir", yml: "state_dir: ''\n", key: "state_dir", line: 1, msg: "must not be empty"},
		{name: "empty listen", yml: "http:\n  listen:\n", key: "http.listen", line: 2, msg: "must not be empty"},
		{name: "bad listen", yml: "http:\n  listen: '8080'\n", key: "http.listen", line: 2, msg: "want host:port"},
		{name: "tls_cert without tls_key", yml: "http:\n  tls_cert: $DIR/cert.pem\n", key: "http.tls_cert", line: 2, msg: "without http.tls_key"},
		{name: "tls_key without tls_cert", yml: "http:\n  tls_key: $DIR/key.pem\n", key: "http.tls_key", line: 2, msg: "without http.tls_cert"},
		{name: "tls_cert missing", yml: "http:\n  tls_cert: $DIR/nope.pem\n  tls_key: $DIR/key.pem\n", key: "http.tls_cert", line: 2, msg: "cannot read"},
		{name: "bad notify url", yml: "notify:\n  urls:\n    - slack://a@b\n    - hunter2\n", key: "notify.urls", line: 2, msg: "URL 2 of 2 is not a shoutrrr URL"},
		{name: "bad template", yml: "notify:\n  template: '{{ .Title'\n", key: "notify.template", line: 2, msg: "bad template"},
		{name: "bad template from env", yml: "-", env: []string{"WATCHER_NOTIFY_TEMPLATE={{ end }}"}, key: "notify.template", msg: "(from WATCHER_NOTIFY_TEMPLATE)"},
		// secrets
		{name: "token and token_file", yml: "http:\n  token: a\n  token_file: $DIR/token\n", key: "http.token_file", line: 3, msg: "set only one of http.token and http.token_file"},
		{name: "urls and urls_file", yml: "notify:\n  urls_file: $DIR/urls\n  urls: [slack://a@b]\n", key: "notify.urls_file", line: 2, msg: "set only one of notify.urls and notify.urls_file"},
		{name: "token and token_file in env", yml: "-", env: []string{"WATCHER_HTTP_TOKEN=a", "WATCHER_HTTP_TOKEN_FILE=$DIR/token"}, key: "http.token_file", msg: "set only one of WATCHER_HTTP_TOKEN and WATCHER_HTTP_TOKEN_FILE"},
		{name: "token_file missing", yml: "\nhttp:\n  token_file: $DIR/missing\n", key: "http.token_file", line: 3, msg: "cannot read secret: stat "},
		{name: "token_file missing env", yml: "-", env: []string{"WATCHER_HTTP_TOKEN_FILE=$DIR/missing"}, key: "http.token_file", msg: "(from WATCHER_HTTP_TOKEN_FILE)"},
		{name: "token_file empty", yml: "http:\n  token_file: $DIR/empty\n", key: "http.token_file", line: 2, msg: "is empty"},
		{name: "token_file directory", yml: "http:\n  token_file: $DIR/adir\n", key: "http.token_file", line: 2, msg: "not a regular file"},
		{name: "urls_file missing", yml: "notify:\n  urls_file: $DIR/missing\n", key: "notify.urls_file", line: 2, msg: "cannot read secret"},
		{name: "auth password and password_file", yml: "registry:\n  auth:\n    ghcr.io:\n      username: u\n      password: p\n      password_file: $DIR/ghcr\n", key: "registry.auth.ghcr.io.password_file", line: 6, msg: "set only one of password and password_file"},
		{name: "auth password_file missing", yml: "registry:\n  auth:\n    ghcr.io:\n      username: u\n      password_file: $DIR/missing\n", key: "registry.auth.ghcr.io.password_file", line: 5, msg: "cannot read secret"},
		{name: "auth without username", yml: "registry:\n  auth:\n    ghcr.io: {password: p}\n", key: "registry.auth.ghcr.io", line: 3, msg: "username is missing"},
		{name: "auth without password", yml: "registry:\n  auth:\n    ghcr.io: {username: u}\n", key: "registry.auth.ghcr.io", line: 3, msg: "password is missing"},
		{name: "auth host with scheme", yml: "registry:\n  auth:\n    https://index.docker.io/v1/: {username: u, password: p}\n", key: "registry.auth.https://index.docker.io/v1/", line: 3, msg: "want a registry host"},
		// environment
		{name: "unknown env var", yml: "-", env: []string{"WATCHER_UPDTE_VERIFY=1s"}, key: "WATCHER_UPDTE_VERIFY", msg: "unknown environment variable; did you mean WATCHER_UPDATE_VERIFY?"},
		{name: "unknown env var far off", yml: "-", env: []string{"WATCHER_FOO=1"}, key: "WATCHER_FOO", msg: "unknown environment variable"},
		{name: "env section name", yml: "-", env: []string{"WATCHER_UPDATE=1"}, key: "WATCHER_UPDATE", msg: "unknown environment variable"},
		{name: "env bad bool", yml: "-", env: []string{"WATCHER_HTTP_PUBLIC_READ=maybe"}, key: "http.public_read", msg: `want true or false (or 1/0, yes/no), got "maybe" (from WATCHER_HTTP_PUBLIC_READ)`},
		{name: "env bad duration", yml: "-", env: []string{"WATCHER_UPDATE_VERIFY=10"}, key: "update.verify", msg: "bad duration"},
		{name: "env bad int", yml: "-", env: []string{"WATCHER_UPDATE_PARALLEL=x"}, key: "update.parallel", msg: "want an integer"},
		{name: "env empty int fails validation", yml: "update: {parallel: 3}\n", env: []string{"WATCHER_UPDATE_PARALLEL="}, key: "update.parallel", msg: "at least 1, got 0 (from WATCHER_UPDATE_PARALLEL)"},
		{name: "env bad mode", yml: "update: {mode: update}\n", env: []string{"WATCHER_UPDATE_MODE=yolo"}, key: "update.mode", msg: "(from WATCHER_UPDATE_MODE)"},
		{name: "env tls_cert without key", yml: "-", env: []string{"WATCHER_HTTP_TLS_CERT=$DIR/cert.pem"}, key: "http.tls_cert", msg: "without http.tls_key"},
		{name: "env auth no matching host", yml: "-", env: []string{"WATCHER_REGISTRY_AUTH_GHCR_IO_PASSWORD=p"}, key: "WATCHER_REGISTRY_AUTH_GHCR_IO_PASSWORD", msg: "no host under registry.auth"},
		{name: "env auth ambiguous host", yml: "registry: {auth: {a.b: {username: u, password: p}, a-b: {username: u, password: p}}}\n", env: []string{"WATCHER_REGISTRY_AUTH_A_B_PASSWORD=p"}, key: "WATCHER_REGISTRY_AUTH_A_B_PASSWORD", msg: "a-b, a.b all match A_B"},
		{name: "env auth empty host", yml: "-", env: []string{"WATCHER_REGISTRY_AUTH_X_HOST="}, key: "WATCHER_REGISTRY_AUTH_X_HOST", msg: "must name a registry host"},
		{name: "env auth host twice", yml: "registry: {auth: {ghcr.io: {username: u}}}\n", env: []string{"WATCHER_REGISTRY_AUTH_X_HOST=ghcr.io", "WATCHER_REGISTRY_AUTH_GHCR_IO_PASSWORD=p"}, key: "WATCHER_REGISTRY_AUTH_X_HOST", msg: "also set by"},
		{name: "env auth password and file", yml: "-", env: []string{"WATCHER_REGISTRY_AUTH_X_HOST=ghcr.io", "WATCHER_REGISTRY_AUTH_X_PASSWORD=p", "WATCHER_REGISTRY_AUTH_X_PASSWORD_FILE=$DIR/ghcr"}, key: "registry.auth.ghcr.io.password_file", msg: "set only one of"},
		{name: "env auth missing username", yml: "-", env: []string{"WATCHER_REGISTRY_AUTH_X_HOST=ghcr.io", "WATCHER_REGISTRY_AUTH_X_PASSWORD=p"}, key: "registry.auth.ghcr.io", msg: "username is missing (from WATCHER_REGISTRY_AUTH_X_HOST)"},
		{name: "env auth bare prefix", yml: "-", env: []string{"WATCHER_REGISTRY_AUTH_PASSWORD=p"}, key: "WATCHER_REGISTRY_AUTH_PASSWORD", msg: "unknown environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := secrets(t)
			_, path, err := load(t, dir, tt.yml, tt.env...)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load(%q, %q) = error %v (%T), want *Error", tt.yml, tt.env, err, err)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Load returned %T, want *Error itself", err)
			}
			wantFile := path
			if tt.line == 0 {
				wantFile = ""
			}
			if e.Key != tt.key || e.Line != tt.line || e.File != wantFile || !strings.Contains(e.Msg, strings.ReplaceAll(tt.msg, "$DIR", dir)) {
				t.Errorf("Load(%q, %q) = %#v,\nwant Key %q, File %q, Line %d, Msg containing %q", tt.yml, tt.env, e, tt.key, wantFile, tt.line, tt.msg)
			}
			if s := err.Error(); strings.ContainsAny(s, "\n\r") || !strings.HasPrefix(s, "config: ") {
				t.Errorf("Error() = %q, want one line starting with config:", s)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	t.Chdir(t.TempDir())
	writeFile(t, ".", "config.yaml", "# watcher\n\nschedule: \"* * *\"\n")
	_, err := Load("config.yaml", nil)
	want := `config: schedule: bad cron expression "* * *": expected 5 or 6 fields (config.yaml:3)`
	if err == nil || err.Error() != want {
		t.Errorf("Load() error = %v, want %s", err, want)
	}

	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{Key: "update.verify", Msg: "bad duration (from WATCHER_UPDATE_VERIFY)"}, "config: update.verify: bad duration (from WATCHER_UPDATE_VERIFY)"},
		{Error{File: "c.yaml", Msg: "cannot read config file: permission denied"}, "config: cannot read config file: permission denied (c.yaml)"},
		{Error{Key: "a\nb", File: "c.yaml", Line: 2, Msg: "x\ny"}, `config: "a\nb": x y (c.yaml:2)`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, nil)
	e, ok := err.(*Error)
	if !ok || e.File != path || !strings.Contains(e.Msg, "cannot read config file: no such file") {
		t.Errorf("Load(missing) = %v, want *Error about the file", err)
	}
}

// TestExample keeps config.example.yaml in step with Default and with the keys Load knows.
func TestExample(t *testing.T) {
	got, err := Load("../config.example.yaml", nil)
	if err != nil {
		t.Fatalf("Load(config.example.yaml) = %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(config.example.yaml) =\n%+v\nwant Default() =\n%+v", got, Default())
	}

	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := join(prefix, n.Content[i].Value)
			documented[key] = true
			if n.Content[i+1].Kind == yaml.MappingNode {
				walk(key, n.Content[i+1])
			}
		}
	}
	walk("", doc.Content[0])
	for _, f := range fields {
		if !documented[f.key] {
			t.Errorf("config.example.yaml does not document %s", f.key)
		}
	}
	for _, k := range []string{"registry.auth", "username", "password_file"} {
		if !strings.Contains(string(data), strings.TrimPrefix(k, "registry.")+":") {
			t.Errorf("config.example.yaml does not show %s", k)
		}
	}
}

// TestDocs keeps docs/configuration.md naming every key and its variable.
func TestDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, f := range fields {
		for _, s := range []string{"`" + f.key + "`", "`" + envName(f.key) + "`"} {
			if !strings.Contains(doc, s) {
				t.Errorf("docs/configuration.md does not mention %s", s)
			}
		}
	}
	for _, s := range []string{"registry.auth", envAuthPrefix, envConfig, DefaultPath} {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/configuration.md does not mention %s", s)
		}
	}
}

func TestCronSchedule(t *testing.T) {
	c := Default()
	c.Schedule = ""
	if s, err := c.CronSchedule(); s != nil || err != nil {
		t.Errorf("CronSchedule() with empty schedule = %v, %v; want nil, nil", s, err)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Time{
		"@every 6h":              start.Add(6 * time.Hour),
		"CRON_TZ=UTC 30 4 * * *": start.Add(4*time.Hour + 30*time.Minute),
		"TZ=UTC 15 30 4 * * *":   start.Add(4*time.Hour + 30*time.Minute + 15*time.Second),
		"TZ=UTC @daily":          start.Add(24 * time.Hour),
	} {
		c.Schedule = spec
		s, err := c.CronSchedule()
		if err != nil {
			t.Errorf("CronSchedule(%q) error %v", spec, err)
			continue
		}
		if got := s.Next(start); !got.Equal(want) {
			t.Errorf("CronSchedule(%q).Next(%v) = %v, want %v", spec, start, got, want)
		}
	}
	c.Schedule = "* * *"
	if _, err := c.CronSchedule(); err == nil || !strings.Contains(err.Error(), "expected 5 or 6 fields") {
		t.Errorf("CronSchedule(\"* * *\") error = %v", err)
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.HTTP.Token = "tok"
	c.HTTP.WebhookSecret = "hook"
	c.Registry.Auth = map[string]RegistryAuth{"ghcr.io": {Username: "me", Password: "pw"}}
	c.Notify.URLs = []string{"slack://token@channel", "no scheme"}
	r := c.Redacted()
	if r.HTTP.Token != "REDACTED" || r.HTTP.WebhookSecret != "REDACTED" || r.Registry.Auth["ghcr.io"] != (RegistryAuth{"me", "REDACTED"}) ||
		!reflect.DeepEqual(r.Notify.URLs, []string{"slack://REDACTED", "REDACTED"}) {
		t.Errorf("Redacted() = %+v", r)
	}
	if c.HTTP.Token != "tok" || c.Registry.Auth["ghcr.io"].Password != "pw" || c.Notify.URLs[0] != "slack://token@channel" {
		t.Errorf("Redacted() changed its receiver: %+v", c)
	}
	if d := Default().Redacted(); !reflect.DeepEqual(d, Default()) {
		t.Errorf("Default().Redacted() = %+v, want Default()", d)
	}
}
