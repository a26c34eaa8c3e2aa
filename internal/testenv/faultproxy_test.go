package testenv

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestFaultProxy: through the proxy a client reaches the engine; a rule faults only its Nth
// matching request; "before" faults never reach the engine, "after" faults let it act and lose
// the answer, and a timeout answers 504 while the engine finishes the request.
func TestFaultProxy(t *testing.T) {
	e := New(t)
	ref, _ := e.Registry.PushImage(t, "app", "v1", ImageSpec{Version: "v1"})
	e.Pull(ref)
	p := NewFaultProxy(t)
	cli, err := client.New(client.WithHost(p.Host))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	create := func(base string) (string, error) {
		res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: e.Name(base),
			Config: &container.Config{Image: ref, Labels: e.Labels(nil)}, HostConfig: &container.HostConfig{NetworkMode: "none"}})
		return res.ID, err
	}
	exists := func(base string) bool {
		_, err := e.Docker.ContainerInspect(ctx, e.Name(base), client.ContainerInspectOptions{})
		return err == nil
	}
	creates := regexp.MustCompile(`^/containers/create$`)

	p.SetRules(&FaultRule{Method: "POST", Path: creates, Nth: 2, Kind: FaultStatus, Status: 409})
	if _, err := create("a"); err != nil {
		t.Fatalf("first create: %v", err)
	}
	if _, err := create("b"); !cerrdefs.IsConflict(err) || exists("b") {
		t.Fatalf("second create = %v (exists %v); want the injected 409, and nothing created", err, exists("b"))
	}
	if _, err := create("c"); err != nil {
		t.Fatalf("third create: %v", err)
	}

	p.SetRules(&FaultRule{Method: "POST", Path: creates, Nth: 1, Kind: FaultStatusAfter, Status: 500})
	if _, err := create("d"); err == nil || !exists("d") {
		t.Fatalf("create with status-after = %v (exists %v); want an error, and the container created", err, exists("d"))
	}
	p.SetRules(&FaultRule{Method: "POST", Path: creates, Nth: 1, Kind: FaultCutAfter})
	if _, err := create("e"); err == nil || !exists("e") {
		t.Fatalf("create with cut-after = %v (exists %v); want an error, and the container created", err, exists("e"))
	}
	p.SetRules(&FaultRule{Method: "POST", Path: creates, Nth: 1, Kind: FaultCut})
	if _, err := create("f"); err == nil || exists("f") {
		t.Fatalf("create with cut = %v (exists %v); want an error, and nothing created", err, exists("f"))
	}

	// A stop slower than the proxy's timeout: 504 at once, the engine stops it all the same.
	id := e.Run(e.Name("slow"), &container.Config{Image: ref, Env: []string{"APP_IGNORE_TERM=1"}}, nil, nil)
	p.SetRules(&FaultRule{Method: "POST", Path: regexp.MustCompile(`^/containers/[^/]+/stop$`), Kind: FaultTimeout, Delay: 300 * time.Millisecond})
	timeout := 3
	start := time.Now()
	_, err = cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 2*time.Second {
		t.Fatalf("stop through the timeout = %v after %v; want the proxy's 504 before the stop timeout", err, time.Since(start))
	}
	if !e.Inspect(id).State.Running {
		t.Fatal("the container stopped before its stop timeout")
	}
	wait := e.Docker.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-wait.Result: // the engine finished the stop the proxy timed out
	case err := <-wait.Error:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not finish the stop the proxy timed out")
	}
	got := p.Injected()
	for k, want := range map[FaultKind]int{FaultStatus: 1, FaultStatusAfter: 1, FaultCutAfter: 1, FaultCut: 1, FaultTimeout: 1} {
		if got[k] != want {
			t.Errorf("injected %s = %d, want %d (log %v)", k, got[k], want, p.Log())
		}
	}
}
