package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadWT loads yml ("-" = no file) with env and Watchtower flags given as "--name=VAR=value".
func loadWT(t *testing.T, yml string, env []string, flags ...string) (Config, []string, error) {
	t.Helper()
	path := ""
	if yml != "-" {
		path = writeFile(t, t.TempDir(), "config.yaml", yml)
	}
	var fl []Flag
	for _, f := range flags {
		parts := strings.SplitN(f, "=", 3)
		fl = append(fl, Flag{Name: parts[0], Var: parts[1], Value: parts[2]})
	}
	legacy := func(get func(string) (string, string)) ([]string, []string, error) {
		v, _ := get("WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN")
		if v == "" {
			return nil, nil, errors.New("WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN: missing")
		}
		return []string{"gotify://gotify.example/" + v}, []string{"a notice"}, nil
	}
	return LoadWatchtower(path, env, Watchtower{Flags: fl, Legacy: legacy})
}

func TestWatchtowerMapping(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "from-a-file-0123456789\n")
	urlFile := writeFile(t, dir, "urls", "slack://a@b\n# comment\ngeneric://x.example\n")
	tests := []struct {
		name  string
		env   []string
		flags []string
		check func(c Config) string // "" = ok
	}{
		{"interval", []string{"WATCHTOWER_POLL_INTERVAL=30"}, nil, func(c Config) string {
			return want(c.Schedule, "@every 30s")
		}},
		{"flag beats variable", []string{"WATCHTOWER_POLL_INTERVAL=30"}, []string{"--interval=WATCHTOWER_POLL_INTERVAL=60"}, func(c Config) string {
			return want(c.Schedule, "@every 60s")
		}},
		{"six-field schedule kept", []string{"WATCHTOWER_SCHEDULE=0 0 4 * * *"}, nil, func(c Config) string {
			return want(c.Schedule, "0 0 4 * * *")
		}},
		{"five-field schedule is seconds first, day of week optional", []string{"WATCHTOWER_SCHEDULE=0 30 4 * *"}, nil, func(c Config) string {
			s, err := c.CronSchedule()
			if err != nil {
				return err.Error()
			}
			from := time.Date(2025, 3, 10, 0, 0, 0, 0, time.Local)
			return want(s.Next(from), time.Date(2025, 3, 10, 4, 30, 0, 0, time.Local))
		}},
		{"Watchtower's defaults", []string{"WATCHTOWER_CLEANUP=false"}, nil, func(c Config) string {
			return want(fmt.Sprintf("%v %v %v %v", c.Schedule, c.Watch.LabelEnable, c.Update.Cleanup, c.Notify.Startup), "@every 24h false false true")
		}},
		{"label enable, cleanup, monitor only, stopped, hooks", []string{"WATCHTOWER_LABEL_ENABLE=true", "WATCHTOWER_CLEANUP=1", "WATCHTOWER_MONITOR_ONLY=TRUE", "WATCHTOWER_INCLUDE_STOPPED=t", "WATCHTOWER_LIFECYCLE_HOOKS=true"}, nil, func(c Config) string {
			return want(fmt.Sprintf("%v %v %v %v %v", c.Watch.LabelEnable, c.Update.Cleanup, c.Update.Mode, c.Watch.IncludeStopped, c.Update.LifecycleHooks), "true true monitor true true")
		}},
		{"cleanup keeps no old image, as Watchtower's", nil, []string{"--cleanup=WATCHTOWER_CLEANUP=true"}, func(c Config) string {
			return want(fmt.Sprint(c.Update.Cleanup, c.Update.KeepImages), "true 0")
		}},
		{"cleanup with watcher's keep_images", []string{"WATCHTOWER_CLEANUP=true", "WATCHER_UPDATE_KEEP_IMAGES=2"}, nil, func(c Config) string {
			return want(fmt.Sprint(c.Update.Cleanup, c.Update.KeepImages), "true 2")
		}},
		{"watcher's cleanup keeps watcher's default", []string{"WATCHTOWER_POLL_INTERVAL=30", "WATCHER_UPDATE_CLEANUP=true"}, nil, func(c Config) string {
			return want(fmt.Sprint(c.Update.Cleanup, c.Update.KeepImages), "true 1")
		}},
		{"flags too", nil, []string{"-e=WATCHTOWER_LABEL_ENABLE=true", "--enable-lifecycle-hooks=WATCHTOWER_LIFECYCLE_HOOKS=true", "--rolling-restart=WATCHTOWER_ROLLING_RESTART=true"}, func(c Config) string {
			return want(fmt.Sprint(c.Watch.LabelEnable, c.Update.LifecycleHooks, c.Update.Parallel), "true true 1")
		}},
		{"stop timeout", []string{"WATCHTOWER_TIMEOUT=45s"}, nil, func(c Config) string { return want(c.Update.StopTimeout, 45*time.Second) }},
		{"scope none is unscoped", []string{"WATCHTOWER_SCOPE=none"}, nil, func(c Config) string { return want(c.Watch.Scope, "") }},
		{"scope", nil, []string{"--scope=WATCHTOWER_SCOPE=prod"}, func(c Config) string { return want(c.Watch.Scope, "prod") }},
		{"trace beats log level", []string{"WATCHTOWER_LOG_LEVEL=error", "WATCHTOWER_TRACE=true", "WATCHTOWER_LOG_FORMAT=JSON"}, nil, func(c Config) string {
			return want(c.Log.Level+" "+c.Log.Format, "debug json")
		}},
		{"log level", []string{"WATCHTOWER_LOG_LEVEL=fatal"}, nil, func(c Config) string { return want(c.Log.Level, "error") }},
		{"API mode turns the schedule off", []string{"WATCHTOWER_HTTP_API_UPDATE=true", "WATCHTOWER_HTTP_API_TOKEN=0123456789abcdef"}, nil, func(c Config) string {
			return want(c.Schedule+"|"+c.HTTP.Token, "|0123456789abcdef")
		}},
		{"API mode with periodic polls", []string{"WATCHTOWER_HTTP_API_UPDATE=true", "WATCHTOWER_HTTP_API_TOKEN=0123456789abcdef", "WATCHTOWER_HTTP_API_PERIODIC_POLLS=true", "WATCHTOWER_POLL_INTERVAL=600"}, nil, func(c Config) string {
			return want(c.Schedule, "@every 600s")
		}},
		{"token from a file", []string{"WATCHTOWER_HTTP_API_TOKEN=" + tokenFile}, nil, func(c Config) string { return want(c.HTTP.Token, "from-a-file-0123456789") }},
		{"notification URLs, space separated, files read", []string{"WATCHTOWER_NOTIFICATION_URL=discord://t@c " + urlFile}, nil, func(c Config) string {
			return want(strings.Join(c.Notify.URLs, " "), "discord://t@c slack://a@b generic://x.example")
		}},
		{"legacy notifications added", []string{"WATCHTOWER_NOTIFICATION_URL=discord://t@c", "WATCHTOWER_NOTIFICATIONS=gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN=Atoken"}, nil, func(c Config) string {
			return want(strings.Join(c.Notify.URLs, " "), "discord://t@c gotify://gotify.example/Atoken")
		}},
		{"accepted without effect", []string{"WATCHTOWER_HTTP_API_METRICS=true", "WATCHTOWER_NOTIFICATIONS_LEVEL=debug", "NO_COLOR=1", "WATCHTOWER_WARN_ON_HEAD_FAILURE=never"}, []string{"--no-color=NO_COLOR=true"}, func(c Config) string { return "" }},
		{"refusals only when asked for", []string{"WATCHTOWER_NO_PULL=false", "WATCHTOWER_REMOVE_VOLUMES=", "WATCHTOWER_PORCELAIN="}, nil, func(c Config) string { return "" }},
		{"Kubernetes service variables", []string{"WATCHTOWER_SERVICE_HOST=10.0.0.1", "WATCHTOWER_PORT_8080_TCP=tcp://10.0.0.1:8080", "WATCHTOWER_PORT=tcp://10.0.0.1:8080"}, nil, func(c Config) string {
			return want(c.Schedule, Default().Schedule) // not Watchtower's configuration: nothing changes
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := loadWT(t, "-", tc.env, tc.flags...)
			if err != nil {
				t.Fatalf("LoadWatchtower(%v, %v) error %v", tc.env, tc.flags, err)
			}
			if msg := tc.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func want[T comparable](got, want T) string {
	if got != want {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
}

// TestWatchtowerYieldsToWatcher: watcher's file and WATCHER_* variables win, and say so once.
func TestWatchtowerYieldsToWatcher(t *testing.T) {
	yml := "schedule: \"@every 1h\"\nwatch:\n  label_enable: true\nhttp:\n  token: 0123456789abcdef0\n"
	c, notes, err := loadWT(t, yml, []string{"WATCHTOWER_POLL_INTERVAL=30", "WATCHTOWER_HTTP_API_TOKEN=fedcba98765432100", "WATCHER_UPDATE_CLEANUP=true", "WATCHTOWER_CLEANUP=false"},
		"--label-enable=WATCHTOWER_LABEL_ENABLE=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule != "@every 1h" || !c.Watch.LabelEnable || c.HTTP.Token != "0123456789abcdef0" || !c.Update.Cleanup {
		t.Errorf("config = %+v; want the file's and WATCHER_*'s values", c)
	}
	for _, s := range []string{
		"WATCHTOWER_POLL_INTERVAL is overridden by schedule (",
		"--label-enable is overridden by watch.label_enable (",
		"WATCHTOWER_HTTP_API_TOKEN is overridden by http.token (",
		"WATCHTOWER_CLEANUP is overridden by WATCHER_UPDATE_CLEANUP",
	} {
		if n := countContaining(notes, s); n != 1 {
			t.Errorf("notices %q: %d say %q, want 1", notes, n, s)
		}
	}
	for _, n := range notes {
		if strings.Contains(n, "fedcba") || strings.Contains(n, "0123456789") {
			t.Errorf("notice %q shows a token", n)
		}
	}
	// Watchtower's token file loses to watcher's token too (one secret pair).
	c, _, err = loadWT(t, "-", []string{"WATCHER_HTTP_TOKEN_FILE=" + writeFile(t, t.TempDir(), "t", "0123456789abcdefXYZ"), "WATCHTOWER_HTTP_API_TOKEN=fedcba98765432100"})
	if err != nil || c.HTTP.Token != "0123456789abcdefXYZ" {
		t.Errorf("token = %q, %v; want WATCHER_HTTP_TOKEN_FILE's", c.HTTP.Token, err)
	}
}

func countContaining(list []string, s string) int {
	n := 0
	for _, x := range list {
		if strings.Contains(x, s) {
			n++
		}
	}
	return n
}

func TestWatchtowerNotices(t *testing.T) {
	_, notes, err := loadWT(t, "-", []string{"WATCHTOWER_HTTP_API_METRICS=true", "WATCHTOWER_NOTIFICATIONS_LEVEL=info"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"WATCHTOWER_HTTP_API_METRICS has no effect", "WATCHTOWER_NOTIFICATIONS_LEVEL has no effect", "Watchtower's defaults apply"} {
		if countContaining(notes, s) != 1 {
			t.Errorf("notices %q do not say %q once", notes, s)
		}
	}
	if _, notes, _ := loadWT(t, "-", nil); len(notes) != 0 {
		t.Errorf("notices without any Watchtower setting: %q", notes)
	}
}

func TestWatchtowerErrors(t *testing.T) {
	tests := []struct {
		env     []string
		flags   []string
		key     string
		wantMsg string
	}{
		{[]string{"WATCHTOWER_POLL_INTERVALL=30"}, nil, "WATCHTOWER_POLL_INTERVALL", "did you mean WATCHTOWER_POLL_INTERVAL?"},
		{[]string{"WATCHTOWER_HTTP_API_PORT=9000"}, nil, "WATCHTOWER_HTTP_API_PORT", "not a Watchtower variable"},
		{[]string{"WATCHTOWER_POLL_INTERVAL=30", "WATCHTOWER_SCHEDULE=0 0 4 * * *"}, nil, "WATCHTOWER_SCHEDULE", "set only one of"},
		{nil, []string{"-i=WATCHTOWER_POLL_INTERVAL=30", "--schedule=WATCHTOWER_SCHEDULE=@daily"}, "--schedule", "set only one of -i and --schedule"},
		{[]string{"WATCHTOWER_POLL_INTERVAL=0"}, nil, "WATCHTOWER_POLL_INTERVAL", "at least 1"},
		{[]string{"WATCHTOWER_POLL_INTERVAL=5m"}, nil, "WATCHTOWER_POLL_INTERVAL", "whole number"},
		{[]string{"WATCHTOWER_CLEANUP=yes please"}, nil, "WATCHTOWER_CLEANUP", "want true or false"},
		{[]string{"WATCHTOWER_TIMEOUT=30"}, nil, "WATCHTOWER_TIMEOUT", "with a unit"},
		{[]string{"WATCHTOWER_SCHEDULE=* * *"}, nil, "WATCHTOWER_SCHEDULE", "6-field"},
		{[]string{"WATCHTOWER_SCHEDULE=0 0 25 * * *"}, nil, "schedule", "(from WATCHTOWER_SCHEDULE)"},
		{nil, []string{"--no-pull=WATCHTOWER_NO_PULL=true"}, "--no-pull", "registry"},
		{[]string{"WATCHTOWER_NO_RESTART=true"}, nil, "WATCHTOWER_NO_RESTART", "monitor-only"},
		{[]string{"WATCHTOWER_REMOVE_VOLUMES=1"}, nil, "WATCHTOWER_REMOVE_VOLUMES", "never removes volumes"},
		{[]string{"WATCHTOWER_REVIVE_STOPPED=true"}, nil, "WATCHTOWER_REVIVE_STOPPED", "docker start"},
		{[]string{"WATCHTOWER_PORCELAIN=v1"}, nil, "WATCHTOWER_PORCELAIN", "watcher once --json"},
		{[]string{"WATCHTOWER_NOTIFICATION_TEMPLATE={{.}}"}, nil, "WATCHTOWER_NOTIFICATION_TEMPLATE", "notify.template"},
		{[]string{"REPO_USER=me", "REPO_PASS=pw"}, nil, "REPO_USER", "registry.auth.<host>"},
		{[]string{"WATCHTOWER_HTTP_API_UPDATE=true"}, nil, "WATCHTOWER_HTTP_API_UPDATE", "needs a token"},
		{[]string{"WATCHTOWER_LOG_LEVEL=loud"}, nil, "WATCHTOWER_LOG_LEVEL", "want panic"},
		{[]string{"WATCHTOWER_NOTIFICATION_URL=/nonexistent-dir/urls"}, nil, "notify.urls", "not a shoutrrr URL"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=gotify"}, nil, "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN", "missing"},
	}
	for _, tc := range tests {
		_, _, err := loadWT(t, "-", tc.env, tc.flags...)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Error(), tc.wantMsg) {
			t.Errorf("LoadWatchtower(%v, %v) = %v; want an error about %s saying %q", tc.env, tc.flags, err, tc.key, tc.wantMsg)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q is more than one line", err)
		}
	}
}

// TestWatchtowerLegacyNeedsTranslator: without notify's translator the legacy variables are refused.
func TestWatchtowerLegacyNeedsTranslator(t *testing.T) {
	_, err := Load("", []string{"WATCHTOWER_NOTIFICATIONS=slack"})
	if err == nil || !strings.Contains(err.Error(), "WATCHTOWER_NOTIFICATIONS") {
		t.Errorf("Load with WATCHTOWER_NOTIFICATIONS = %v; want an error naming it", err)
	}
}

func TestWatchtowerValue(t *testing.T) {
	env := []string{"WATCHTOWER_RUN_ONCE=1", "DOCKER_HOST=unix:///a.sock"}
	flags := []Flag{{Name: "-H", Var: "DOCKER_HOST", Value: "tcp://b:2376"}}
	if v, o, err := WatchtowerValue(env, flags, "WATCHTOWER_RUN_ONCE"); v != "true" || o != "WATCHTOWER_RUN_ONCE" || err != nil {
		t.Errorf("run once = %q, %q, %v", v, o, err)
	}
	if v, o, _ := WatchtowerValue(env, flags, "DOCKER_HOST"); v != "tcp://b:2376" || o != "-H" {
		t.Errorf("DOCKER_HOST = %q from %q; want the flag's", v, o)
	}
	if _, _, err := WatchtowerValue([]string{"WATCHTOWER_RUN_ONCE=maybe"}, nil, "WATCHTOWER_RUN_ONCE"); err == nil {
		t.Error("a bad boolean is no error")
	}
	if v, o, _ := WatchtowerValue(nil, nil, "WATCHTOWER_RUN_ONCE"); v != "" || o != "" {
		t.Errorf("unset = %q, %q", v, o)
	}
}

// TestWatchtowerFlagsComplete: every flag of Watchtower v1.7.1 is known, each once.
func TestWatchtowerFlagsComplete(t *testing.T) {
	v171 := []string{"host", "tlsverify", "api-version", "interval", "schedule", "stop-timeout", "no-pull", "no-restart",
		"no-startup-message", "cleanup", "remove-volumes", "label-enable", "disable-containers", "log-format", "debug", "trace",
		"monitor-only", "run-once", "include-restarting", "include-stopped", "revive-stopped", "enable-lifecycle-hooks",
		"rolling-restart", "http-api-update", "http-api-metrics", "http-api-token", "http-api-periodic-polls", "no-color",
		"scope", "porcelain", "log-level", "label-take-precedence", "notifications", "notifications-level",
		"notifications-delay", "notifications-hostname", "notification-email-from", "notification-email-to",
		"notification-email-delay", "notification-email-server", "notification-email-server-port",
		"notification-email-server-tls-skip-verify", "notification-email-server-user", "notification-email-server-password",
		"notification-email-subjecttag", "notification-slack-hook-url", "notification-slack-identifier",
		"notification-slack-channel", "notification-slack-icon-emoji", "notification-slack-icon-url",
		"notification-msteams-hook", "notification-msteams-data", "notification-gotify-url", "notification-gotify-token",
		"notification-gotify-tls-skip-verify", "notification-template", "notification-url", "notification-report",
		"notification-title-tag", "notification-skip-title", "warn-on-head-failure", "notification-log-stdout"}
	var got []string
	shorts := map[string]bool{}
	for _, f := range WatchtowerFlags() {
		got = append(got, f.Name)
		if f.Short != "" && shorts[f.Short] {
			t.Errorf("short flag -%s twice", f.Short)
		}
		shorts[f.Short] = true
	}
	slices.Sort(got)
	slices.Sort(v171)
	if !slices.Equal(got, v171) {
		t.Errorf("WatchtowerFlags() = %v\nwant %v", got, v171)
	}
}

// TestWatchtowerDocs keeps docs/migrating-from-watchtower.md naming every flag and variable.
func TestWatchtowerDocs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "migrating-from-watchtower.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, v := range wtVars {
		if !strings.Contains(doc, "`"+v.name+"`") {
			t.Errorf("docs/migrating-from-watchtower.md does not name `%s`", v.name)
		}
		if v.flag != "" && !strings.Contains(doc, "`--"+v.flag) {
			t.Errorf("docs/migrating-from-watchtower.md does not name `--%s`", v.flag)
		}
	}
}
