package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The daemon gives back to the operating system the heap a burst of work (a run, an inventory
// resync, a burst of requests) left behind, once the burst is over. Go's collector lets the heap
// grow to twice what is live before it collects, and its background scavenger returns free pages
// only down to about that goal: without this an idle daemon keeps the peak of its last burst
// resident for as long as it stays idle (at 1000 watched containers, ~20 MiB of heap for ~5 MiB
// live after five runs).
//
// Every releaseInterval the daemon reads the runtime's own counters (a few microseconds, no
// collection). When it allocated less than quietBytes since the last look (the burst is over) and
// the heap holds more than max(releaseMin, live/4) beyond its live bytes, debug.FreeOSMemory
// collects and returns every free page (a forced collection: a few milliseconds at 1000
// containers). An idle daemon allocates so little that it waits minutes between two.
// docs/benchmarks.md ("Daemon memory") has the figures.

const (
	releaseInterval = time.Second
	releaseMin      = 2 << 20
	quietBytes      = 1 << 20
)

// heapStats are the runtime's counters the rule reads.
type heapStats struct {
	live    uint64 // live after the last collection
	objects uint64 // live, and garbage not collected yet
	free    uint64 // free pages not returned to the OS
	allocs  uint64 // allocated since the start
}

var heapSamples = []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/free:bytes", "/gc/heap/allocs:bytes"}

func readHeap() heapStats {
	s := make([]metrics.Sample, len(heapSamples))
	for i, name := range heapSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	var v [4]uint64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return heapStats{live: v[0], objects: v[1], free: v[2], allocs: v[3]}
}

// excess is what a collection and a release would give back, at most, if ref bytes are live:
// the garbage and the free pages still held. (Free room inside spans still in use,
// /memory/classes/heap/unused, is not counted: no release gives it back.)
func (h heapStats) excess(ref uint64) uint64 { return max(h.objects, ref) - ref + h.free }

// worthReleasing is the size rule: an excess worth a forced collection with ref bytes live.
func worthReleasing(excess, ref uint64) bool { return excess > max(releaseMin, ref/4) }

// releaser remembers what it saw at its last look and after its last release.
type releaser struct {
	log        *slog.Logger
	lastAllocs uint64
	// floor is the heap's objects right after the last release: what was live then (0 before
	// the first). The runtime's live count is what its last collection found, and a collection
	// in the middle of a burst (an inventory resync holds the old list and the new) counts the
	// burst's garbage as live until the next collection, minutes later in an idle daemon.
	floor uint64
}

// releaseMemory looks every interval, until ctx ends.
func releaseMemory(ctx context.Context, interval time.Duration, log *slog.Logger) {
	r := &releaser{log: log, lastAllocs: readHeap().allocs}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.look()
	}
}

// look releases the heap's excess when the daemon has been quiet since the last look and the
// excess is worth it; it reports whether it did.
func (r *releaser) look() bool {
	h := readHeap()
	quiet := h.allocs-r.lastAllocs < quietBytes
	r.lastAllocs = h.allocs
	// Before the first release nothing tells what is live but the runtime's count, which the
	// start's own burst inflates (floor 0): the first quiet look releases, and learns it.
	ref := min(h.live, r.floor)
	excess := h.excess(ref)
	if !quiet || !worthReleasing(excess, ref) {
		return false
	}
	start := time.Now()
	debug.FreeOSMemory()
	after := readHeap()
	r.lastAllocs, r.floor = after.allocs, after.objects
	r.log.Debug("returned free heap to the OS", "excess_before", excess, "excess_after", after.excess(after.live), "live", after.live, "took", time.Since(start))
	return true
}
