package main

import (
	"context"

	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
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
	dir, err := os.MkdirTemp("", "watcher-bench-follow")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "watcher.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	u := updater.New(b.cli, registry.New(registry.Options{}), nil, st, updater.Options{
		Selection: updater.Selection{LabelEnable: true, Scope: scope},
		Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
		Cleanup:   true,
		Logger:    quiet(),
	})
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.FollowEvents(fctx); close(done) }()
	defer func() { stop(); <-done }()
	time.Sleep(time.Second) // the first resync
	if _, err := cycle(ctx, u, n); err != nil {
		return nil, err
	}
	r := &followResult{}
	err = profile(c.profileDir, prof, func() error {
		for i := range c.cycles {
			b.api.Reset()
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			d, err := cycle(ctx, u, n)
			runtime.ReadMemStats(&m1)
			if err != nil {
				return err
			}
			r.walls = append(r.walls, d)
			r.allocs += m1.Mallocs - m0.Mallocs
			r.bytes += m1.TotalAlloc - m0.TotalAlloc
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
