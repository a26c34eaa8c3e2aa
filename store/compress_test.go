package store

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// report is a run report's JSON of n lines, as the updater writes one (every container ID
// distinct, images and digests repeated).
func report(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"20261129T035838.937Z-9859e7","trigger":"http","containers":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"web-%04d","id":"%064x","image":"registry.example:5000/app%03d:v1","policy":"digest","mode":"update",`+
			`"old_digest":"sha256:%064x","new_digest":"sha256:%064x","outcome":"up_to_date","duration_ns":0}`, i, uint64(i)*0x9e3779b97f4a7c15, i/5, i/5, i/5)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// stored is the value the file holds for run id.
func stored(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketRuns).Get([]byte(id))); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRunsAreStoredCompressed: a large report is stored gzipped and read back as it was given,
// by Run and Runs; a small one is stored as it is.
func TestRunsAreStoredCompressed(t *testing.T) {
	s := open(t)
	big, small := report(1000), report(1)
	if err := s.PutRun("run-1", big); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRun("run-2", small); err != nil {
		t.Fatal(err)
	}
	if v := stored(t, s, "run-1"); !bytes.HasPrefix(v, gzipMagic) || len(v) > len(big)/4 {
		t.Errorf("a report of %d bytes is stored as %d bytes (gzipped: %v), want gzipped to a quarter or less", len(big), len(v), bytes.HasPrefix(v, gzipMagic))
	}
	if v := stored(t, s, "run-2"); !bytes.Equal(v, small) {
		t.Errorf("a report of %d bytes is stored as %q, want as it is", len(small), v)
	}
	if got, err := s.Run("run-1"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Run(run-1) = %d bytes, %v; want the %d bytes stored", len(got), err, len(big))
	}
	got, err := s.Runs(0)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], small) || !bytes.Equal(got[1], big) {
		t.Fatalf("Runs(0) = %d reports, %v; want both as stored, newest first", len(got), err)
	}
}

// TestRunsStoredPlainAreRead: reports an earlier version stored as they were read as they are.
func TestRunsStoredPlainAreRead(t *testing.T) {
	s := open(t)
	plain := report(1000)
	if err := s.put(bucketRuns, "run-1", plain); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Run("run-1"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Run(run-1) = %d bytes, %v; want the %d plain bytes", len(got), err, len(plain))
	}
}

// TestDamagedRunIsAnError: a stored report that does not inflate is an error naming the run,
// never a panic or a truncated report.
func TestDamagedRunIsAnError(t *testing.T) {
	s := open(t)
	v := pack(report(100))
	for _, damaged := range [][]byte{v[:len(v)/2], append(append([]byte{}, v[:20]...), bytes.Repeat([]byte{0xff}, 64)...), gzipMagic} {
		if err := s.put(bucketRuns, "run-1", damaged); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Run("run-1"); err == nil || !strings.Contains(err.Error(), "run-1") {
			t.Errorf("Run of a damaged report = %d bytes, %v; want an error naming run-1", len(got), err)
		}
		if got, err := s.Runs(0); err == nil {
			t.Errorf("Runs with a damaged report = %d reports, nil error", len(got))
		}
	}
}
