package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestRollbackSeedCases: each broken new version is rolled back with the right stage and reason,
// and the old container (same ID, same image) serves again under its name.
func TestRollbackSeedCases(t *testing.T) {
	t.Parallel()
	yes := true
	cases := []struct {
		name   string
		v2     testenv.ImageSpec
		stage  failure.Stage
		reason failure.Reason
		msg    string // substring of the message
		hc     container.HostConfig
	}{
		{"exits immediately", testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=1"}}, failure.StageVerify, failure.ContainerExited, "exit code 1 (application error)", container.HostConfig{}},
		{"exits 3 later", testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=3", "APP_EXIT_AFTER=300ms"}}, failure.StageVerify, failure.ContainerExited, "exit code 3", container.HostConfig{}},
		{"unknown user", testenv.ImageSpec{User: "nosuchuser"}, failure.StageStart, failure.RunContainerError, "nosuchuser", container.HostConfig{}},
		{"missing entrypoint", testenv.ImageSpec{Entrypoint: []string{"/nope"}}, failure.StageStart, failure.RunContainerError, "exit code 127", container.HostConfig{}},
		// The test app runs under --init here: as PID 1 it could not SIGKILL itself. (Its
		// APP_CRASH_AFTER cannot give 139 either: the Go runtime turns a sent SIGSEGV into exit 2.)
		{"SIGKILLed", testenv.ImageSpec{Env: []string{"APP_SELF_KILL_AFTER=200ms"}}, failure.StageVerify, failure.ContainerExited, "exit code 137 (SIGKILL", container.HostConfig{Init: &yes}},
		{"crash loop", testenv.ImageSpec{Env: []string{"APP_EXIT_CODE=4", "APP_EXIT_AFTER=100ms"}}, failure.StageVerify, failure.CrashLoop, "last exit code 4",
			container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}}},
		{"OOM", testenv.ImageSpec{Env: []string{"APP_ALLOC_MB=256"}}, failure.StageVerify, failure.OOMKilled, "OOM",
			container.HostConfig{Resources: container.Resources{Memory: 32 << 20, MemorySwap: 32 << 20}}},
		{"unhealthy", testenv.ImageSpec{Env: []string{"APP_UNHEALTHY=1"}, Healthcheck: healthcheck()}, failure.StageVerify, failure.Unhealthy, "healthcheck failed", container.HostConfig{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
			oldID, name := f.run("svc", ref, nil, &c.hc)
			oldImage := f.Inspect(oldID).Image
			c.v2.Version = "v2"
			pull := f.release(ref, c.v2)
			sawOOM := f.watchOOM()

			res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
			if res.Outcome != OutcomeRolledBack || res.Err == nil {
				t.Fatalf("Replace = %s, %v; want rolled_back", res.Outcome, res.Err)
			}
			if c.reason == failure.OOMKilled && !sawOOM() {
				// The engine lost this OOM kill (see oomGrace): it recorded neither OOMKilled nor
				// an oom event, so the honest verdict is the exit code, with the memory limit named.
				c.reason, c.msg = failure.ContainerExited, "exit code 137 (SIGKILL: killed); the container has a memory limit of 32 MiB"
			}
			if res.Err.Stage != c.stage || res.Err.Reason != c.reason || !strings.Contains(res.Err.Error(), c.msg) {
				t.Errorf("Err = %v (stage %s, reason %s); want %s/%s containing %q", res.Err, res.Err.Stage, res.Err.Reason, c.stage, c.reason, c.msg)
			}
			ins := f.checkServing(name)
			if ins.ID != oldID || ins.Image != oldImage {
				t.Fatalf("serving %s on %s, want the old container %s on %s", shortID(ins.ID), shortID(ins.Image), shortID(oldID), shortID(oldImage))
			}
			if n := len(f.Owned()); n != 1 {
				t.Errorf("%d containers left, want 1", n)
			}
		})
	}
}

// TestRollbackDisabledKeepsRunningUnhealthy: with Rollback false a running but unhealthy new
// container is kept (Outcome failed), while one that exits is rolled back anyway.
func TestRollbackDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)

	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"APP_EXIT_CODE=2"}})
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.ContainerExited {
		t.Fatalf("exiting v2 without rollback: %s, %v; want rolled_back ContainerExited", res.Outcome, res.Err)
	}
	if f.checkServing(name).ID != oldID {
		t.Fatal("old container not serving")
	}

	pull = f.release(ref, testenv.ImageSpec{Version: "v3", Env: []string{"APP_UNHEALTHY=1"}, Healthcheck: healthcheck()})
	res = f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull})
	if res.Outcome != OutcomeFailed || res.Err == nil || res.Err.Reason != failure.Unhealthy {
		t.Fatalf("unhealthy v3 without rollback: %s, %v; want failed Unhealthy", res.Outcome, res.Err)
	}
	if ins := f.checkServing(name); ins.ID != res.NewID || envValue(ins.Config.Env, "APP_VERSION") != "v3" {
		t.Fatalf("serving %s, want the kept v3 container %s", shortID(ins.ID), shortID(res.NewID))
	}
}

// TestStoppedContainerStaysStopped: a container that was not running is replaced by one that
// is not running either (the stop is a 304, nothing is started).
func TestStoppedContainerStaysStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, &container.Config{Env: []string{"APP_EXIT_CODE=0", "APP_EXIT_AFTER=10ms"}}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for f.Inspect(oldID).State.Running && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeUpdated {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	ins := f.Inspect(name)
	if ins.ID != res.NewID || ins.State.Status != container.StateCreated {
		t.Fatalf("%s is %s (%s), want the new container, created", name, shortID(ins.ID), ins.State.Status)
	}
}
