package keylock

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestLock: one holder per key at a time, other keys are free, and a waiter gives up when its
// context ends.
func TestLock(t *testing.T) {
	var l Locks
	ctx := context.Background()
	unlockA, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	unlockB, err := l.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("another key is not free: %v", err)
	}
	unlockB()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Lock(cancelled, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock of a held key with an ended context = %v, want context.Canceled", err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		inside int
	)
	for range 8 {
		wg.Go(func() {
			unlock, err := l.Lock(ctx, "a")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			if inside > 1 {
				t.Error("two holders of one key")
			}
			mu.Unlock()
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		})
	}
	unlockA()
	wg.Wait()
}
