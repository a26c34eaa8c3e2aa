package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/discord"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/slack"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/chat/teams"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/email/smtp"
	"github.com/nicholas-fedor/shoutrrr/pkg/services/push/gotify"
)

// vars is a Watchtower environment for WatchtowerURLs.
func vars(kv ...string) func(string) (string, string) {
	return func(name string) (string, string) {
		for _, s := range kv {
			if k, v, _ := strings.Cut(s, "="); k == name {
				return v, name
			}
		}
		return "", ""
	}
}

func translate(t *testing.T, kv ...string) (string, []string) {
	t.Helper()
	urls, notes, err := WatchtowerURLs(vars(kv...))
	if err != nil {
		t.Fatalf("WatchtowerURLs(%v) = %v", kv, err)
	}
	if len(urls) != 1 {
		t.Fatalf("WatchtowerURLs(%v) = %v, want one URL", kv, urls)
	}
	if _, err := New(Options{URLs: urls}); err != nil {
		t.Fatalf("the translated URL is refused by shoutrrr: %v", err)
	}
	return urls[0], notes
}

func parse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestWatchtowerEmail(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pw, []byte("pa ss:word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, notes := translate(t, "WATCHTOWER_NOTIFICATIONS=email",
		"WATCHTOWER_NOTIFICATION_EMAIL_FROM=watch@example.com", "WATCHTOWER_NOTIFICATION_EMAIL_TO=ops@example.com, dev@example.com",
		"WATCHTOWER_NOTIFICATION_EMAIL_SERVER=smtp.example.com", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT=587",
		"WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER=watch", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD="+pw,
		"WATCHTOWER_NOTIFICATION_EMAIL_SUBJECTTAG=[prod]")
	var c smtp.Config
	if err := c.SetURL(parse(t, raw)); err != nil {
		t.Fatal(err)
	}
	if c.Host != "smtp.example.com" || c.Port != 587 || c.Username != "watch" || c.Password != "pa ss:word" ||
		c.FromAddress != "watch@example.com" || !slices.Equal(c.ToAddresses, []string{"ops@example.com", "dev@example.com"}) ||
		c.Auth != smtp.AuthTypes.Plain || !c.UseStartTLS || c.SkipTLSVerify {
		t.Errorf("email URL %q parses to %+v", raw, c)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "WATCHTOWER_NOTIFICATION_EMAIL_SUBJECTTAG has no effect") {
		t.Errorf("notes = %q", notes)
	}
	raw, _ = translate(t, "WATCHTOWER_NOTIFICATIONS=email", "WATCHTOWER_NOTIFICATION_EMAIL_FROM=a@x", "WATCHTOWER_NOTIFICATION_EMAIL_TO=b@x",
		"WATCHTOWER_NOTIFICATION_EMAIL_SERVER=mail", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_TLS_SKIP_VERIFY=true")
	c = smtp.Config{}
	if err := c.SetURL(parse(t, raw)); err != nil || c.Port != 25 || c.Auth != smtp.AuthTypes.None || !c.SkipTLSVerify {
		t.Errorf("email URL without user %q parses to %+v, %v; want port 25, no auth, skip verify", raw, c, err)
	}
}

func TestWatchtowerSlack(t *testing.T) {
	const hook = "https://hooks.slack.com/services/T01234567/B01234567/abcdefghijklmnopqrstuvwx"
	raw, notes := translate(t, "WATCHTOWER_NOTIFICATIONS=slack", "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL="+hook,
		"WATCHTOWER_NOTIFICATION_SLACK_IDENTIFIER=prod-box", "WATCHTOWER_NOTIFICATION_SLACK_ICON_EMOJI=:whale:",
		"WATCHTOWER_NOTIFICATION_SLACK_CHANNEL=#ops")
	c, err := slack.CreateConfigFromURL(parse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if c.Token.WebhookURL() != hook || c.BotName != "prod-box" || c.Icon != ":whale:" {
		t.Errorf("slack URL %q parses to %+v (webhook %s)", raw, c, c.Token.WebhookURL())
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "SLACK_CHANNEL") {
		t.Errorf("notes = %q", notes)
	}
	// Discord's Slack-compatible webhook becomes shoutrrr's discord service, as in Watchtower.
	raw, _ = translate(t, "WATCHTOWER_NOTIFICATIONS=slack", "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL=https://discord.com/api/webhooks/123456/tok-EN_x/slack")
	var d discord.Config
	if err := d.SetURL(parse(t, raw)); err != nil || d.WebhookID != "123456" || d.Token != "tok-EN_x" {
		t.Errorf("discord URL %q parses to %+v, %v", raw, d, err)
	}
}

func TestWatchtowerTeams(t *testing.T) {
	const hook = "https://acme.webhook.office.com/webhookb2/11111111-4444-4444-8444-cccccccccccc@22222222-4444-4444-8444-cccccccccccc/IncomingWebhook/33333301222222222233333333333344/44444444-4444-4444-8444-cccccccccccc/V2abc"
	raw, _ := translate(t, "WATCHTOWER_NOTIFICATIONS=msteams", "WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL="+hook)
	var c teams.Config
	if err := c.SetURL(parse(t, raw)); err != nil || c.Host != "acme.webhook.office.com" || c.Group != "11111111-4444-4444-8444-cccccccccccc" || c.ExtraID != "V2abc" {
		t.Errorf("teams URL %q parses to %+v, %v", raw, c, err)
	}
}

func TestWatchtowerGotify(t *testing.T) {
	raw, _ := translate(t, "WATCHTOWER_NOTIFICATIONS=gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_URL=https://push.example.com/gotify/",
		"WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN=AbCdEfGhIjKlMnO", "WATCHTOWER_NOTIFICATION_GOTIFY_TLS_SKIP_VERIFY=true")
	var c gotify.Config
	if err := c.SetURL(parse(t, raw)); err != nil || c.Host != "push.example.com" || c.Path != "/gotify/" || c.Token != "AbCdEfGhIjKlMnO" || c.DisableTLS || !c.InsecureSkipVerify {
		t.Errorf("gotify URL %q parses to %+v, %v", raw, c, err)
	}
}

// TestWatchtowerGotifyDelivers sends a run report through the translated URL to a local
// Gotify-shaped receiver, the token read from a file as Watchtower allowed.
func TestWatchtowerGotifyDelivers(t *testing.T) {
	type req struct{ path, token, body string }
	got := make(chan req, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- req{r.URL.Path, r.URL.Query().Get("token") + r.Header.Get("X-Gotify-Key"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":1,"appid":1,"message":"ok","title":"t","priority":0,"date":"2025-01-01T00:00:00Z"}`)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "gotify-token")
	if err := os.WriteFile(tokenFile, []byte("AbCdEfGhIjKlMnO\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	urls, _, err := WatchtowerURLs(vars("WATCHTOWER_NOTIFICATIONS=shoutrrr,gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_URL="+srv.URL, "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN="+tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	res := newResults()
	n, err := New(Options{URLs: urls, OnResult: res.add, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.RunFinished(changedReport())
	if err := res.next(t); err != nil {
		t.Fatalf("OnResult = %v", err)
	}
	r := <-got
	if r.path != "/message" || r.token != "AbCdEfGhIjKlMnO" || !strings.Contains(r.body, "1 rolled back, 1 updated") {
		t.Errorf("receiver got %+v; want POST /message with the token and the run summary", r)
	}
}

func TestWatchtowerURLErrors(t *testing.T) {
	tests := []struct {
		kv   []string
		want string
	}{
		{[]string{"WATCHTOWER_NOTIFICATIONS=pushover"}, `unknown notification type "pushover"`},
		{[]string{"WATCHTOWER_NOTIFICATIONS=email", "WATCHTOWER_NOTIFICATION_EMAIL_TO=a@x"}, "email notifications need WATCHTOWER_NOTIFICATION_EMAIL_FROM (--notification-email-from)"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=slack"}, "slack notifications need WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=slack", "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL=https://example.com/S3CRETSECRET"}, "WATCHTOWER_NOTIFICATION_SLACK_HOOK_URL: not a Slack"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=msteams", "WATCHTOWER_NOTIFICATION_MSTEAMS_HOOK_URL=https://outlook.office.com/webhook/S3CRETSECRET"}, "not a Teams webhook URL"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=gotify", "WATCHTOWER_NOTIFICATION_GOTIFY_URL=push.example.com", "WATCHTOWER_NOTIFICATION_GOTIFY_TOKEN=S3CRETSECRET"}, "want http:// or https://"},
		{[]string{"WATCHTOWER_NOTIFICATIONS=email", "WATCHTOWER_NOTIFICATION_EMAIL_FROM=a@x", "WATCHTOWER_NOTIFICATION_EMAIL_TO=b@x", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER=m", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT=99999"}, "want a port number"},
	}
	for _, tc := range tests {
		_, _, err := WatchtowerURLs(vars(tc.kv...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WatchtowerURLs(%v) = %v; want an error saying %q", tc.kv, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("error %q shows a secret", err)
		}
	}
	if urls, _, err := WatchtowerURLs(vars()); err != nil || len(urls) != 0 {
		t.Errorf("nothing set = %v, %v", urls, err)
	}
}
