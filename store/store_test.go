package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state", "watcher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRuns(t *testing.T) {
	s := open(t)
	if _, err := s.Run("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Run(missing) = %v, want ErrNotFound", err)
	}
	for i := range 5 {
		if err := s.PutRun(fmt.Sprintf("run-%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Runs(3)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[4 3 2]"; fmt.Sprintf("%s", got) != want {
		t.Fatalf("Runs(3) = %s, want %s", got, want)
	}
	if err := s.PruneRuns(2); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Runs(0)
	if want := "[4 3]"; fmt.Sprintf("%s", got) != want {
		t.Fatalf("Runs after PruneRuns(2) = %s, want %s", got, want)
	}
	if b, err := s.Run("run-004"); err != nil || string(b) != "4" {
		t.Fatalf("Run(run-004) = %q, %v, want 4", b, err)
	}
}

func TestLastKnown(t *testing.T) {
	s := open(t)
	if got, err := s.LastKnown(); err != nil || len(got) != 0 {
		t.Fatalf("LastKnown() on a new file = %q, %v; want nothing", got, err)
	}
	if err := s.PutLastKnown(map[string][]byte{"a": []byte("1"), "b": []byte("1"), "c": []byte("1")}, false); err != nil {
		t.Fatal(err)
	}
	// A partial write keeps the others; a pruning one forgets every name it does not hold.
	if err := s.PutLastKnown(map[string][]byte{"a": []byte("2")}, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LastKnown(); len(got) != 3 || string(got["a"]) != "2" || string(got["c"]) != "1" {
		t.Fatalf("LastKnown() after a partial write = %q, want a=2 b=1 c=1", got)
	}
	if err := s.PutLastKnown(map[string][]byte{"b": []byte("3")}, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LastKnown(); len(got) != 1 || string(got["b"]) != "3" {
		t.Fatalf("LastKnown() after a pruning write = %q, want only b=3", got)
	}
	if err := s.PutLastKnown(map[string][]byte{"": nil}, false); err == nil {
		t.Error("PutLastKnown with an empty name succeeded, want an error")
	}
}

func TestJournal(t *testing.T) {
	s := open(t)
	if err := s.PutJournal("tx1", "c1", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJournal("tx1", "c1", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJournal("tx1", "c2", []byte("x")); err == nil {
		t.Fatal("PutJournal moved tx1 to another container; want an error")
	}
	_ = s.PutJournal("tx2", "c2", []byte("c"))
	_ = s.PutJournal("tx3", "c1", []byte("d"))
	e, err := s.Journal("tx1")
	if err != nil || e.ContainerID != "c1" || string(e.Data) != "b" {
		t.Fatalf("Journal(tx1) = %+v, %v", e, err)
	}
	all, _ := s.Journals()
	if len(all) != 3 || all[0].TxID != "tx1" || all[2].TxID != "tx3" {
		t.Fatalf("Journals() = %+v", all)
	}
	c1, _ := s.JournalsFor("c1")
	if len(c1) != 2 || c1[0].TxID != "tx1" || c1[1].TxID != "tx3" {
		t.Fatalf("JournalsFor(c1) = %+v", c1)
	}
	if err := s.DeleteJournal("tx1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJournal("tx1"); err != nil {
		t.Fatalf("DeleteJournal twice: %v", err)
	}
	if _, err := s.Journal("tx1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Journal(deleted) = %v, want ErrNotFound", err)
	}
	c1, _ = s.JournalsFor("c1")
	if len(c1) != 1 || c1[0].TxID != "tx3" {
		t.Fatalf("JournalsFor(c1) after delete = %+v", c1)
	}
}

func TestConcurrentWrites(t *testing.T) {
	s := open(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				_ = s.PutJournal(fmt.Sprintf("tx%d-%d", i, j), fmt.Sprint("c", i), []byte("x"))
				_, _ = s.Journals()
			}
		})
	}
	wg.Wait()
	all, _ := s.Journals()
	if len(all) != 160 {
		t.Fatalf("len(Journals()) = %d, want 160", len(all))
	}
}

func TestReopenKeepsData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "watcher.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.PutJournal("tx", "c", []byte("d"))
	_ = s.Close()
	s, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e, err := s.Journal("tx"); err != nil || string(e.Data) != "d" {
		t.Fatalf("Journal after reopen = %+v, %v", e, err)
	}
}

// TestLockedByAnotherProcess holds the file in a child process and expects Open to fail fast,
// naming the file.
func TestLockedByAnotherProcess(t *testing.T) {
	if p := os.Getenv("STORE_TEST_HOLD"); p != "" {
		s, err := Open(p)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		defer s.Close()
		fmt.Println("LOCKED")
		time.Sleep(30 * time.Second)
		return
	}
	p := filepath.Join(t.TempDir(), "watcher.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), "STORE_TEST_HOLD="+p)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "LOCKED") {
		t.Fatalf("child: %q", buf[:n])
	}
	start := time.Now()
	_, err := Open(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Open(locked) = %v, want an error naming %s", err, p)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Open(locked) took %v, want about 1s", d)
	}
}

// PruneRuns with no more than keep reports deletes nothing.
func TestPruneRunsKeepsFewerThanKeep(t *testing.T) {
	s := open(t)
	for i := range 3 {
		if err := s.PutRun(fmt.Sprintf("run-%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, keep := range []int{5, 3} {
		if err := s.PruneRuns(keep); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Runs(0); fmt.Sprintf("%s", got) != "[2 1 0]" {
			t.Fatalf("Runs after PruneRuns(%d) = %s, want [2 1 0]", keep, got)
		}
	}
}

// TestOpenDamaged: a file that is not a state file, or one whose pages were overwritten, is an
// error wrapping ErrDamaged that names the file, never a panic; the file is left as it was.
func TestOpenDamaged(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		_ = s.PutRun(fmt.Sprintf("run-%03d", i), []byte(strings.Repeat("x", 500)))
	}
	_ = s.Close()
	healthy, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	overwritten := append([]byte(nil), healthy...)
	for i := 2 * pageSize; i < 3*pageSize && i < len(overwritten); i++ {
		overwritten[i] = 0xff // the first page after the two meta pages
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("not a database at all")},
		{"zeros", make([]byte, 4*pageSize)},
		{"overwritten page", overwritten},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "watcher.db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded on a damaged file")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Open = %q; want one line wrapping ErrDamaged and naming %s", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != string(c.data) {
				t.Fatal("the damaged file was changed")
			}
		})
	}
}

// TestOpenUnreadable: a path that cannot be a state file (a directory) is an error naming it.
func TestOpenUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watcher.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open(directory) = %v; want one line naming %s", err, path)
	}
}
