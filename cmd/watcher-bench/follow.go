package main

import (
	"context"

	"time"

	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/updater"
)

// followResult is the check run in this process the way the daemon runs it: the updater follows
// the engine's events (its inventory) and keeps its history and states in a state file.
type followResult struct {
	walls         []time.Duration
	warm          time.Duration
	api           string
	allocs, bytes uint64
}

// measureFollow runs the daemon's check in this process (for its profile and allocations): a
// first cycle, then c.cycles warm ones.
func (b *bench) measureFollow(ctx context.Context, c config, scope string, n int, prof string) (*followResult, error) {
	st, done, err := tempStore()
	if err != nil {
		return nil, err
	}
	defer done()
	u := updater.New(b.cli, registry.New(registry.Options{}), nil, st, updater.Options{
		Selection: updater.Selection{LabelEnable: true, Scope: scope},
		Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
		Cleanup:   true,
		Logger:    quiet(),
	})
	defer follow(ctx, u)()
	if _, err := cycle(ctx, u, n); err != nil {
		return nil, err
	}
	r := &followResult{}
	err = profile(c.profileDir, prof, func() error {
		for i := range c.cycles {
			d, allocs, bytes, err := b.measuredCycle(ctx, u, n)
			if err != nil {
				return err
			}
			r.walls = append(r.walls, d)
			r.allocs += allocs
			r.bytes += bytes
			if i == 0 {
				r.api = b.api.String()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.warm = median(r.walls)
	r.allocs, r.bytes = r.allocs/uint64(c.cycles), r.bytes/uint64(c.cycles)
	logf("check %d following events, in process with a state file: warm median %s of %v (engine %s), %d allocs %d KiB a cycle",
		n, r.warm.Round(100*time.Microsecond), roundAll(r.walls), r.api, r.allocs, r.bytes>>10)
	return r, nil
}

// follow runs u's event-driven inventory, as the daemon does, and gives it a second for its
// first resync; the func it returns stops it.
func follow(ctx context.Context, u *updater.Updater) (stop func()) {
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.FollowEvents(fctx); close(done) }()
	time.Sleep(time.Second)
	return func() { cancel(); <-done }
}
