package notify

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"

	"github.com/watcher-dev/watcher/updater"
)

// TestNewBadURL: each bad URL is named by index and scheme, with none of its secrets.
func TestNewBadURL(t *testing.T) {
	const secret = "S3CRETxyz"
	tests := []struct {
		url  string
		want string // in the error
		is   error
	}{
		{"", "notify.urls[1]: empty URL", nil},
		{"   ", "notify.urls[1]: empty URL", nil},
		{"nope" + secret, "notify.urls[1] ((unparseable URL)): not a URL", nil},
		{"foo://user:" + secret + "@host/x", `notify.urls[1] (foo://…): unknown service "foo"`, router.ErrUnknownService},
		{"foo+https://" + secret + "@host/x", `unknown service "foo"`, router.ErrUnknownService},
		{"telegram://" + secret + "@telegram", `notify.urls[1] (telegram://…): the "telegram" service refused the URL`, nil},
		{"slack://" + secret, `the "slack" service refused the URL`, nil},
		{"generic://%zz" + secret, "notify.urls[1] (generic://…): not a URL", nil},
		{"discord+https://" + secret + "@x/y", `the "discord" service takes no custom`, router.ErrCustomURLsNotSupported},
	}
	for _, tt := range tests {
		_, err := New(Options{URLs: []string{"generic+http://127.0.0.1:9/ok", tt.url}})
		if err == nil {
			t.Errorf("New(%q) = nil error", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %q, want it to contain %q", tt.url, err, tt.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("New(%q) error leaks the secret: %q", tt.url, err)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("New(%q) = %v, want errors.Is %v", tt.url, err, tt.is)
		}
	}
}

func TestNewBadTemplate(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{{":                    "notify.template: template: notify:1: unclosed action",
		"{{.Nope}}":             "notify.template: template: notify:1:2: executing",
		"{{nofunc .}}":          `notify.template: template: notify:1: function "nofunc" not defined`,
		`{{.Count 1 2}}`:        "notify.template: template: notify:1:2: executing",
		`{{range .Containers}}`: "notify.template: template: notify:1: unexpected EOF",
	} {
		_, err := New(Options{Template: tmpl})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("New(template %q) = %v, want %q…", tmpl, err, want)
		}
	}
	if _, err := New(Options{Template: `{{.ID}} {{.Count "updated"}} {{summary .}} {{host}} {{range .Containers}}{{short .NewDigest}}{{end}}`}); err != nil {
		t.Errorf("a template using the documented helpers: %v", err)
	}
}

// TestDefaultTemplate renders the default message in full.
func TestDefaultTemplate(t *testing.T) {
	tmpl, err := parseTemplate(DefaultTemplate, "box")
	if err != nil {
		t.Fatal(err)
	}
	rep := changedReport()
	rep.Error = ""
	rep.Containers = append(rep.Containers,
		updater.ContainerReport{Name: "cache", Image: "redis:7", Outcome: updater.OutcomeUpdateAvailable, NewImage: "redis:8", Mode: "monitor"},
		updater.ContainerReport{Name: "old", Image: "x:1", Outcome: updater.OutcomeSkipped, Message: "not running"},
		updater.ContainerReport{Name: "win", Image: "y:1", Outcome: updater.OutcomeSkipped, Message: "outside its maintenance window",
			Failure: &updater.Failure{Stage: failure.StagePlan, Reason: failure.OutsideWindow, Message: "outside its maintenance window"}},
		updater.ContainerReport{Name: "reg", Image: "gone:1", Outcome: updater.OutcomeFailed,
			Failure: &updater.Failure{Stage: failure.StageCheck, Reason: failure.ManifestUnknown, Message: "tag gone\nsecond line"}},
	)
	got, err := render(tmpl, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `watcher on box: 1 failed, 1 rolled back, 1 updated, 1 update available, 1 up to date, 2 skipped
- web (nginx:1.27): updated sha256:111111111111 -> sha256:222222222222, 1.2s down
- api (ghcr.io/acme/api:2): rolled back: verify ContainerExited: exit code 1 (application error)
- cache (redis:7): update available, now redis:8
- old (x:1): skipped (not running)
- win (y:1): skipped: plan OutsideWindow: outside its maintenance window
- reg (gone:1): failed: check ManifestUnknown: tag gone…
run run-7 (schedule), 1m35s`
	if got != want {
		t.Errorf("default message =\n%s\nwant\n%s", got, want)
	}

	rep = &updater.Report{ID: "r", Trigger: updater.TriggerHTTP, Error: "docker engine unreachable"}
	got, _ = render(tmpl, rep)
	if want := "watcher on box: run failed\nrun failed: docker engine unreachable\nrun r (http), 0s"; got != want {
		t.Errorf("failed run message = %q, want %q", got, want)
	}
}

// TestLongMessage: a huge run is cut at a line, under maxMessage, pointing to the full report.
func TestLongMessage(t *testing.T) {
	tmpl, _ := parseTemplate(DefaultTemplate, "box")
	rep := &updater.Report{ID: "big", Trigger: updater.TriggerSchedule, StartedAt: time.Now(), FinishedAt: time.Now()}
	for range 500 {
		rep.Containers = append(rep.Containers, updater.ContainerReport{Name: "container-with-a-long-name", Image: "ünïcode/image:1", Outcome: updater.OutcomeUpdated})
	}
	got, err := render(tmpl, rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > maxMessage || !strings.HasSuffix(got, "… (cut; full report: GET /v1/runs/big)") {
		t.Errorf("long message: %d bytes, ends %q", len(got), got[max(0, len(got)-60):])
	}
	if !strings.Contains(got, "\n- container-with-a-long-name (ünïcode/image:1): updated\n… (cut") {
		t.Errorf("not cut at a line boundary: %q", got[len(got)-120:])
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"slack://hook:TOKEN@channel":            "slack://…",
		"generic+https://u:p@example.com/x?y=z": "generic+https://…",
		"pushbullet://SECRETTOKEN":              "pushbullet://…",
		"not a url":                             "(unparseable URL)",
		"://x":                                  "(unparseable URL)",
		"a b://x":                               "(unparseable URL)",
		"":                                      "(unparseable URL)",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	raw := "generic+https://alice:pa55word!@hooks.example.com/services/T0KEN123?auth=abcdef123"
	tests := []struct{ in, want string }{
		{`Post "https://hooks.example.com/services/T0KEN123?auth=abcdef123": EOF`, `Post "https://…": EOF`},
		{"dial tcp hooks.example.com:443: no such host", "dial tcp ***:443: no such host"},
		{"bad token T0KEN123 for alice", "bad token *** for alice"}, // "alice" is too short to mask
		{"password pa55word! rejected", "password *** rejected"},
		{"query abcdef123 invalid", "query *** invalid"},
		{"server returned 500 Internal Server Error", "server returned 500 Internal Server Error"},
	}
	secrets := secretParts(raw)
	for _, tt := range tests {
		if got := scrub(tt.in, secrets); got != tt.want {
			t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:" + strings.Repeat("a", 64): "sha256:aaaaaaaaaaaa",
		"sha256:abc":                        "sha256:abc",
		"":                                  "",
	} {
		if got := shortDigest(in); got != want {
			t.Errorf("shortDigest(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tt := range []struct {
		n        int
		in, want string
	}{
		{5, "hello world", "hello…"},
		{5, "héllo", "héllo"},
		{50, "one\ntwo", "one…"},
		{3, "  ab  ", "ab"},
	} {
		if got := truncate(tt.n, tt.in); got != tt.want {
			t.Errorf("truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
	}
}
