package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at is a wall-clock time in loc during the week of Monday 2026-01-05.
func at(loc *time.Location, day time.Weekday, hhmm string) time.Time {
	var h, m int
	h = int(hhmm[0]-'0')*10 + int(hhmm[1]-'0')
	m = int(hhmm[3]-'0')*10 + int(hhmm[4]-'0')
	return time.Date(2026, 1, 4+int(day), h, m, 0, 0, loc) // 2026-01-04 is a Sunday
}

func TestWindowContains(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		window string
		day    time.Weekday
		clock  string
		want   bool
	}{
		{"02:00-04:00", time.Wednesday, "01:59", false},
		{"02:00-04:00", time.Wednesday, "02:00", true},
		{"02:00-04:00", time.Wednesday, "03:59", true},
		{"02:00-04:00", time.Wednesday, "04:00", false},
		// across midnight: open from the start day's evening to the next morning
		{"22:00-06:00", time.Sunday, "23:30", true},
		{"22:00-06:00", time.Monday, "00:30", true},
		{"22:00-06:00", time.Monday, "05:59", true},
		{"22:00-06:00", time.Monday, "06:00", false},
		{"22:00-06:00", time.Monday, "21:59", false},
		{"Mon-Fri 22:00-06:00", time.Friday, "23:00", true},
		{"Mon-Fri 22:00-06:00", time.Saturday, "03:00", true}, // Friday's window
		{"Mon-Fri 22:00-06:00", time.Saturday, "23:00", false},
		{"Mon-Fri 22:00-06:00", time.Monday, "03:00", false}, // Sunday opened none
		{"Mon-Fri 22:00-06:00", time.Tuesday, "03:00", true},
		{"Sat 00:00-24:00", time.Saturday, "23:59", true},
		{"Sat 00:00-24:00", time.Sunday, "00:00", false},
		{"Fri-Mon 10:00-11:00", time.Sunday, "10:30", true}, // a range wrapping the week
		{"Fri-Mon 10:00-11:00", time.Tuesday, "10:30", false},
		{"sat 23:00-00:00", time.Saturday, "23:30", true}, // ends at midnight (wraps to 00:00)
		{"sat 23:00-00:00", time.Sunday, "00:00", false},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.window)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tt.window, err)
		}
		now := at(utc, tt.day, tt.clock)
		if got := w.Contains(now, utc); got != tt.want {
			t.Errorf("%q.Contains(%s %s) = %t, want %t", tt.window, tt.day, tt.clock, got, tt.want)
		}
	}
}

// TestWindowZone: a window is read in the zone it is given, not the clock's.
func TestWindowZone(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	w, _ := ParseWindow("02:00-03:00")
	now := time.Date(2026, 1, 7, 1, 30, 0, 0, time.UTC) // 02:30 in Berlin
	if !w.Contains(now, berlin) || w.Contains(now, time.UTC) {
		t.Errorf("02:00-03:00 at 01:30 UTC: Berlin %t (want true), UTC %t (want false)", w.Contains(now, berlin), w.Contains(now, time.UTC))
	}
}

func TestNextStart(t *testing.T) {
	utc := time.UTC
	ws, err := ParseWindows([]string{"Mon-Fri 22:00-06:00", "Sat 10:00-12:00"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		day   time.Weekday
		clock string
		want  time.Time
	}{
		{time.Monday, "12:00", at(utc, time.Monday, "22:00")},
		{time.Friday, "22:00", at(utc, time.Saturday, "10:00")}, // the start itself is not "next"
		{time.Saturday, "13:00", at(utc, time.Monday, "22:00").AddDate(0, 0, 7)},
		{time.Sunday, "09:00", at(utc, time.Monday, "22:00")},
	}
	for _, tt := range tests {
		if got := ws.NextStart(at(utc, tt.day, tt.clock), utc); !got.Equal(tt.want) {
			t.Errorf("NextStart(%s %s) = %v, want %v", tt.day, tt.clock, got, tt.want)
		}
	}
	if got := Windows(nil).NextStart(time.Now(), utc); !got.IsZero() {
		t.Errorf("no windows: NextStart = %v, want zero", got)
	}
	if !Windows(nil).Contains(time.Now(), utc) {
		t.Error("no windows must mean always open")
	}
}

func TestParseWindowErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "expected an optional day",
		"22:00":              `needs a "-"`,
		"Mon-Fri":            `time "Mon" is not HH:MM`,
		"Mo 22:00-23:00":     `unknown day "Mo"`,
		"Mon-Fry 22:00-23:0": `unknown day "Fry"`,
		"22:00-23:0":         `time "23:0" is not HH:MM`,
		"25:00-23:00":        "not a time of day",
		"22:60-23:00":        "not a time of day",
		"24:00-02:00":        "only allowed as an end",
		"+1:00-02:00":        "is not HH:MM",
		"10:00-10:00":        "use 00:00-24:00",
		"Mon 1:00-2:00 x":    "expected an optional day",
	} {
		_, err := ParseWindow(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Mon-Fri 22:00-06:00") {
			t.Errorf("ParseWindow(%q) = %v, want an error mentioning %q and an example", in, err, want)
		}
	}
}

func TestParseWindowList(t *testing.T) {
	ws, err := ParseWindowList(" Mon-Fri 22:00-06:00 ; sat 10:00-12:00,")
	if err != nil || len(ws) != 2 || ws.String() != "Mon-Fri 22:00-06:00, sat 10:00-12:00" {
		t.Errorf("ParseWindowList = %v (%q), %v; want two windows", ws, ws.String(), err)
	}
	if ws, err := ParseWindowList(""); err != nil || ws != nil {
		t.Errorf("ParseWindowList(\"\") = %v, %v; want none", ws, err)
	}
}

func TestZone(t *testing.T) {
	for spec, want := range map[string]string{
		"0 4 * * *":                    time.Local.String(),
		"CRON_TZ=Europe/Berlin @daily": "Europe/Berlin",
		"TZ=UTC 0 4 * * *":             "UTC",
	} {
		loc, err := Zone(spec)
		if err != nil || loc.String() != want {
			t.Errorf("Zone(%q) = %v, %v; want %s", spec, loc, err, want)
		}
	}
	if _, err := Zone("CRON_TZ=Nowhere/Atlantis @daily"); err == nil {
		t.Error("Zone with an unknown zone: no error")
	}
}

func TestParseCron(t *testing.T) {
	for spec, want := range map[string]string{
		"* * *":           "expected 5 or 6 fields",
		"@every 10ms":     "at least 1s",
		"TZ=":             "time zone prefix",
		"CRON_TZ= @daily": "empty time zone",
		"0 0 30 2 *":      "never fires",
	} {
		if _, err := Parse(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", spec, err, want)
		}
	}
	if _, err := Parse("@every 2s"); err != nil {
		t.Errorf("Parse(@every 2s) = %v", err)
	}
}
