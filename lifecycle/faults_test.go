package lifecycle

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// faultyDocker is the real engine with hooks, for races the engine cannot be made to stage.
type faultyDocker struct {
	*client.Client
	mu     sync.Mutex
	rename func(id, name string) // before a rename
	start  func(id string)       // before a start
	stop   func(id string, err error) error
}

func (d *faultyDocker) ContainerRename(ctx context.Context, id string, o client.ContainerRenameOptions) (client.ContainerRenameResult, error) {
	d.mu.Lock()
	h := d.rename
	d.mu.Unlock()
	if h != nil {
		h(id, o.NewName)
	}
	return d.Client.ContainerRename(ctx, id, o)
}

func (d *faultyDocker) ContainerStart(ctx context.Context, id string, o client.ContainerStartOptions) (client.ContainerStartResult, error) {
	d.mu.Lock()
	h := d.start
	d.mu.Unlock()
	if h != nil {
		h(id)
	}
	return d.Client.ContainerStart(ctx, id, o)
}

func (d *faultyDocker) ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	res, err := d.Client.ContainerStop(ctx, id, o)
	d.mu.Lock()
	h := d.stop
	d.mu.Unlock()
	if h != nil {
		err = h(id, err)
	}
	return res, err
}

func (f *fixture) faulty() *faultyDocker {
	d := &faultyDocker{Client: f.Docker}
	f.m = New(d, f.store, f.m.o)
	return d
}

// TestForeignNameHolder: a container this update did not create takes the name between the
// set-aside and the rename. It is a CreateContainerError and left alone; the old container
// cannot get its name back, and is not started beside it (both would use the same volumes): it
// stays stopped and aside, and the transaction ends failed (RollbackFailed), reported once —
// Recover does not take it up again.
func TestForeignNameHolder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.faulty()
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	oldID, name := f.run("svc", ref, nil, nil)
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	var foreign string
	d.rename = func(id, newName string) {
		if newName == name && id != oldID && foreign == "" {
			foreign = f.Create(name, &container.Config{Image: ref}, nil, nil)
		}
	}
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if res.Outcome != OutcomeFailed || res.Err == nil || res.Err.Reason != failure.RollbackFailed ||
		!strings.Contains(res.Err.Error(), string(failure.CreateContainerError)) || !strings.Contains(res.Err.Error(), "kept stopped as") {
		t.Fatalf("Replace = %s, %v; want failed RollbackFailed after CreateContainerError, saying what is kept", res.Outcome, res.Err)
	}
	if ins := f.Inspect(foreign); ins.Name != "/"+name || ins.State.Status != container.StateCreated {
		t.Fatalf("foreign container touched: %s %s", ins.Name, ins.State.Status)
	}
	if ins := f.Inspect(oldID); ins.State.Running || ins.Name != "/"+asideName(name, res.TxID) {
		t.Fatalf("old container %s running=%v; want it stopped and aside", ins.Name, ins.State.Running)
	}
	if n := len(f.Owned()); n != 2 {
		t.Fatalf("%d containers, want 2 (old and foreign; the new one removed)", n)
	}
	if again := f.m.Recover(ctx(t)); len(again) != 0 {
		t.Fatalf("Recover took the transaction up again: %+v", again)
	}
	checkAllFinished(t, f.store, "after the foreign holder")
}

// TestStopConflicts: 409 "removal in progress" and 404 from stopping an AutoRemove container
// mean it is going away, not a failure; a 409 of another kind with the container still running
// is a KillContainerError, rolled back.
func TestStopConflicts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.faulty()
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	_, d2 := f.push("app", "v2", testenv.ImageSpec{Version: "v2"})
	_, d3 := f.push("app", "v3", testenv.ImageSpec{Version: "v3"})
	id, name := f.run("svc", ref, nil, &container.HostConfig{AutoRemove: true})

	for _, c := range []struct {
		pull string
		err  error
	}{
		{d2, cerrdefs.ErrConflict.WithMessage("removal of container " + id + " is already in progress")},
		{d3, cerrdefs.ErrNotFound.WithMessage("No such container: " + id)},
	} {
		d.stop = func(string, error) error { return c.err }
		res := f.m.Replace(ctx(t), Spec{ContainerID: id, Image: ref, PullRef: c.pull, Rollback: true})
		if res.Outcome != OutcomeUpdated {
			t.Fatalf("stop error %v: %s, %v; want updated", c.err, res.Outcome, res.Err)
		}
		id = res.NewID
	}
	f.checkServing(name)

	// A 409 that is not "going away", with the container still running: not stopped.
	d.mu.Lock()
	d.stop = nil
	d.mu.Unlock()
	plain, plainName := f.run("plain", ref, nil, nil)
	f.m = New(&paused{faultyDocker: d}, f.store, f.m.o)
	f.m.stopMargin = time.Second // the refused stop is waited out: it could be going on in the engine
	second := time.Second
	res := f.m.Replace(ctx(t), Spec{ContainerID: plain, Image: ref, PullRef: d2, Rollback: true, StopTimeout: &second})
	if res.Outcome != OutcomeRolledBack || res.Err == nil || res.Err.Reason != failure.KillContainerError || res.Err.Stage != failure.StageStop {
		t.Fatalf("unstoppable: %s, %v; want rolled_back stop/KillContainerError", res.Outcome, res.Err)
	}
	if f.checkServing(plainName).ID != plain {
		t.Fatal("old container not serving")
	}
}

// paused refuses to stop anything (a 409 that does not mean "going away").
type paused struct{ *faultyDocker }

func (p *paused) ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	return client.ContainerStopResult{}, cerrdefs.ErrConflict.WithMessage("Container " + id + " is restarting, wait until the container is running")
}

// TestStaticIPTaken: between the old container's stop and the new one's start a foreign
// container takes the static IP. The start fails "address already in use" (403), which is
// classified (RunContainerError), retried once only, and rolled back; the old container cannot
// get its address back either, so the rollback fails loudly — and the foreign container is
// left alone.
func TestStaticIPTaken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.faulty()
	ref, _ := f.push("app", "latest", testenv.ImageSpec{Version: "v1"})
	net, ip := f.network()
	f.Pull(ref)
	name := f.Name("svc")
	eps := func() *network.NetworkingConfig {
		return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}}
	}
	oldID := f.Run(name, &container.Config{Image: ref}, &container.HostConfig{NetworkMode: container.NetworkMode(net)}, eps())
	pull := f.release(ref, testenv.ImageSpec{Version: "v2"})
	var thief string
	d.start = func(id string) {
		if id != oldID && thief == "" {
			thief = f.Run(f.Name("thief"), &container.Config{Image: ref}, &container.HostConfig{NetworkMode: container.NetworkMode(net)}, eps())
		}
	}
	res := f.m.Replace(ctx(t), Spec{ContainerID: oldID, Image: ref, PullRef: pull, Rollback: true})
	if res.Err == nil || res.Err.Reason != failure.RollbackFailed || !strings.Contains(res.Err.Message, "start/RunContainerError") ||
		!strings.Contains(strings.ToLower(res.Err.Message), "already in use") {
		t.Fatalf("Replace = %s, %v; want RollbackFailed after start/RunContainerError address in use", res.Outcome, res.Err)
	}
	if ins := f.Inspect(thief); !ins.State.Running {
		t.Fatal("the foreign container was touched")
	}
	if ins := f.Inspect(oldID); ins.Name != "/"+name {
		t.Fatalf("old container is %s, want its name back", ins.Name)
	}
	if n := len(f.Owned()); n != 2 {
		t.Fatalf("%d containers, want the old one and the thief", n)
	}
}
