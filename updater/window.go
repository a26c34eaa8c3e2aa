package updater

import (
	"fmt"
	"time"

	"github.com/watcher-dev/watcher/failure"
)

// outsideWindow says why c may not be applied at now, or "" when one of its container's
// maintenance windows is open (or it has none). The message names the windows, the zone they
// are read in and when the next one opens.
func outsideWindow(c *Container, now time.Time) string {
	ws, loc := c.Settings.Window, c.Settings.Zone
	if loc == nil {
		loc = time.Local
	}
	if ws.Contains(now, loc) {
		return ""
	}
	next := ws.NextStart(now, loc)
	return fmt.Sprintf("outside its maintenance window (%s, %s); the next one starts %s", ws, loc,
		next.Format("Mon 2006-01-02 15:04 MST"))
}

// windowHold is the hold of an update outside its windows (nil inside one).
func windowHold(c Candidate, now time.Time) *Hold {
	why := outsideWindow(c.Container, now)
	if why == "" {
		return nil
	}
	return &Hold{Target: c.Container.Target(), Outcome: OutcomeSkipped, Reason: failure.OutsideWindow, Why: why + " (" + c.Cause + ")"}
}
