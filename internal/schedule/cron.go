// Package schedule reads the watcher's time specifications: cron schedules (the schedule key and
// the watcher.schedule label) and maintenance windows (update.window and the watcher.window
// label), so the config and the updater accept and refuse exactly the same text.
package schedule

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// parser accepts 5 fields, 6 with seconds first, descriptors (@daily, @every 5m) and a
// CRON_TZ= or TZ= prefix.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom |
	cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a cron spec, refusing what robfig/cron would accept wrongly or panic on, and a
// schedule that never fires. Errors quote the spec and say what is wrong.
func Parse(spec string) (s cron.Schedule, err error) {
	bad := func(format string, args ...any) (cron.Schedule, error) {
		return nil, fmt.Errorf("bad cron expression %q: %s", spec, fmt.Sprintf(format, args...))
	}
	_, rest, err := splitZone(spec)
	if err != nil {
		return bad("%v", err)
	}
	if rest == "" {
		return bad("empty schedule")
	}
	if every, ok := strings.CutPrefix(rest, "@every "); ok {
		d, err := time.ParseDuration(every)
		if err != nil {
			return bad("@every wants a duration like 5m or 1h30m")
		}
		if d < time.Second {
			return bad("@every needs at least 1s")
		}
	} else if !strings.HasPrefix(rest, "@") {
		if n := len(strings.Fields(rest)); n != 5 && n != 6 {
			return bad("expected 5 or 6 fields")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = bad("%v", r)
		}
	}()
	s, err = parser.Parse(spec)
	if err != nil {
		return bad("%v", err)
	}
	if s.Next(time.Now()).IsZero() {
		return bad("never fires")
	}
	return s, nil
}

// Zone is the time zone a spec's CRON_TZ= or TZ= prefix names, or time.Local without one (the
// zone cron uses for it, and the one maintenance windows are read in).
func Zone(spec string) (*time.Location, error) {
	zone, _, err := splitZone(spec)
	if err != nil {
		return nil, err
	}
	if zone == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", zone)
	}
	return loc, nil
}

// splitZone splits "CRON_TZ=Europe/Berlin 0 4 * * *" into the zone and the rest. The cron
// parser splits the zone off at the first space and panics without one.
func splitZone(spec string) (zone, rest string, err error) {
	rest = strings.TrimSpace(spec)
	if !strings.HasPrefix(rest, "TZ=") && !strings.HasPrefix(rest, "CRON_TZ=") {
		return "", rest, nil
	}
	i := strings.IndexByte(rest, ' ')
	if i < 0 || strings.IndexFunc(rest[:i], unicode.IsSpace) >= 0 {
		return "", "", fmt.Errorf("time zone prefix must be followed by a space and a schedule")
	}
	zone = rest[strings.IndexByte(rest, '=')+1 : i]
	if zone == "" {
		return "", "", fmt.Errorf("empty time zone")
	}
	return zone, strings.TrimSpace(rest[i:]), nil
}
