package lifecycle

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestRecoverOwnHostOnly: several Managers share one journal, one per engine. Recover finishes
// the transactions journaled on its own host; one journaled without a host (before hosts were
// configured) is finished by the Manager whose engine holds its container, and by no other,
// which could otherwise recreate the container from its snapshot on the wrong engine.
func TestRecoverOwnHostOnly(t *testing.T) {
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	id, name := f.run("svc", ref, nil, nil)
	elsewhere := strings.Repeat("ab", 32) // a container of another engine: unknown to this one

	put := func(host, containerID string) string {
		t.Helper()
		r := record{TxID: newTxID(), Host: host, ContainerID: containerID, Name: name, Step: stepPull, Seq: 2,
			Spec: specRecord{Image: ref}, Started: time.Now().Add(-time.Minute), Updated: time.Now().Add(-time.Minute)}
		b, _ := json.Marshal(r)
		if err := f.store.PutJournal(r.TxID, containerID, b); err != nil {
			t.Fatal(err)
		}
		return r.TxID
	}
	manager := func(host string) *Manager {
		m := New(f.Docker, f.store, Options{Host: host, Logger: testLogger(t)})
		m.settle = 0
		return m
	}
	onA := put("a", id)
	onB := put("b", elsewhere)
	legacyHere := put("", id)
	legacyElsewhere := put("", elsewhere)

	recovered := func(m *Manager) []string {
		var ids []string
		for _, r := range m.Recover(ctx(t)) {
			ids = append(ids, r.TxID)
		}
		return ids
	}
	if got := recovered(manager("c")); len(got) != 1 || got[0] != legacyHere {
		t.Fatalf("host c (this engine) recovered %v; want only the hostless transaction on its container (%s)", got, legacyHere)
	}
	if got := recovered(manager("a")); len(got) != 1 || got[0] != onA {
		t.Fatalf("host a recovered %v; want only its own (%s)", got, onA)
	}
	for _, tx := range []string{onB, legacyElsewhere} {
		e, err := f.store.Journal(tx)
		var r record
		if err != nil || json.Unmarshal(e.Data, &r) != nil || r.finished() {
			t.Errorf("transaction %s (another engine's) was touched: %v, step %s", tx, err, r.Step)
		}
	}
	// The watcher with one engine finishes what was journaled without a host, as it always did,
	// and another host's transaction only when it holds its container: here, it does not.
	if got := recovered(manager("")); len(got) != 1 || got[0] != legacyElsewhere {
		t.Errorf("the single-engine watcher recovered %v; want only the hostless %s, not host b's %s", got, legacyElsewhere, onB)
	}
	if ins := f.Inspect(id); !ins.State.Running || ins.Name != "/"+name {
		t.Errorf("container %s: running %v, name %s; want it untouched and running", name, ins.State.Running, ins.Name)
	}
}
