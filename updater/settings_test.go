package updater

import (
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	d := Defaults{Mode: ModeUpdate}
	tests := []struct {
		name    string
		labels  map[string]string
		check   func(Settings) bool
		wantErr string
	}{
		{"defaults", nil, func(s Settings) bool {
			return s.Mode == ModeUpdate && s.Policy == PolicyDigest && s.Verify == 0 && s.Enabled == nil && s.StopTimeout == nil && !s.Follow
		}, ""},
		{"watcher labels", map[string]string{LabelEnable: "true", LabelMode: "monitor", LabelPolicy: "minor", LabelVerify: "3s", LabelStopTimeout: "1m", LabelDependsOn: "a, /b,", LabelMinAge: "24h"},
			func(s Settings) bool {
				return *s.Enabled && s.Mode == ModeMonitor && s.Policy == PolicyMinor && s.Verify == 3*time.Second && *s.StopTimeout == time.Minute &&
					strings.Join(s.DependsOn, ",") == "a,b" && s.MinAge == 24*time.Hour
			}, ""},
		{"watchtower labels honoured", map[string]string{wtEnable: "true", wtMonitorOnly: "true", wtScope: "blue", wtDependsOn: "db", wtStopSignal: "SIGINT"},
			func(s Settings) bool {
				return *s.Enabled && s.Mode == ModeMonitor && s.Scope == "blue" && s.DependsOn[0] == "db" && s.StopSignal == "SIGINT"
			}, ""},
		{"watcher label wins over watchtower", map[string]string{LabelEnable: "false", wtEnable: "true", LabelScope: "a", wtScope: "b"},
			func(s Settings) bool { return !*s.Enabled && s.Scope == "a" }, ""},
		{"bad duration", map[string]string{LabelVerify: "ten seconds"}, nil, `label watcher.verify="ten seconds"`},
		{"negative duration", map[string]string{LabelStopTimeout: "-1s"}, nil, "watcher.stop-timeout"},
		{"unknown policy", map[string]string{LabelPolicy: "latest"}, nil, `label watcher.policy="latest": want digest, patch, minor or major`},
		{"bad mode", map[string]string{LabelMode: "auto"}, nil, "watcher.mode"},
		{"bad regex", map[string]string{LabelTagInclude: "(["}, nil, "watcher.tag.include"},
		{"bad enable", map[string]string{LabelEnable: "maybe"}, nil, "watcher.enable"},
		{"follow", map[string]string{LabelEnable: "false", LabelFollow: "true"}, func(s Settings) bool { return !*s.Enabled && s.Follow }, ""},
		{"bad follow", map[string]string{LabelFollow: "sure"}, nil, `label watcher.follow="sure": want true or false`},
		{"stop-first by default", nil, func(s Settings) bool { return s.UpdateOrder == OrderStopFirst }, ""},
		{"start-first", map[string]string{LabelUpdateOrder: "start-first"}, func(s Settings) bool { return s.UpdateOrder == OrderStartFirst }, ""},
		{"bad update order", map[string]string{LabelUpdateOrder: "blue-green"}, nil, `label watcher.update-order="blue-green": want stop-first or start-first`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings(tc.labels, d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSettings(%v) error = %v, want containing %q", tc.labels, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSettings(%v) error = %v", tc.labels, err)
			}
			if !tc.check(s) {
				t.Errorf("ParseSettings(%v) = %+v, not as expected", tc.labels, s)
			}
		})
	}
}

func TestParseSettingsZeroDefaults(t *testing.T) {
	if s, err := ParseSettings(nil, Defaults{}); err != nil || s.Mode != ModeUpdate {
		t.Errorf("ParseSettings(nil, Defaults{}) = mode %q, %v; want %q", s.Mode, err, ModeUpdate)
	}
}

func TestSelection(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		sel  Selection
		s    Settings
		want bool
	}{
		{Selection{LabelEnable: true}, Settings{Enabled: &yes}, true},
		{Selection{LabelEnable: true}, Settings{}, false},
		{Selection{LabelEnable: false}, Settings{}, true},
		{Selection{LabelEnable: false}, Settings{Enabled: &no}, false},
		{Selection{LabelEnable: true, Scope: "blue"}, Settings{Enabled: &yes, Scope: "blue"}, true},
		{Selection{LabelEnable: true, Scope: "blue"}, Settings{Enabled: &yes}, false},
		{Selection{LabelEnable: true}, Settings{Enabled: &yes, Scope: "blue"}, false},
	}
	for _, tc := range tests {
		if got := tc.sel.Watched(tc.s); got != tc.want {
			t.Errorf("%+v.Watched(enabled=%v scope=%q) = %v, want %v", tc.sel, tc.s.Enabled, tc.s.Scope, got, tc.want)
		}
	}
}
