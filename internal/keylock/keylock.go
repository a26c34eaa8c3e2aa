// Package keylock is a set of locks by key (a container's or a service's ID): whoever holds a
// key's lock is the only one working on that thing, and the others wait for it or for their
// context to end.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of locks by key. The zero value is ready to use.
type Locks struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // key -> closed when its holder unlocks
}

// Lock waits until no one holds key, then holds it until unlock is called; it fails with ctx's
// error when ctx ends first.
func (l *Locks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		l.mu.Lock()
		ch, held := l.busy[key]
		if !held {
			if l.busy == nil {
				l.busy = map[string]chan struct{}{}
			}
			ch = make(chan struct{})
			l.busy[key] = ch
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.busy, key)
				l.mu.Unlock()
				close(ch)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
