package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer for concurrent writers and readers: a log handler's sink or a
// child process's output that a test reads while it is still written. The zero value is ready.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
