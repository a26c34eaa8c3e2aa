package notify

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nicholas-fedor/shoutrrr/pkg/format"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/email/smtp"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// WatchtowerURLs translates Watchtower's legacy notification settings — WATCHTOWER_NOTIFICATIONS
// (email, slack, msteams, gotify, shoutrrr) and the per-service WATCHTOWER_NOTIFICATION_* variables
// — into shoutrrr URLs, as Watchtower itself did before sending. get returns a variable's value
// and the flag or variable it came from ("" when unset). Values that name an existing file stand
// for its content, as in Watchtower (hook URLs, tokens, the email password). notes are settings
// that have no effect here. Errors name the variable to fix and never hold a secret.
func WatchtowerURLs(get func(name string) (value, origin string)) (urls, notes []string, err error) {
	kinds, origin := get("WATCHTOWER_NOTIFICATIONS")
	w := &wtGet{get: get}
	for _, t := range strings.FieldsFunc(kinds, func(r rune) bool { return r == ',' || r == ' ' }) {
		var u string
		switch strings.ToLower(t) {
		case "shoutrrr": // the URLs are in WATCHTOWER_NOTIFICATION_URL already
			continue
		case "email":
			u, err = w.email()
		case "slack":
			u, err = w.slack()
		case "msteams":
			u, err = w.msteams()
		case "gotify":
			u, err = w.gotify()
		default:
			return nil, nil, fmt.Errorf("%s: unknown notification type %q (Watchtower's are email, slack, msteams, gotify and shoutrrr; other services take a shoutrrr URL in WATCHTOWER_NOTIFICATION_URL)", origin, t)
		}
		if err == nil && w.err != nil {
			err = w.err
		}
		if err != nil {
			return nil, nil, err
		}
		urls = append(urls, u)
	}
	return urls, w.notes, nil
}

// wtGet reads the per-service variables, remembering the first problem and what has no effect.
type wtGet struct {
	get   func(string) (string, string)
	notes []string
	err   error
}

// value returns a variable's value; a value naming an existing file is replaced by its content.
func (w *wtGet) value(name string) string {
	v, origin := w.get(name)
	if v == "" || strings.Contains(v, ":") {
		return v
	}
	if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
		b, err := os.ReadFile(v)
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("%s: cannot read the file it names: %v", origin, err)
		}
		return strings.TrimSpace(string(b))
	}
	return v
}

// required returns a variable's value, or records that the service needs it.
func (w *wtGet) required(service, name string) string {
	v := w.value(name)
	if v == "" && w.err == nil {
		flag := "--" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "WATCHTOWER_"), "_", "-"))
		w.err = fmt.Errorf("WATCHTOWER_NOTIFICATIONS: %s notifications need %s (%s)", service, name, flag)
	}
	return v
}

func (w *wtGet) bool(name string) bool {
	b, _ := strconv.ParseBool(w.value(name)) // config has checked it
	return b
}

// noEffect notes a variable that is set but means nothing for watcher.
func (w *wtGet) noEffect(name, why string) {
	if v, origin := w.get(name); v != "" && v != "false" {
		w.notes = append(w.notes, origin+" has no effect: "+why)
	}
}

// withDefaults returns a service config with its documented defaults set.
func withDefaults[C types.ServiceConfig](c C) C {
	pkr := format.NewPropKeyResolver(c)
	_ = pkr.SetDefaultProps(c) // the defaults are the library's own, valid by construction
	return c
}

