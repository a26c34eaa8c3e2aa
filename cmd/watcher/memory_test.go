package main

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestWorthReleasing(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		h    heapStats
		ref  uint64
		want bool
	}{
		{heapStats{}, 0, false},
		{heapStats{objects: 1 * mib, free: releaseMin}, 1 * mib, false}, // small heaps: more than releaseMin
		{heapStats{objects: 2 * mib, free: releaseMin}, 1 * mib, true},  //   (garbage counts with free pages)
		{heapStats{objects: 45 * mib}, 40 * mib, false},                 // large heaps: more than a quarter of live
		{heapStats{objects: 40 * mib, free: 11 * mib}, 40 * mib, true},  //
		{heapStats{objects: 30 * mib, free: 1 * mib}, 40 * mib, false},  // swept below the last live count
	} {
		if got := worthReleasing(c.h.excess(c.ref), c.ref); got != c.want {
			t.Errorf("%+v with %d live: worthReleasing = %v, want %v", c.h, c.ref, got, c.want)
		}
	}
}

var sink []byte

// garbage allocates n MiB that nothing keeps, 64 KiB at a time.
func garbage(n int) {
	for range n * 16 {
		sink = make([]byte, 64<<10)
	}
	sink = nil
}

// TestReleaserLook: garbage left by a burst is released (collected, its pages returned) at the
// first look after the burst, not at a look during it. The heap's counters are the process's:
// what other tests' goroutines still do in the background (a daemon winding down) shows in them
// too, so the release is judged by what it gave back, not by an empty heap after it.
func TestReleaserLook(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection but the releaser's while garbage piles up
	debug.FreeOSMemory()                             // whatever the tests before left
	r := &releaser{log: slog.New(slog.NewTextHandler(io.Discard, nil)), lastAllocs: readHeap().allocs}
	garbage(32)
	before := readHeap()
	if before.excess(before.live) < 30<<20 {
		t.Fatalf("after 32 MiB of garbage: %+v, excess %d; want 32 MiB of excess", before, before.excess(before.live))
	}
	if r.look() {
		t.Fatal("released during the burst (32 MiB allocated since the last look)")
	}
	if !r.look() {
		t.Fatal("32 MiB of garbage was not released once the burst was over")
	}
	if after := readHeap(); after.excess(after.live)+24<<20 > before.excess(before.live) {
		t.Errorf("the release gave back less than 24 of the 32 MiB: excess %d before, %d after (%+v)", before.excess(before.live), after.excess(after.live), after)
	}
}

// TestReleaserLookAfterMidBurstCollection: garbage a collection counted as live (it was still
// referenced then, as the old list during an inventory resync) is released once the burst is
// over, without waiting for the next collection.
func TestReleaserLookAfterMidBurstCollection(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	debug.FreeOSMemory()
	r := &releaser{log: slog.New(slog.NewTextHandler(io.Discard, nil)), lastAllocs: readHeap().allocs}
	garbage(8)
	r.look()
	if !r.look() { // the floor: what is live after a release
		t.Fatal("8 MiB of garbage was not released")
	}
	held := make([][]byte, 256) // 16 MiB, referenced while the collection runs
	for i := range held {
		held[i] = make([]byte, 64<<10)
	}
	runtime.GC()
	runtime.KeepAlive(held)
	if h := readHeap(); h.live < 16<<20 {
		t.Fatalf("the collection counted %d bytes live, want the 16 MiB still referenced then", h.live)
	}
	r.look() // the burst's own look
	if !r.look() {
		t.Fatal("16 MiB the last collection counted live, garbage since, was not released")
	}
}
