package updater

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// countingKnown is a History with LastKnown that counts its writes of states.
type countingKnown struct {
	History
	puts  int
	prune []bool
	rows  map[string][]byte
}

func (c *countingKnown) PutLastKnown(states map[string][]byte, prune bool) error {
	c.puts++
	c.prune = append(c.prune, prune)
	c.rows = states
	return nil
}

func (c *countingKnown) LastKnown() (map[string][]byte, error) { return c.rows, nil }

// A run whose states changed in nothing but their check time writes nothing; a changed state, a
// new container, a container gone (in a run over all) or an old write do.
func TestSaveStatusWritesOnlyWhatChanged(t *testing.T) {
	h := &countingKnown{}
	u := &Updater{history: h, status: map[string]ContainerStatus{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, b := &Container{Name: "a", Watched: true}, &Container{Name: "b", Watched: true}
	set := func(c *Container, state State) {
		u.status[c.key()] = ContainerStatus{Name: c.Name, State: state, CheckedAt: time.Now()}
	}
	save := func(all bool, want int, cs ...*Container) {
		t.Helper()
		u.saveStatus(cs, all, nil)
		if h.puts != want {
			t.Fatalf("after saving %d containers: %d writes, want %d", len(cs), h.puts, want)
		}
	}
	set(a, StateUpToDate)
	set(b, StateUpToDate)
	save(true, 1, a, b)
	set(a, StateUpToDate) // a new check time only
	save(true, 1, a, b)
	save(false, 1, a) // a run over a alone: nothing new
	set(a, StateUpdateAvailable)
	save(false, 2, a)
	save(true, 2, a, b) // the file holds a (as just written) and b, nothing else
	c := &Container{Name: "c", Watched: true}
	set(c, StateUpToDate)
	save(false, 3, c) // a new container is written
	save(true, 3, a, b, c)
	save(true, 4, a) // b and c are gone: the file must forget them
	if len(h.rows) != 1 || !h.prune[3] {
		t.Fatalf("the write after b went: %d rows, prune %v; want 1 row, pruned", len(h.rows), h.prune)
	}
	u.saved.at = time.Now().Add(-stateRewrite - time.Second)
	save(true, 5, a) // the last write is old: check times are written again
}

// sameStatus ignores the check time only.
func TestSameStatus(t *testing.T) {
	now := time.Now()
	base := ContainerStatus{Name: "a", State: StateUpToDate, CheckedAt: now, UpdatedAt: now,
		LastError: &Failure{Message: "x"}, Approval: &Approval{Since: now}}
	same := base
	same.CheckedAt = now.Add(time.Hour)
	same.UpdatedAt = now.In(time.UTC) // the same instant
	same.LastError = &Failure{Message: "x"}
	same.Approval = &Approval{Since: now.In(time.UTC)}
	if !sameStatus(base, same) {
		t.Fatal("states differing in their check time only are not the same")
	}
	for name, change := range map[string]func(*ContainerStatus){
		"state":      func(s *ContainerStatus) { s.State = StateFailed },
		"updated at": func(s *ContainerStatus) { s.UpdatedAt = now.Add(time.Second) },
		"error":      func(s *ContainerStatus) { s.LastError = &Failure{Message: "y"} },
		"no error":   func(s *ContainerStatus) { s.LastError = nil },
		"approval":   func(s *ContainerStatus) { s.Approval = &Approval{Since: now.Add(time.Second)} },
	} {
		other := base
		change(&other)
		if sameStatus(base, other) {
			t.Errorf("a different %s is the same status", name)
		}
	}
}
