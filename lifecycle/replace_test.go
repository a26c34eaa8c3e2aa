package lifecycle

import (
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
)

func TestReplaceUpdates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1", Env: []string{"IMG=one"}})
	oldID, name := f.run("svc", ref, &container.Config{Env: []string{"USER_SET=yes"}, Labels: map[string]string{"user.label": "kept"}}, nil)
	oldImage := f.Inspect(oldID).Image
	pull := f.release(ref, testenv.ImageSpec{Version: "v2", Env: []string{"IMG=two"}})

	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeUpdated || res.Err != nil {
		t.Fatalf("Replace = %s, %v; want updated", res.Outcome, res.Err)
	}
	ins := f.checkServing(name)
	if ins.ID != res.NewID || ins.ID == oldID {
		t.Fatalf("serving %s, Result.NewID %s, old %s", shortID(ins.ID), shortID(res.NewID), shortID(oldID))
	}
	if ins.Image == oldImage || ins.Image != res.NewImageID || res.OldImageID != oldImage {
		t.Fatalf("image %s, want new %s (old %s)", ins.Image, res.NewImageID, oldImage)
	}
	if ins.Config.Image != ref {
		t.Errorf("Config.Image = %q, want %q", ins.Config.Image, ref)
	}
	for k, want := range map[string]string{"APP_VERSION": "v2", "IMG": "two", "USER_SET": "yes"} {
		if got := envValue(ins.Config.Env, k); got != want {
			t.Errorf("env %s = %q, want %q (env %v)", k, got, want, ins.Config.Env)
		}
	}
	if ins.Config.Labels["user.label"] != "kept" || ins.Config.Labels["testenv.version"] != "v2" || ins.Config.Labels[LabelTxID] != res.TxID {
		t.Errorf("labels = %v", ins.Config.Labels)
	}
	if ins.Config.Hostname != shortID(ins.ID) {
		t.Errorf("hostname = %q, want the new ID prefix %q", ins.Config.Hostname, shortID(ins.ID))
	}
	if res.Downtime <= 0 || res.Downtime > 5e9 {
		t.Errorf("Downtime = %v", res.Downtime)
	}
	if _, err := f.Docker.ContainerInspect(ctx(t), oldID, inspectOpts); err == nil {
		t.Errorf("old container %s still exists", shortID(oldID))
	}

	// The same transaction again does nothing.
	again := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if again.TxID != res.TxID || again.Outcome != OutcomeUpdated {
		t.Fatalf("second Replace = %+v, want the first transaction's result", again)
	}
	// And the new container is up to date.
	same := f.m.Replace(ctx(t), Spec{ContainerID: res.NewID, Image: ref, PullRef: pull, Rollback: true})
	if same.Outcome != OutcomeUnchanged || same.Err != nil {
		t.Fatalf("Replace(up to date) = %s, %v; want unchanged", same.Outcome, same.Err)
	}
	f.checkServing(name)
}
