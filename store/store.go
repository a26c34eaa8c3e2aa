package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned when a key has no value.
var ErrNotFound = errors.New("not found")

// ErrLocked is wrapped by Open's error when another process holds the file.
var ErrLocked = errors.New("locked by another process")

// lockTimeout bounds the wait for the file lock another process holds.
const lockTimeout = time.Second

var (
	bucketRuns      = []byte("runs")
	bucketKnown     = []byte("last_known") // container name -> its last known state (updater's JSON)
	bucketJournal   = []byte("journal")    // txid -> {container, data}
	bucketJournalBy = []byte("journal_by") // containerID \x00 txid -> nothing
	keyContainer    = []byte("container")
	keyData         = []byte("data")
)

// Store is the watcher's state file. It is safe for concurrent use; only one process can have
// the file open at a time.
type Store struct {
	db *bolt.DB
}

// ErrDamaged is wrapped by Open's error when the file is not a readable state file: damaged
// (a disk fault, a copy cut short) or something else at that path. docs/reliability.md says how
// to recover.
var ErrDamaged = errors.New("damaged or not a watcher state file")

// Open opens (creating it and its parent directory when missing) the bbolt file at path. If
// another process holds the file, Open fails within about a second with an error naming it. A
// damaged file is an error wrapping ErrDamaged, never a panic: bbolt asserts its pages'
// consistency with panics, so Open checks the whole file (small: runs, digests, the journal)
// before anything reads it.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: creating directory for %s: %w", path, err)
	}
	db, err := openChecked(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is %w (is another watcher running with this state_dir?)", path, ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRuns, bucketKnown, bucketJournal, bucketJournalBy, bucketNotices, bucketUpdates, bucketApprovals, bucketServices} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: initialising %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// openChecked opens the file and checks every page, turning bbolt's panics into ErrDamaged.
func openChecked(path string) (db *bolt.DB, err error) {
	damaged := func(why any) error {
		detail := strings.TrimPrefix(fmt.Sprint(why), "panic: ")
		return fmt.Errorf("store: the state file %s is %w (%s); move it aside to start with an empty state (docs/reliability.md)", path, ErrDamaged, detail)
	}
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, damaged(p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, damaged(err)
	case err != nil:
		return nil, fmt.Errorf("store: cannot open the state file %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for cerr := range tx.Check() { // drained to the end: the checker stops only then
			if first == nil {
				first = cerr
			}
		}
		return first
	})
	if err != nil {
		_ = db.Close()
		return nil, damaged(err)
	}
	return db, nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) put(bucket []byte, key string, data []byte) error {
	if key == "" {
		return errors.New("store: empty key")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), data)
	})
}

func (s *Store) get(bucket []byte, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// PutRun stores one run's report under id (gzipped: compress.go). Ids must sort by time (byte order).
func (s *Store) PutRun(id string, data []byte) error { return s.put(bucketRuns, id, pack(data)) }

// Run returns the report stored under id, or ErrNotFound.
func (s *Store) Run(id string) ([]byte, error) {
	v, err := s.get(bucketRuns, id)
	if err != nil {
		return nil, err
	}
	return unpackRun([]byte(id), v)
}

// Runs returns up to limit reports, newest (highest id) first; limit <= 0 means all.
func (s *Store) Runs(limit int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			b, err := unpackRun(k, v)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// PruneRuns deletes all but the newest keep reports. With nothing to delete it writes nothing
// (a write transaction costs a sync of the file).
func (s *Store) PruneRuns(keep int) error {
	if keep < 0 {
		keep = 0
	}
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, _ := c.First(); k != nil && n <= keep; k, _ = c.Next() {
			n++
		}
		return nil
	}); err != nil || n <= keep {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		var old [][]byte
		c := b.Cursor()
		n := 0
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if n++; n > keep {
				old = append(old, bytes.Clone(k))
			}
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutLastKnown records the last known state of each container in states (by name) in one write.
// With prune, every name not in states is forgotten: the caller saw every container there is.
func (s *Store) PutLastKnown(states map[string][]byte, prune bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKnown)
		if prune {
			var gone [][]byte
			err := b.ForEach(func(k, _ []byte) error {
				if _, ok := states[string(k)]; !ok {
					gone = append(gone, bytes.Clone(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range gone {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		for name, data := range states {
			if name == "" {
				return errors.New("store: empty key")
			}
			if err := b.Put([]byte(name), data); err != nil {
				return err
			}
		}
		return nil
	})
}

// LastKnown returns every recorded state, by container name.
func (s *Store) LastKnown() (map[string][]byte, error) { return s.all(bucketKnown) }