func (w *wtGet) email() (string, error) {
	c := withDefaults(&smtp.Config{})
	c.FromAddress = w.required("email", "WATCHTOWER_NOTIFICATION_EMAIL_FROM")
	to := w.required("email", "WATCHTOWER_NOTIFICATION_EMAIL_TO")
	c.Host = w.required("email", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER")
	c.FromName = "watcher"
	c.ToAddresses = nil
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	for _, a := range strings.Split(to, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.ToAddresses = append(c.ToAddresses, a)
		}
	}
	c.Port = 25
	if p := w.value("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", fmt.Errorf("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT: want a port number, got %q", p)
		}
		c.Port = uint16(n)
	}
	c.Username = w.value("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER")
	c.Password = w.value("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD")
	c.Auth = smtp.AuthTypes.None
	if c.Username != "" {
		c.Auth = smtp.AuthTypes.Plain
	}
	// STARTTLS whenever the server offers it (Watchtower's own mailer did the same), and the
	// server's certificate checked unless Watchtower was told to skip that.
	c.UseStartTLS = true
	c.SkipTLSVerify = w.bool("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_TLS_SKIP_VERIFY")
	w.noEffect("WATCHTOWER_NOTIFICATION_EMAIL_SUBJECTTAG", "the subject is the run's title")
	return c.GetURL().String(), w.err
}

func (w *wtGet) slack() (string, error) {
	hook := w.required("slack", "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL")
	if w.err != nil {
		return "", w.err
	}
	bad := fmt.Errorf("WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL: not a Slack (or Discord /slack) webhook URL")
	u, err := url.Parse(strings.TrimRight(hook, "/"))
	if err != nil || u.Host == "" {
		return "", bad
	}
	name := w.value("WATCHTOWER_NOTIFICATION_SLACK_IDENTIFIER")
	if u.Host == "discord.com" || u.Host == "discordapp.com" {
		// Discord's Slack-compatible webhook: .../api/webhooks/<id>/<token>/slack
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(parts) < 3 {
			return "", bad
		}
		c := withDefaults(&discord.Config{})
		c.WebhookID, c.Token, c.Username = parts[len(parts)-3], parts[len(parts)-2], name
		return c.GetURL().String(), nil
	}
	token, err := slack.ParseToken(strings.TrimPrefix(u.Path, "/services/"))
	if err != nil {
		return "", bad
	}
	c := withDefaults(&slack.Config{})
	c.Token, c.Channel, c.BotName = *token, "webhook", name
	if icon := w.value("WATCHTOWER_NOTIFICATION_SLACK_ICON_EMOJI"); icon != "" {
		c.Icon = icon
	}
	if icon := w.value("WATCHTOWER_NOTIFICATION_SLACK_ICON_URL"); icon != "" {
		c.Icon = icon
	}
	w.noEffect("WATCHTOWER_NOTIFICATION_SLACK_CHANNEL", "a Slack webhook posts to the channel it was made for")
	return c.GetURL().String(), nil
}

func (w *wtGet) msteams() (string, error) {
	hook := w.required("msteams", "WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL")
	if w.err != nil {
		return "", w.err
	}
	u, err := url.Parse(hook)
	if err != nil {
		return "", fmt.Errorf("WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL: not a URL")
	}
	c, err := teams.ConfigFromWebhookURL(*u)
	if err != nil {
		return "", fmt.Errorf("WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL: not a Teams webhook URL (https://<tenant>.webhook.office.com/webhookb2/…); Microsoft retired the older outlook.office.com ones")
	}
	w.noEffect("WATCHTOWER_NOTIFICATION_MSTEAMS_USE_LOG_DATA", "the message is the run report")
	return c.GetURL().String(), nil
}

func (w *wtGet) gotify() (string, error) {
	raw := w.required("gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_URL")
	token := w.required("gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN")
	if w.err != nil {
		return "", w.err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("WATCHTOWER_NOTIFICATION_GOTIFY_URL: want http:// or https:// and the server, as in Watchtower")
	}
	c := withDefaults(&gotify.Config{})
	c.Host, c.Token = u.Host, token
	c.Path = strings.TrimSuffix(u.Path, "/") + "/"
	c.DisableTLS = u.Scheme == "http"
	c.InsecureSkipVerify = w.bool("WATCHTOWER_NOTIFICATION_GOTIFY_TLS_SKIP_VERIFY")
	return c.GetURL().String(), nil
}
