package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestNoticesAndUpdates: notices, update records and service journal records survive a reopen, nil forgets one, and an empty
// key is refused.
func TestNoticesAndUpdates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "watcher.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, put := range []func(string, []byte) error{s.PutNotice, s.PutUpdate, s.PutServiceJournal} {
		if err := put("web", []byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := put("db", []byte("b")); err != nil {
			t.Fatal(err)
		}
		if err := put("", []byte("x")); err == nil {
			t.Error("an empty key was accepted")
		}
	}
	if err := s.PutNotice("db", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutServiceJournal("web", nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if s, err = Open(p); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Notices(); err != nil || len(n) != 1 || string(n["web"]) != "a" {
		t.Errorf("Notices after reopen = %q, %v; want only web", n, err)
	}
	if u, err := s.Updates(); err != nil || len(u) != 2 {
		t.Errorf("Updates after reopen = %q, %v; want web and db", u, err)
	}
	if j, err := s.ServiceJournals(); err != nil || len(j) != 1 || string(j["db"]) != "b" {
		t.Errorf("ServiceJournals after reopen = %q, %v; want only db", j, err)
	}
	if b, err := s.Update("db"); err != nil || string(b) != "b" {
		t.Errorf("Update(db) = %q, %v", b, err)
	}
	if _, err := s.Update("gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(gone) = %v, want ErrNotFound", err)
	}
}
