package notify

import (
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/watcher-dev/watcher/failure"

	"github.com/watcher-dev/watcher/updater"
)

// DefaultTemplate is the message when notify.template is empty: a summary line, then one line per
// container that is not up to date (those are only counted, when notify.on sends them).
const DefaultTemplate = `watcher on {{host}}: {{summary .}}
{{- with .Error}}
run failed: {{trunc 300 .}}
{{- end}}
{{- range .Hosts}}{{if not .Reachable}}
- host {{.Name}} unreachable: {{trunc 300 .Error}}
{{- end}}{{end}}
{{- range .Containers}}{{if notable .}}
- {{if eq .Kind "service"}}service {{end}}{{with .Host}}{{.}}/{{end}}{{.Name}} ({{.Image}}): {{outcome .Outcome}}
  {{- if and .OldDigest .NewDigest}} {{short .OldDigest}} -> {{short .NewDigest}}{{end}}
  {{- with .NewImage}}, now {{.}}{{end}}
  {{- with .Failure}}: {{.Stage}} {{.Reason}}{{with .Message}}: {{trunc 300 .}}{{end}}{{end}}
  {{- with note .}} ({{trunc 300 .}}){{end}}
  {{- if .Downtime}}, {{seconds .Downtime}} down{{end}}
  {{- with .Replicas}}, {{.Running}}/{{.Desired}} tasks{{end}}
{{- end}}{{end}}
run {{.ID}} ({{.Trigger}}{{if .DryRun}}, dry run{{end}}), {{seconds (runtime .)}}`

// maxMessage caps a message: chat services refuse long ones (Discord 2000, Telegram 4096).
const maxMessage = 3500

// summaryOrder is the order of outcomes in summaries: what needs a human first.
var summaryOrder = []updater.Outcome{
	updater.OutcomeFailed, updater.OutcomeRolledBack, updater.OutcomeUpdated, updater.OutcomeRestarted,
	updater.OutcomePendingApproval, updater.OutcomeUpdateAvailable, updater.OutcomeUpToDate, updater.OutcomeSkipped,
}

// funcs are the helpers a template may use besides the report's fields and methods
// (.Count "updated", .Failed, .Changed).
func funcs(host string) template.FuncMap {
	return template.FuncMap{
		"host":    func() string { return host },
		"summary": summary,
		"notable": notable,
		"note":    note,
		"outcome": func(o updater.Outcome) string { return strings.ReplaceAll(string(o), "_", " ") },
		"short":   shortDigest,
		"seconds": func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() },
		"runtime": func(r *updater.Report) time.Duration {
			if r.StartedAt.IsZero() || r.FinishedAt.Before(r.StartedAt) {
				return 0
			}
			return r.FinishedAt.Sub(r.StartedAt)
		},
		"trunc": truncate,
	}
}

// parseTemplate parses text and proves it on a report with every outcome, so a template that
// names a missing field fails at startup rather than after the first update.
func parseTemplate(text, host string) (*template.Template, error) {
	t, err := template.New("notify").Funcs(funcs(host)).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if _, err := render(t, sampleReport()); err != nil {
		return nil, err
	}
	return t, nil
}

// render executes t over r; a panic in the template becomes an error.
func render(t *template.Template, r *updater.Report) (out string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("template panicked: %v", v)
		}
	}()
	var b strings.Builder
	if err := t.Execute(&b, r); err != nil {
		return "", err
	}
	return capMessage(strings.TrimSpace(b.String()), r.ID), nil
}

// summary is e.g. "1 failed, 2 updated, 5 up to date" (or "run failed" when the run itself did;
// "1 host unreachable" first when hosts are configured and one could not be reached).
func summary(r *updater.Report) string {
	var parts []string
	if r.Error != "" {
		parts = append(parts, "run failed")
	}
	switch n := len(r.Unreachable()); {
	case n == 1:
		parts = append(parts, "1 host unreachable")
	case n > 1:
		parts = append(parts, fmt.Sprintf("%d hosts unreachable", n))
	}
	for _, o := range summaryOrder {
		if n := r.Count(o); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(string(o), "_", " ")))
		}
	}
	if len(parts) == 0 {
		return "no containers"
	}
	return strings.Join(parts, ", ")
}

// notable reports whether a container gets its own line: all but up-to-date ones (a skipped
// update says why; waiting ones are sent once, see once.go).
func notable(c updater.ContainerReport) bool {
	return c.Outcome != updater.OutcomeUpToDate
}

// note is a line's message unless its failure says the same (a held update carries it twice).
func note(c updater.ContainerReport) string {
	if c.Failure != nil && c.Failure.Message == c.Message {
		return ""
	}
	return c.Message
}

// shortDigest is "sha256:0123456789ab" for a full digest, anything else unchanged.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}

// truncate cuts s to n runes with an ellipsis, and to its first line.
func truncate(n int, s string) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	if utf8.RuneCountInString(s) > n {
		s, cut = string([]rune(s)[:n]), true
	}
	if cut {
		s += "…"
	}
	return s
}

// capMessage keeps a message under maxMessage bytes, cutting at a line and pointing to the full report.
func capMessage(s, runID string) string {
	if len(s) <= maxMessage {
		return s
	}
	note := "\n… (cut; full report: GET /v1/runs/" + runID + ")"
	s = s[:maxMessage-len(note)]
	if i := strings.LastIndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + note
}

// title is the subject line for services that have one.
func title(r *updater.Report) string {
	if r.Failed() {
		return "watcher: FAILED — " + summary(r)
	}
	return "watcher: " + summary(r)
}

// sampleReport has every outcome and optional field, to prove templates at startup.
func sampleReport() *updater.Report {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	d := "sha256:" + strings.Repeat("ab", 32)
	r := &updater.Report{ID: "sample", Trigger: updater.TriggerSchedule, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Error: "sample",
		Hosts: []updater.HostReport{{Name: "edge-1", Reachable: true, Watched: 1}, {Name: "edge-2", Error: "sample"}}}
	for _, o := range summaryOrder {
		r.Containers = append(r.Containers, updater.ContainerReport{
			Host: "edge-1", Name: "c-" + string(o), ID: "0123456789ab", NewID: "ba9876543210", Image: "example/app:1", NewImage: "example/app:2",
			Policy: "digest", Mode: "update", OldDigest: d, NewDigest: d, Outcome: o, Message: "sample",
			Failure:  &updater.Failure{Stage: failure.StageVerify, Reason: failure.ContainerExited, Message: "exit 1"},
			Duration: time.Second, Downtime: time.Second,
		})
	}
	r.Containers = append(r.Containers, updater.ContainerReport{Kind: updater.KindService, Host: "edge-1", Name: "s-updated", ID: "0123456789ab",
		Image: "example/app:1", OldDigest: d, NewDigest: d, Outcome: updater.OutcomeUpdated,
		Replicas: &updater.Replicas{Mode: "replicated", Desired: 3, Running: 3}})
	return r
}
