package lifecycle

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestLogLinesNameTheContainer: every log line of an update (debug included) and of its
// rollback carries the container's name ("container", no leading "/"), its short ID ("id") and
// the transaction ("tx").
func TestLogLinesNameTheContainer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var buf safeBuffer
	o := f.m.o
	o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.m = New(f.Docker, f.store, o)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=1"}})

	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeRolledBack {
		t.Fatalf("Replace = %s, %v; want rolled_back", res.Outcome, res.Err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("only %d log lines:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if rec["container"] != name || rec["id"] != shortID(oldID) || rec["tx"] != res.TxID {
			t.Errorf("want container=%s id=%s tx=%s: %s", name, shortID(oldID), res.TxID, l)
		}
	}
}
