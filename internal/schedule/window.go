package schedule

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// A maintenance window is "[DAYS ]HH:MM-HH:MM": the hours updates may be applied in, read in a
// time zone (the schedule's). DAYS is one day or a range of days (Mon, Mon-Fri, Fri-Mon) on which
// the window starts; without it the window opens every day. A window whose end is not after its
// start wraps midnight and ends on the next day ("Fri 22:00-06:00" ends Saturday 06:00);
// "24:00" ends at midnight.

// Window is one maintenance window.
type Window struct {
	days       [7]bool // by time.Weekday: the window starts on these days
	start, end int     // minutes after midnight; end may be 1440 (24:00)
	text       string  // as written, normalised ("Mon-Fri 22:00-06:00")
}

// Windows are the windows of one container (or of update.window): it may be updated when any
// of them is open. Nil means no restriction.
type Windows []Window

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWindow parses one "[DAYS ]HH:MM-HH:MM" entry.
func ParseWindow(s string) (Window, error) {
	bad := func(why string) (Window, error) {
		return Window{}, fmt.Errorf("bad maintenance window %q: %s (want \"[Mon-Fri ]HH:MM-HH:MM\", e.g. \"Mon-Fri 22:00-06:00\")", s, why)
	}
	fields := strings.Fields(s)
	var w Window
	switch len(fields) {
	case 1:
		for d := range w.days {
			w.days[d] = true
		}
	case 2:
		days, err := parseDays(fields[0])
		if err != nil {
			return bad(err.Error())
		}
		w.days = days
	default:
		return bad("expected an optional day or day range, then a time range")
	}
	from, to, ok := strings.Cut(fields[len(fields)-1], "-")
	if !ok {
		return bad("the time range needs a \"-\" between start and end")
	}
	var err error
	if w.start, err = parseClock(from, false); err != nil {
		return bad(err.Error())
	}
	if w.end, err = parseClock(to, true); err != nil {
		return bad(err.Error())
	}
	if w.start == w.end {
		return bad("start and end are the same; use 00:00-24:00 for a whole day")
	}
	w.text = strings.Join(fields, " ")
	return w, nil
}

// ParseWindows parses entries (update.window); nil for none.
func ParseWindows(entries []string) (Windows, error) {
	var out Windows
	for _, e := range entries {
		w, err := ParseWindow(e)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// ParseWindowList parses a label's value: entries separated by commas or semicolons
// ("Mon-Fri 22:00-06:00, Sat-Sun 00:00-24:00"). An empty value is no window at all.
func ParseWindowList(s string) (Windows, error) {
	var entries []string
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	return ParseWindows(entries)
}

// parseDays reads "Mon", "mon-fri" or "Fri-Mon" (a range may wrap the week).
func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	from, to, isRange := strings.Cut(s, "-")
	first, err := parseDay(from)
	if err != nil {
		return days, err
	}
	last := first
	if isRange {
		if last, err = parseDay(to); err != nil {
			return days, err
		}
	}
	for d := first; ; d = (d + 1) % 7 {
		days[d] = true
		if d == last {
			return days, nil
		}
	}
}

func parseDay(s string) (int, error) {
	if i := slices.Index(dayNames, strings.ToLower(s)); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("unknown day %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", s)
}

// parseClock reads "HH:MM" as minutes after midnight; "24:00" only as an end.
func parseClock(s string, end bool) (int, error) {
	digit := func(i int) int { return int(s[i] - '0') }
	if len(s) != 5 || s[2] != ':' || strings.IndexFunc(s[:2]+s[3:], func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	h, m := digit(0)*10+digit(1), digit(3)*10+digit(4)
	if h > 24 || m > 59 {
		return 0, fmt.Errorf("time %q is not a time of day", s)
	}
	if h == 24 && (m != 0 || !end) {
		return 0, fmt.Errorf("time %q: 24:00 is only allowed as an end", s)
	}
	return h*60 + m, nil
}

// String is the window as written (normalised).
func (w Window) String() string { return w.text }

// wraps reports whether the window ends on the day after it starts.
func (w Window) wraps() bool { return w.end <= w.start }

// Contains reports whether t, read in loc, is inside the window: from the start on a day it
// starts on, until the end (on the next day when it wraps midnight).
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	t = t.In(loc)
	min := t.Hour()*60 + t.Minute()
	today := int(t.Weekday())
	if !w.wraps() {
		return w.days[today] && min >= w.start && min < w.end
	}
	yesterday := (today + 6) % 7
	return (w.days[today] && min >= w.start) || (w.days[yesterday] && min < w.end)
}

// NextStart is the first start of the window after t (t itself excluded), in loc.
func (w Window) NextStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, mo, d := t.Date()
	for i := 0; i <= 7; i++ {
		day := time.Date(y, mo, d+i, 0, 0, 0, 0, loc)
		start := time.Date(y, mo, d+i, w.start/60, w.start%60, 0, 0, loc)
		if w.days[day.Weekday()] && start.After(t) {
			return start
		}
	}
	return time.Time{} // unreachable: a window opens on at least one day a week
}

// Contains reports whether t is inside any of the windows; no windows means always.
func (ws Windows) Contains(t time.Time, loc *time.Location) bool {
	if len(ws) == 0 {
		return true
	}
	return slices.ContainsFunc(ws, func(w Window) bool { return w.Contains(t, loc) })
}

// NextStart is the earliest start of any of the windows after t; zero without windows.
func (ws Windows) NextStart(t time.Time, loc *time.Location) time.Time {
	var next time.Time
	for _, w := range ws {
		if s := w.NextStart(t, loc); next.IsZero() || s.Before(next) {
			next = s
		}
	}
	return next
}

// String lists the windows as a label would ("Mon-Fri 22:00-06:00, Sat 10:00-12:00").
func (ws Windows) String() string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.String()
	}
	return strings.Join(parts, ", ")
}
