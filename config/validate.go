package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/template/parse"

	"github.com/watcher-dev/watcher/internal/schedule"
)

// validate checks the merged configuration; errors are located where the bad value was set.
// The checks go by section; the first error found is returned.
func (l *loader) validate(c Config) error {
	if err := l.checkValues(&settings{Config: c, tokenFile: l.s.tokenFile, webhookSecretFile: l.s.webhookSecretFile, urlsFile: l.s.urlsFile}); err != nil {
		return err
	}
	if err := l.checkSecret("http.token", c.HTTP.Token); err != nil {
		return err
	}
	if err := l.checkSecret("http.webhook_secret", c.HTTP.WebhookSecret); err != nil {
		return err
	}
	if c.Schedule != "" {
		if _, err := schedule.Parse(c.Schedule); err != nil {
			return l.errAt("schedule", "%v", err)
		}
	}
	if c.StateDir == "" {
		return l.errAt("state_dir", "must not be empty")
	}
	for _, check := range []func(Config) error{l.checkOperations, l.checkUpdate, l.checkRegistry, l.checkHTTP, l.checkNotify, l.checkLog} {
		if err := check(c); err != nil {
			return err
		}
	}
	return nil
}

// checkUpdate checks update.mode, update.parallel and update.service_timeout.
func (l *loader) checkUpdate(c Config) error {
	if c.Update.Mode != "update" && c.Update.Mode != "monitor" {
		return l.errAt("update.mode", "want update or monitor, got %q", c.Update.Mode)
	}
	if c.Update.Parallel < 1 {
		return l.errAt("update.parallel", "must be at least 1, got %d", c.Update.Parallel)
	}
	if c.Update.ServiceTimeout <= 0 {
		return l.errAt("update.service_timeout", "must be more than 0 (the longest wait for a Swarm service's rolling update)")
	}
	return nil
}

// checkRegistry checks the registry limits and each registry.auth entry.
func (l *loader) checkRegistry(c Config) error {
	if c.Registry.Concurrency < 1 {
		return l.errAt("registry.concurrency", "must be at least 1, got %d", c.Registry.Concurrency)
	}
	if c.Registry.PerHost < 1 {
		return l.errAt("registry.per_host", "must be at least 1, got %d", c.Registry.PerHost)
	}
	if c.Registry.Timeout <= 0 {
		return l.errAt("registry.timeout", "must be more than 0")
	}
	for _, host := range sortedKeys(c.Registry.Auth) {
		key := "registry.auth." + host
		if err := checkHost(host); err != "" {
			return l.errAt(key, "%s", err)
		}
		a := c.Registry.Auth[host]
		if a.Username == "" {
			return l.errAt(key, "username is missing")
		}
		if a.Password == "" {
			return l.errAt(key, "password is missing (set password or password_file)")
		}
	}
	return nil
}

// checkHTTP checks the listen address, the rate limit and the TLS files.
func (l *loader) checkHTTP(c Config) error {
	if c.HTTP.Listen == "" {
		return l.errAt("http.listen", "must not be empty")
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
		return l.errAt("http.listen", "want host:port or :port, got %q", c.HTTP.Listen)
	}
	if c.HTTP.RateLimit < 0 {
		return l.errAt("http.rate_limit", "must not be negative (0 = no limit), got %d", c.HTTP.RateLimit)
	}
	switch {
	case c.HTTP.TLSCert != "" && c.HTTP.TLSKey == "":
		return l.errAt("http.tls_cert", "set without http.tls_key")
	case c.HTTP.TLSKey != "" && c.HTTP.TLSCert == "":
		return l.errAt("http.tls_key", "set without http.tls_cert")
	}
	for _, f := range [][2]string{{"http.tls_cert", c.HTTP.TLSCert}, {"http.tls_key", c.HTTP.TLSKey}} {
		key, path := f[0], f[1]
		if path == "" {
			continue
		}
		if err := checkReadable(path); err != nil {
			return l.errAt(key, "cannot read: %v", err)
		}
	}
	return nil
}

// checkNotify checks that each notification URL looks like one, and the template parses.
func (l *loader) checkNotify(c Config) error {
	for i, u := range c.Notify.URLs {
		key := "notify.urls"
		if l.s.urlsFile != "" {
			key = "notify.urls_file"
		}
		// The message never shows the URL: most notification URLs hold a token.
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || !strings.Contains(u, "://") {
			return l.errAt(key, "URL %d of %d is not a shoutrrr URL like slack://token@channel", i+1, len(c.Notify.URLs))
		}
	}
	if c.Notify.Template != "" {
		t := parse.New("notify.template")
		t.Mode = parse.SkipFuncCheck | parse.ParseComments
		if _, err := t.Parse(c.Notify.Template, "", "", map[string]*parse.Tree{}); err != nil {
			return l.errAt("notify.template", "bad template: %v", err)
		}
	}
	return nil
}

// checkLog checks log.level and log.format.
func (l *loader) checkLog(c Config) error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return l.errAt("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return l.errAt("log.format", "want text or json, got %q", c.Log.Format)
	}
	return nil
}

// checkOperations checks the keys of maintenance windows, kept images, approvals and notify.on.
func (l *loader) checkOperations(c Config) error {
	if _, err := schedule.ParseWindows(c.Update.Window); err != nil {
		return l.errAt("update.window", "%v", err)
	}
	if c.Update.KeepImages < 0 {
		return l.errAt("update.keep_images", "must not be negative (0 = cleanup removes superseded images at once), got %d", c.Update.KeepImages)
	}
	for _, k := range c.Update.Approve {
		if !slices.Contains(approveKinds, k) {
			return l.errAt("update.approve", "unknown update kind %q; want any of %s", k, strings.Join(approveKinds, ", "))
		}
	}
	for _, o := range c.Notify.On {
		if !slices.Contains(notifyOutcomes, o) {
			return l.errAt("notify.on", "unknown outcome %q; want any of %s", o, strings.Join(notifyOutcomes, ", "))
		}
	}
	return nil
}

// approveKinds are the kinds of update update.approve may name.
var approveKinds = []string{"digest", "patch", "minor", "major"}

// notifyOutcomes are the outcomes notify.on may name (a run report line's outcome).
var notifyOutcomes = []string{"updated", "up_to_date", "update_available", "pending_approval", "skipped",
	"failed", "rolled_back", "restarted", "handed_over"}

// checkHost says what is wrong with a registry host name, or "".
func checkHost(host string) string {
	switch {
	case host == "":
		return "empty registry host"
	case strings.Contains(host, "://"), strings.ContainsAny(host, "/ \t\r\n@"):
		return fmt.Sprintf("want a registry host like ghcr.io or localhost:5000, got %q", host)
	}
	return ""
}

// checkReadable opens and closes a regular file.
func checkReadable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
