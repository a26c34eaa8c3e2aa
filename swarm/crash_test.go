package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// The crash test runs Update in a child process (this test binary, re-executed to run only
// TestCrashChild) that SIGKILLs itself right after it journaled a step, then Recover in the parent
// with a fresh Manager on the same journal: the update is waited for and reported, and never
// sent a second time.

const crashChildEnv = "SWARM_CRASH_CHILD"

type crashJob struct {
	DB, Host, ServiceID, Image string
	CrashAfter                 string // the journal step after which the child kills itself
}

func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("only run as the crash test's child process")
	}
	var job crashJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(job.DB)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := client.New(client.WithHost(job.Host))
	if err != nil {
		t.Fatal(err)
	}
	m := New(cli, s, Options{Logger: testLogger()})
	m.afterJournal = func(step string) {
		if step == job.CrashAfter {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	res := m.Update(context.Background(), Spec{ServiceID: job.ServiceID, Image: job.Image})
	b, _ := json.Marshal(res)
	fmt.Println("RESULT", string(b))
}

// testCrash: killed right after journaling "send" (the update may or may not be on its way) and
// right after "wait" (it was sent): Recover finds out which, and waits for the update that was
// sent without sending it again.
func testCrash(t *testing.T, x *testenv.ExtraEngine, e *testenv.Env) {
	for _, step := range []string{stepSend, stepWait} {
		t.Run(step, func(t *testing.T) {
			f := newFixture(t, x, e, Options{})
			v1 := f.push("crash", "1", testenv.ImageSpec{Version: "v1"})
			id := e.Service(e.Name("crash-"+step), testenv.ServiceSpec{Image: v1, Replicas: 2})
			v2 := f.push("crash", "1", testenv.ImageSpec{Version: "v2-" + step})
			_ = f.j.Close() // the child opens the file; the parent again after it died
			job, _ := json.Marshal(crashJob{DB: f.db, Host: x.Host, ServiceID: id, Image: v2, CrashAfter: step})
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+string(job))
			out, err := cmd.CombinedOutput()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("child was not killed (err %v):\n%s", err, out)
			}
			j, err := store.Open(f.db)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			before, _ := x.Docker.ServiceInspect(f.ctx, id, client.ServiceInspectOptions{})
			res := New(f.d, j, Options{Poll: 200 * time.Millisecond, Logger: testLogger()}).Recover(f.ctx)
			if f.d.updates.Load() != 0 {
				t.Errorf("Recover sent %d ServiceUpdates, want none", f.d.updates.Load())
			}
			sent := image(before.Service.Spec) == v2
			switch {
			case len(res) != 1:
				t.Fatalf("Recover = %+v, want one result", res)
			case sent && (res[0].Outcome != OutcomeUpdated || !res[0].Recovered):
				t.Errorf("update sent before the crash: Recover = %+v (%v), want updated", res[0], res[0].Err)
			case !sent && (res[0].Err == nil || res[0].Err.Reason != "Interrupted" || e.ServiceImage(id) != v1):
				t.Errorf("update not sent before the crash: Recover = %+v (%v), image %s; want Interrupted and %s", res[0], res[0].Err, e.ServiceImage(id), v1)
			}
			if step == stepWait && !sent {
				t.Errorf("killed after journaling %q, yet the spec has %s", step, image(before.Service.Spec))
			}
			if sent {
				f.wantTasks(id, v2)
			}
			if rows, _ := j.ServiceJournals(); len(rows) != 0 {
				t.Errorf("journal after Recover: %d records, want none", len(rows))
			}
		})
	}
}
