package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestWorthReleasing(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		h    heapStats
		want bool
	}{
		{heapStats{}, false},
		{heapStats{live: 1 * mib, objects: 1 * mib, free: releaseMin}, false}, // small heaps: more than releaseMin
		{heapStats{live: 1 * mib, objects: 2 * mib, free: releaseMin}, true},  //   (garbage counts with free pages)
		{heapStats{live: 40 * mib, objects: 45 * mib}, false},                 // large heaps: more than a quarter of live
		{heapStats{live: 40 * mib, objects: 40 * mib, free: 11 * mib}, true},  //
		{heapStats{live: 40 * mib, objects: 30 * mib, free: 1 * mib}, false},  // swept below the last live count
	} {
		if got := c.h.worthReleasing(); got != c.want {
			t.Errorf("%+v.worthReleasing() = %v, want %v", c.h, got, c.want)
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
// first look after the burst, not at a look during it; then there is nothing left to release.
func TestReleaserLook(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection but the releaser's while garbage piles up
	debug.FreeOSMemory()                             // whatever the tests before left
	r := &releaser{log: slog.New(slog.NewTextHandler(io.Discard, nil)), lastAllocs: readHeap().allocs}
	garbage(32)
	if h := readHeap(); h.excess() < 30<<20 {
		t.Fatalf("after 32 MiB of garbage: %+v, excess %d; want 32 MiB of excess", h, h.excess())
	}
	if r.look() {
		t.Fatal("released during the burst (32 MiB allocated since the last look)")
	}
	if !r.look() {
		t.Fatal("32 MiB of garbage was not released once the burst was over")
	}
	if h := readHeap(); h.worthReleasing() {
		t.Errorf("after the release: %+v, excess %d: still worth a release", h, h.excess())
	}
	if r.look() {
		t.Error("released again with nothing allocated since")
	}
}
