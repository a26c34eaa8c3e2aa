package updater

import (
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/internal/schedule"
)

func windowed(entries ...string) func(*Container) {
	return func(c *Container) {
		ws, err := schedule.ParseWindows(entries)
		if err != nil {
			panic(err)
		}
		c.Settings.Window, c.Settings.Zone = ws, time.UTC
	}
}

// TestPlanWindows: outside every window an update is held (skipped, OutsideWindow, naming the
// next start) and its dependents are not touched; inside one, also across midnight, it goes
// ahead; force and a rollback lift the window; monitor mode still only reports.
func TestPlanWindows(t *testing.T) {
	wed := func(hhmm string) time.Time {
		h, _ := time.Parse("15:04", hhmm)
		return time.Date(2026, 1, 7, h.Hour(), h.Minute(), 0, 0, time.UTC) // a Wednesday
	}
	const night = "Mon-Fri 22:00-06:00"
	tests := []struct {
		name    string
		now     time.Time
		mods    []func(*Container)
		opts    func(*planOptions)
		want    string
		wantWhy string
	}{
		{name: "inside", now: wed("23:30"), mods: []func(*Container){windowed(night)},
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
		{name: "inside after midnight", now: wed("05:59"), mods: []func(*Container){windowed(night)},
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
		{name: "outside", now: wed("06:00"), mods: []func(*Container){windowed(night)},
			want:    "skip web: OutsideWindow: outside its maintenance window (Mon-Fri 22:00-06:00, UTC); the next one starts Wed 2026-01-07 22:00 UTC (new digest)\n",
			wantWhy: "next one starts Wed 2026-01-07 22:00 UTC"},
		{name: "outside, one of two open", now: wed("12:30"), mods: []func(*Container){windowed(night, "12:00-13:00")},
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
		{name: "outside but forced", now: wed("12:00"), mods: []func(*Container){windowed(night)},
			opts: func(o *planOptions) { o.Forced = map[string]bool{"web": true} },
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
		{name: "outside, rollback", now: wed("12:00"), mods: []func(*Container){windowed(night)},
			opts: func(o *planOptions) { o.Rollback = true },
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
		{name: "monitor mode reports, whatever the window", now: wed("12:00"), mods: []func(*Container){windowed(night), monitor},
			want: "hold web: monitor mode: new digest\n"},
		{name: "no window", now: wed("12:00"),
			want: "group 1:\n  update web (new digest)\n  restart app (depends on web) after web\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := observed(tgt("web", tt.mods...), tgt("app", dependsOn("web")))
			o := planOptions{Now: tt.now}
			if tt.opts != nil {
				tt.opts(&o)
			}
			plan := buildPlan(obs, cands(obs, "web"), o)
			if got := plan.String(); got != tt.want {
				t.Errorf("plan =\n%s\nwant\n%s", got, tt.want)
			}
			if tt.wantWhy == "" {
				return
			}
			lines := map[string]*ContainerReport{"web": {Name: "web", Outcome: OutcomeFailed}}
			notePlan(plan, lines)
			l := lines["web"]
			if l.Outcome != OutcomeSkipped || l.Failure == nil || l.Failure.Stage != "plan" || l.Failure.Reason != "OutsideWindow" || !strings.Contains(l.Message, tt.wantWhy) {
				t.Errorf("line = %+v %+v, want skipped, plan/OutsideWindow, saying %q", l, l.Failure, tt.wantWhy)
			}
		})
	}
}

// TestWindowZoneFromLabel: a watcher.schedule label with a zone prefix reads the container's
// windows in that zone; without one, the daemon's zone applies.
func TestWindowZoneFromLabel(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults{Zone: time.UTC}
	s, err := ParseSettings(map[string]string{LabelWindow: "02:00-03:00", LabelSchedule: "CRON_TZ=Europe/Berlin @every 1h"}, d)
	if err != nil || s.Zone.String() != berlin.String() || s.Schedule != "CRON_TZ=Europe/Berlin @every 1h" {
		t.Fatalf("settings = zone %v schedule %q, %v; want Europe/Berlin", s.Zone, s.Schedule, err)
	}
	now := time.Date(2026, 1, 7, 1, 30, 0, 0, time.UTC) // 02:30 in Berlin
	if why := outsideWindow(&Container{Settings: s}, now); why != "" {
		t.Errorf("02:30 Berlin in 02:00-03:00 Berlin: held: %s", why)
	}
	s, _ = ParseSettings(map[string]string{LabelWindow: "02:00-03:00"}, d)
	if why := outsideWindow(&Container{Settings: s}, now); !strings.Contains(why, "UTC") {
		t.Errorf("01:30 UTC outside 02:00-03:00 UTC: %q, want held naming UTC", why)
	}
}

// TestScheduleAndWindowLabels: bad labels are reported for the container (the rest of its
// settings still hold); an empty watcher.window lifts update.window.
func TestScheduleAndWindowLabels(t *testing.T) {
	def, _ := schedule.ParseWindows([]string{"02:00-03:00"})
	d := Defaults{Window: def, Zone: time.UTC}
	for labels, want := range map[string]string{
		LabelWindow + "=Mon 25:00-26:00": `label watcher.window="Mon 25:00-26:00": bad maintenance window`,
		LabelWindow + "=sometimes":       `label watcher.window="sometimes"`,
		LabelSchedule + "=* * *":         `label watcher.schedule="* * *": bad cron expression "* * *": expected 5 or 6 fields`,
		LabelSchedule + "=@every 10ms":   "at least 1s",
	} {
		k, v, _ := strings.Cut(labels, "=")
		s, err := ParseSettings(map[string]string{k: v, LabelEnable: "true"}, d)
		if err == nil || !strings.Contains(err.Error(), want) || s.Enabled == nil {
			t.Errorf("ParseSettings(%s) = %v, want an error with %q (and the rest read)", labels, err, want)
		}
	}
	if s, err := ParseSettings(map[string]string{LabelWindow: ""}, d); err != nil || s.Window != nil {
		t.Errorf("empty watcher.window = %v, %v; want no window", s.Window, err)
	}
	if s, _ := ParseSettings(nil, d); s.Window.String() != "02:00-03:00" || s.Schedule != "" {
		t.Errorf("no labels = window %q schedule %q; want update.window and the daemon's schedule", s.Window, s.Schedule)
	}
}

// TestRollbackPin: the digest a manual rollback undid is held unless forced; a newer one goes.
func TestRollbackPin(t *testing.T) {
	obs := observed(tgt("web"))
	c := Candidate{Container: obs.byName["web"], NewDigest: "sha256:" + strings.Repeat("b", 64), Cause: "new digest"}
	pinned := map[string]string{"web": c.NewDigest}
	got := buildPlan(obs, []Candidate{c}, planOptions{Pinned: pinned}).String()
	if !strings.HasPrefix(got, "skip web: a manual rollback undid sha256:bbbbbbbbbbbb; it is not applied again") {
		t.Errorf("pinned digest: plan =\n%s", got)
	}
	if got := buildPlan(obs, []Candidate{c}, planOptions{Pinned: pinned, Forced: map[string]bool{"web": true}}).String(); !strings.HasPrefix(got, "group 1:\n  update web") {
		t.Errorf("pinned digest, forced: plan =\n%s", got)
	}
	c.NewDigest = "sha256:" + strings.Repeat("c", 64)
	if got := buildPlan(obs, []Candidate{c}, planOptions{Pinned: pinned}).String(); !strings.HasPrefix(got, "group 1:\n  update web") {
		t.Errorf("a newer digest: plan =\n%s", got)
	}
}

// TestRollbackOfSelf: the watcher does not roll its own container back.
func TestRollbackOfSelf(t *testing.T) {
	obs := observed(tgt("watcher", self))
	got := buildPlan(obs, cands(obs, "watcher"), planOptions{Rollback: true, CanHandOver: true}).String()
	if !strings.HasPrefix(got, "skip watcher: Unsupported: the watcher cannot roll its own container back") {
		t.Errorf("plan =\n%s", got)
	}
}

// TestRequestFilters: pushes select by repository and tag (any tag under a tag policy, every
// tag without one), schedules by each container's own schedule or the daemon's; merging keeps
// force to what was forced.
func TestRequestFilters(t *testing.T) {
	web := tgt("web", func(c *Container) { c.Image = "127.0.0.1:5000/app:v1" })
	semver := tgt("api", func(c *Container) { c.Image = "127.0.0.1:5000/app:1.2.0"; c.Settings.Policy = PolicyMinor })
	own := tgt("own", func(c *Container) { c.Image = "nginx:1"; c.Settings.Schedule = "@every 1s" })
	broken := tgt("broken", func(c *Container) { c.Image = "nginx:1"; c.Settings.Schedule = "@every 1s"; c.SettingsErr = errFake })
	all := []*Container{web, semver, own, broken}
	names := func(r Request) string {
		var out []string
		for _, c := range selectTargets(all, r, "@daily") {
			out = append(out, c.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		req  Request
		want string
	}{
		{Request{}, "web,api,own,broken"},
		{Request{Pushed: []string{"127.0.0.1:5000/app:v1"}}, "web,api"},
		{Request{Pushed: []string{"127.0.0.1:5000/app:v2"}}, "api"},
		{Request{Pushed: []string{"127.0.0.1:5000/app"}}, "web,api"},
		{Request{Pushed: []string{"127.0.0.1:5000/other:v1"}}, ""},
		{Request{Pushed: []string{"docker.io/library/nginx:1"}}, "own,broken"},
		{Request{Schedules: []string{"@daily"}}, "web,api,broken"},
		{Request{Schedules: []string{"@every 1s"}}, "own"},
		{Request{Containers: []string{"web"}, Schedules: []string{"@every 1s"}}, "web,own"},
	} {
		if got := names(tt.req); got != tt.want {
			t.Errorf("%+v selects %q, want %q", tt.req, got, tt.want)
		}
	}
	m := mergeRequests(Request{Containers: []string{"web"}, Force: true}, Request{Schedules: []string{"@every 1s"}})
	for _, c := range all {
		want := c.Name == "web"
		if got := m.forces(c, "@daily"); got != want {
			t.Errorf("merged force of %s = %v, want %v", c.Name, got, want)
		}
	}
	if got := names(m); got != "web,own" {
		t.Errorf("merged request selects %q, want web,own", got)
	}
	m = mergeRequests(m, Request{Force: true})
	if names(m) != "web,api,own,broken" || !m.forces(semver, "@daily") {
		t.Errorf("merged with an unfiltered forced request: selects %q, forces api %v; want all, forced", names(m), m.forces(semver, "@daily"))
	}
}

var errFake = &NotWatchedError{Names: []string{"fake"}}
