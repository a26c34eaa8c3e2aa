package updater

import (
	"fmt"
	"regexp"
	"strings"
	"time"
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

	PolicyDigest = "digest"
	PolicyPatch  = "patch"
	PolicyMinor  = "minor"
	PolicyMajor  = "major"
)

// Defaults are the config values labels override in the updater. The durations (stop timeout,
// verify, health timeout) are lifecycle's: a label overrides them per update, and without one
// the Spec leaves them zero so lifecycle.Options (update.*) apply.
type Defaults struct {
	Mode string // update.mode; "" = ModeUpdate
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
	s := Settings{Mode: d.Mode, Policy: PolicyDigest}
	if s.Mode == "" {
		s.Mode = ModeUpdate
	}
	var errs []string
	bad := func(key, val, why string) { errs = append(errs, fmt.Sprintf("label %s=%q: %s", key, val, why)) }

	if v, ok := labels[LabelEnable]; ok {
		b, err := parseBool(v)
		if err != nil {
			bad(LabelEnable, v, "want true or false")
		} else {
			s.Enabled = &b
		}
	} else if v, ok := labels[wtEnable]; ok {
		if b, err := parseBool(v); err == nil {
			s.Enabled = &b
		} else {
			bad(wtEnable, v, "want true or false")
		}
	}
	s.Scope, _ = label(labels, LabelScope, wtScope)

	if v, ok := labels[LabelMode]; ok {
		switch v {
		case ModeUpdate, ModeMonitor:
			s.Mode = v
		default:
			bad(LabelMode, v, "want update or monitor")
		}
	} else if v, ok := labels[wtMonitorOnly]; ok {
		b, err := parseBool(v)
		switch {
		case err != nil:
			bad(wtMonitorOnly, v, "want true or false")
		case b:
			s.Mode = ModeMonitor
		}
	}
	if v, ok := labels[LabelPolicy]; ok {
		switch v {
		case PolicyDigest, PolicyPatch, PolicyMinor, PolicyMajor:
			s.Policy = v
		default:
			bad(LabelPolicy, v, "want digest, patch, minor or major")
		}
	}
	for _, re := range []struct {
		key string
		dst **regexp.Regexp
	}{{LabelTagInclude, &s.TagInclude}, {LabelTagExclude, &s.TagExclude}} {
		if v, ok := labels[re.key]; ok && v != "" {
			r, err := regexp.Compile(v)
			if err != nil {
				bad(re.key, v, "bad regular expression: "+err.Error())
			} else {
				*re.dst = r
			}
		}
	}
	if v, ok := label(labels, LabelDependsOn, wtDependsOn); ok {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimPrefix(strings.TrimSpace(n), "/"); n != "" {
				s.DependsOn = append(s.DependsOn, n)
			}
		}
	}
	s.StopSignal, _ = label(labels, LabelStopSignal, wtStopSignal)
	if v, ok := labels[LabelFollow]; ok {
		b, err := parseBool(v)
		if err != nil {
			bad(LabelFollow, v, "want true or false")
		}
		s.Follow = b
	}
	for _, dur := range []struct {
		key string
		set func(time.Duration)
	}{
		{LabelStopTimeout, func(d time.Duration) { s.StopTimeout = &d }},
		{LabelVerify, func(d time.Duration) { s.Verify = d }},
		{LabelHealthTimeout, func(d time.Duration) { s.HealthTimeout = d }},
		{LabelMinAge, func(d time.Duration) { s.MinAge = d }},
	} {
		if v, ok := labels[dur.key]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				bad(dur.key, v, "want a duration such as 30s or 5m")
				continue
			}
			dur.set(d)
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return s, nil
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
	LabelEnable bool   // only containers with watcher.enable=true
	Scope       string // only containers whose scope label equals this
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
