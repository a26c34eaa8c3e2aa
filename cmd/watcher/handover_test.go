package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/store"
)

// TestOpenStoreWaitsForPredecessor: run waits for a state file another process (a predecessor
// handing over) still holds, and gets it once that one lets go; once does not wait.
func TestOpenStoreWaitsForPredecessor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watcher.db")
	held, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(context.Background(), path, 0, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("openStore without a wait on a held file = %v, want ErrLocked", err)
	}
	// The holder lets go once openStore says it waits: a barrier, not a guess at how long it takes.
	waiting := &onLine{match: "waiting", seen: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(waiting, nil))
	released := make(chan struct{})
	go func() {
		<-waiting.seen
		_ = held.Close()
		close(released)
	}()
	s, err := openStore(context.Background(), path, 30*time.Second, log)
	if err != nil {
		t.Fatalf("openStore with a wait = %v, want the file once the holder closed it", err)
	}
	defer s.Close()
	select {
	case <-released:
	default:
		t.Fatal("openStore returned before the holder let go")
	}
}

// onLine is a log sink that closes seen at the first line containing match.
type onLine struct {
	match string
	seen  chan struct{}
	once  sync.Once
}

func (w *onLine) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.match) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// TestOpenStoreGivesUp: the wait is bounded and a cancelled context ends it.
func TestOpenStoreGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watcher.db")
	held, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := openStore(ctx, path, time.Minute, slog.New(slog.DiscardHandler)); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("openStore with a cancelled context = %v, want ErrLocked at once", err)
	}
}

// TestSuccessorWaitFromLifecycle: the predecessor waits for its successor by the deadline
// lifecycle gives (the successor's own, from the journal), not by its configuration; the
// configuration is only the fallback when lifecycle said nothing.
func TestSuccessorWaitFromLifecycle(t *testing.T) {
	a := &app{handoff: newHandoff()}
	a.cfg.Update.Verify, a.cfg.Update.HealthTimeout = 10*time.Second, 2*time.Minute
	if got := a.successorWait(); got != 2*time.Minute+10*time.Second {
		t.Fatalf("without lifecycle's deadline: %v, want the configuration's 2m10s", got)
	}
	a.handoff.wait = 45 * time.Minute // a successor whose labels say verify 15m, health-timeout 30m
	if got := a.successorWait(); got != 45*time.Minute {
		t.Fatalf("with lifecycle's deadline: %v, want 45m", got)
	}
}
