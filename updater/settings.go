package updater

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/internal/schedule"
)

// Labels on containers (README.md "Labels" lists them for users).
const (
	LabelEnable        = "watcher.enable"
	LabelMode          = "watcher.mode"
	LabelPolicy        = "watcher.policy"
	LabelTagInclude    = "watcher.tag.include"
	LabelTagExclude    = "watcher.tag.exclude"
	LabelScope         = "watcher.scope"
	LabelDependsOn     = "watcher.depends-on"
	LabelStopSignal    = "watcher.stop-signal"
	LabelStopTimeout   = "watcher.stop-timeout"
	LabelVerify        = "watcher.verify"
	LabelHealthTimeout = "watcher.health-timeout"
	LabelMinAge        = "watcher.min-age"
	// LabelFollow=true on an opted-out container lets a plan restart or recreate it (on its own
	// image) to follow a container it depends on; without it an opted-out container is never
	// touched.
	LabelFollow = "watcher.follow"
	// LabelWindow replaces update.window for the container: its maintenance windows, "" = none.
	LabelWindow = "watcher.window"
	// LabelSchedule is the container's own check schedule (cron, as the schedule key).
	LabelSchedule = "watcher.schedule"
	// LabelApprove replaces update.approve for the container: the kinds of update (digest,
	// patch, minor, major) that wait for a person's approval; "" = none.
	LabelApprove = "watcher.approve"
	// LabelUpdateOrder is stop-first (the default) or start-first: the new container started
	// and verified beside the old one, which stops only then (lifecycle.Spec.StartFirst).
	LabelUpdateOrder = "watcher.update-order"

	// Watchtower's labels, honoured when the watcher.* label is absent so existing deployments
	// work unchanged.
	wtPrefix      = "com.centurylinklabs.watchtower."
	wtEnable      = wtPrefix + "enable"
	wtMonitorOnly = wtPrefix + "monitor-only"
	wtScope       = wtPrefix + "scope"
	wtDependsOn   = wtPrefix + "depends-on"
	wtStopSignal  = wtPrefix + "stop-signal"

	// Compose's own labels, read for ordering.
	composeProject   = "com.docker.compose.project"
	composeService   = "com.docker.compose.service"
	composeDependsOn = "com.docker.compose.depends_on"
)

// Modes and policies.
const (
	ModeUpdate  = "update"
	ModeMonitor = "monitor"

	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"

	PolicyDigest = "digest"
	PolicyPatch  = "patch"
	PolicyMinor  = "minor"
	PolicyMajor  = "major"
)

// Defaults are the config values labels override in the updater. The durations (stop timeout,
// verify, health timeout) are lifecycle's: a label overrides them per update, and without one
// the Spec leaves them zero so lifecycle.Options (update.*) apply.
type Defaults struct {
	Mode   string           // update.mode; "" = ModeUpdate
	Window schedule.Windows // update.window; nil = always
	// Zone is the schedule's time zone, which windows are read in; nil = time.Local. A
	// watcher.schedule label with a CRON_TZ= prefix gives its container its own.
	Zone *time.Location
	// Approve is update.approve: the kinds of update that wait for approval (approve.go).
	Approve []string
}

// Settings are one container's effective settings: its labels over the config.
type Settings struct {
	Enabled       *bool // watcher.enable (or Watchtower's); nil when absent
	Scope         string
	Mode          string
	Policy        string
	TagInclude    *regexp.Regexp
	TagExclude    *regexp.Regexp
	DependsOn     []string
	StopSignal    string         // "" = the container's own
	StopTimeout   *time.Duration // nil = the container's own StopTimeout, else update.stop_timeout
	Verify        time.Duration  // 0 = update.verify
	HealthTimeout time.Duration  // 0 = update.health_timeout
	MinAge        time.Duration
	Follow        bool // watcher.follow=true (see LabelFollow)
	// Window: when updates may be applied (watcher.window, else update.window); nil = always.
	Window   schedule.Windows
	Zone     *time.Location // what Window is read in
	Schedule string         // watcher.schedule, validated; "" = the daemon's schedule
	// Approve: the kinds of update that wait for approval (watcher.approve, else update.approve).
	Approve []string
	Hooks   map[string]Hook // Watchtower's lifecycle hook labels, by hook name (hooks.go)
	// UpdateOrder is OrderStopFirst or OrderStartFirst (watcher.update-order).
	UpdateOrder string
}

// label returns the watcher label, else the Watchtower one, and whether either was set.
func label(labels map[string]string, ours, theirs string) (string, bool) {
	if v, ok := labels[ours]; ok {
		return v, true
	}
	if theirs != "" {
		if v, ok := labels[theirs]; ok {
			return v, true
		}
	}
	return "", false
}

// ParseSettings reads a container's labels over the defaults. A malformed value is an error
// naming the label and value; the caller marks that container failed and goes on with the rest.
// Enabled, Scope and Follow are filled in even when an error is returned, so selection (and the
// opt-out rule) still work.
func ParseSettings(labels map[string]string, d Defaults) (Settings, error) {
	r := &labelReader{labels: labels}
	s := Settings{Mode: cmp.Or(d.Mode, ModeUpdate), Policy: PolicyDigest}
	s.Enabled = r.bool(LabelEnable, wtEnable)
	s.Scope, _ = label(labels, LabelScope, wtScope)
	if _, ours := labels[LabelScope]; !ours && s.Scope == "none" {
		s.Scope = "" // Watchtower's name for "no scope": its --scope none watches these
	}
	if _, ok := labels[LabelMode]; ok {
		s.Mode = r.oneOf(LabelMode, s.Mode, "want update or monitor", ModeUpdate, ModeMonitor)
	} else if monitorOnly := r.bool(wtMonitorOnly, ""); monitorOnly != nil && *monitorOnly {
		s.Mode = ModeMonitor
	}
	s.Policy = r.oneOf(LabelPolicy, s.Policy, "want digest, patch, minor or major", PolicyDigest, PolicyPatch, PolicyMinor, PolicyMajor)
	s.TagInclude, s.TagExclude = r.regexp(LabelTagInclude), r.regexp(LabelTagExclude)
	if v, ok := label(labels, LabelDependsOn, wtDependsOn); ok {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimPrefix(strings.TrimSpace(n), "/"); n != "" {
				s.DependsOn = append(s.DependsOn, n)
			}
		}
	}
	s.StopSignal, _ = label(labels, LabelStopSignal, wtStopSignal)
	if f := r.bool(LabelFollow, ""); f != nil {
		s.Follow = *f
	}
	if d, ok := r.duration(LabelStopTimeout); ok {
		s.StopTimeout = &d
	}
	s.Verify, _ = r.duration(LabelVerify)
	s.HealthTimeout, _ = r.duration(LabelHealthTimeout)
	s.MinAge, _ = r.duration(LabelMinAge)
	s.Schedule, s.Zone = r.schedule(LabelSchedule, d.Zone)
	s.Window = d.Window
	if v, ok := labels[LabelWindow]; ok {
		if ws, err := schedule.ParseWindowList(v); err != nil {
			r.bad(LabelWindow, v, err.Error())
		} else {
			s.Window = ws
		}
	}
	s.Approve = d.Approve
	if v, ok := labels[LabelApprove]; ok {
		if kinds, err := ParseApproveKinds(v); err != nil {
			r.bad(LabelApprove, v, err.Error())
		} else {
			s.Approve = kinds
		}
	}
	s.UpdateOrder = r.oneOf(LabelUpdateOrder, OrderStopFirst, "want stop-first or start-first", OrderStopFirst, OrderStartFirst)
	s.Hooks = r.hooks()
	return s, r.err()
}

// schedule reads key as a cron spec and returns it with the zone windows are read in: its
// CRON_TZ=/TZ= prefix, else def (nil = time.Local).
func (r *labelReader) schedule(key string, def *time.Location) (string, *time.Location) {
	if def == nil {
		def = time.Local
	}
	v, ok := r.labels[key]
	if !ok || strings.TrimSpace(v) == "" {
		return "", def
	}
	v = strings.TrimSpace(v)
	if _, err := schedule.Parse(v); err != nil {
		r.bad(key, v, err.Error())
		return "", def
	}
	if zone, err := schedule.Zone(v); err == nil && (strings.HasPrefix(v, "TZ=") || strings.HasPrefix(v, "CRON_TZ=")) {
		return v, zone
	}
	return v, def
}

// labelReader reads typed label values and collects what is malformed, one phrase per label.
type labelReader struct {
	labels map[string]string
	errs   []string
}

func (r *labelReader) bad(key, val, why string) {
	r.errs = append(r.errs, fmt.Sprintf("label %s=%q: %s", key, val, why))
}

func (r *labelReader) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(r.errs, "; "))
}

// bool reads ours, else theirs (Watchtower's; "" = none): nil when neither is set or the value
// is not a boolean.
func (r *labelReader) bool(ours, theirs string) *bool {
	key := ours
	v, ok := r.labels[ours]
	if !ok && theirs != "" {
		key = theirs
		v, ok = r.labels[theirs]
	}
	if !ok {
		return nil
	}
	b, err := parseBool(v)
	if err != nil {
		r.bad(key, v, "want true or false")
		return nil
	}
	return &b
}

// oneOf reads key as one of the allowed values; def when it is absent or not allowed.
func (r *labelReader) oneOf(key, def, want string, allowed ...string) string {
	v, ok := r.labels[key]
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		r.bad(key, v, want)
		return def
	}
	return v
}

// regexp compiles key's value; nil when it is absent, empty or does not compile.
func (r *labelReader) regexp(key string) *regexp.Regexp {
	v, ok := r.labels[key]
	if !ok || v == "" {
		return nil
	}
	re, err := regexp.Compile(v)
	if err != nil {
		r.bad(key, v, "bad regular expression: "+err.Error())
		return nil
	}
	return re
}

// duration reads key as a non-negative duration; ok is false when it is absent or malformed.
func (r *labelReader) duration(key string) (time.Duration, bool) {
	v, ok := r.labels[key]
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.bad(key, v, "want a duration such as 30s or 5m")
		return 0, false
	}
	return d, true
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// Selection is what decides whether a container is watched at all.
type Selection struct {
	LabelEnable bool     // only containers with watcher.enable=true
	Scope       string   // only containers whose scope label equals this
	Names       []string // only these containers (Watchtower's positional names); none = any
	Exclude     []string // never these containers (Watchtower's --disable-containers)
}

// Named reports whether the selection's names let a container called name be watched.
func (sel Selection) Named(name string) bool {
	return (len(sel.Names) == 0 || slices.Contains(sel.Names, name)) && !slices.Contains(sel.Exclude, name)
}

// Watched reports whether a container with these settings is watched. watcher.enable=false always
// opts out. Scopes: a scoped instance watches only its scope; an unscoped instance watches only
// unscoped containers, so two instances never touch each other's containers (Watchtower's
// unscoped instance watched everything; we choose the safer rule, see docs/migrating-from-watchtower.md).
func (sel Selection) Watched(s Settings) bool {
	if s.Enabled != nil && !*s.Enabled {
		return false
	}
	if sel.LabelEnable && (s.Enabled == nil || !*s.Enabled) {
		return false
	}
	return s.Scope == sel.Scope
}
