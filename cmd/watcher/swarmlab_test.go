//go:build swarmlab

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestSwarmLab runs `watcher once` against a swarm of 3 nodes on this machine, the one
// `scripts/swarm-lab.sh up 3` brings up (make test-swarm does, and takes it down after): a
// service with a task on every node is updated; then again, with one worker killed while Swarm
// rolls the update out: the run reports it (ServiceUpdateTimeout, naming the node) once
// update.service_timeout has passed, and never hangs. A worker's engine says that services need a
// manager. It is built only with the swarmlab tag: without the lab there is nothing to run.
func TestSwarmLab(t *testing.T) {
	mgr := os.Getenv("SWARM_LAB_MANAGER")
	nodes, netns := strings.Fields(os.Getenv("SWARM_LAB_NODES")), strings.Fields(os.Getenv("SWARM_LAB_NETNS"))
	if mgr == "" || len(nodes) < 3 || len(netns) != len(nodes) {
		t.Fatal("no swarm lab of 3 nodes: run `make test-swarm` (or scripts/swarm-lab.sh up 3 and export its env)")
	}
	start := time.Now()
	cli, err := client.New(client.WithHost(mgr))
	if err != nil {
		t.Fatal(err)
	}
	reg := testenv.NewRegistry(t)
	for _, ns := range netns {
		reg.ServeIn(t, ns) // 127.0.0.1:PORT on every node is this registry
	}
	e := testenv.NewOn(t, cli, reg)
	labels := map[string]string{"watcher.enable": "true", "watcher.scope": "lab-" + e.Owner}
	const timeout = 45 * time.Second
	env := []string{"WATCHER_STATE_DIR=" + t.TempDir(), "WATCHER_WATCH_SCOPE=lab-" + e.Owner, "WATCHER_LOG_LEVEL=info",
		"WATCHER_SCHEDULE=", "WATCHER_UPDATE_SERVICE_TIMEOUT=" + timeout.String()}
	push := func(version string) string {
		ref, d := e.Registry.PushImage(t, "lab", "1", testenv.ImageSpec{Version: version})
		return ref + "@" + d.String()
	}

	t.Setenv("DOCKER_HOST", nodes[1])
	if code, out, stderr := runCmd(t, env, "once"); code != 0 || !strings.Contains(stderr, "this engine is a Swarm worker") {
		t.Errorf("watcher once on a worker = exit %d\n%s%s\nwant exit 0 saying services need a manager", code, out, stderr)
	}
	t.Setenv("DOCKER_HOST", mgr)

	v1 := push("v1")
	id := e.Service(e.Name("lab"), testenv.ServiceSpec{Image: v1, Replicas: 3, MaxPerNode: 1, Labels: labels,
		Update: &swarm.UpdateConfig{Parallelism: 1, Delay: 3 * time.Second, Monitor: 2 * time.Second, FailureAction: swarm.UpdateFailureActionPause}})
	if got := taskNodes(t, cli, id, v1); len(got) != 3 {
		t.Fatalf("tasks on nodes %v, want one on each of 3", got)
	}

	twoManagers(t, env, nodes, e.Name("lab"))

	v2 := push("v2")
	t0 := time.Now()
	code, out, stderr := runCmd(t, env, "once")
	t.Logf("update on 3 nodes: %s\n%s", time.Since(t0).Round(time.Second), out)
	if code != 0 || e.ServiceImage(id) != v2 {
		t.Fatalf("watcher once = exit %d, image %s\n%s%s\nwant exit 0 and %s", code, e.ServiceImage(id), out, stderr, v2)
	}
	if got := taskNodes(t, cli, id, v2); len(got) != 3 {
		t.Errorf("after the update, tasks on v2 on nodes %v, want 3", got)
	}

	v3 := push("v3")
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	t0 = time.Now()
	go func() {
		code, out, stderr := runCmd(t, env, "once")
		done <- result{code, out, stderr}
	}()
	killed := killWorkerOnOld(t, cli, id, v3)
	var r result
	select {
	case r = <-done:
	case <-time.After(timeout + 2*time.Minute):
		t.Fatalf("watcher once still waits %s after it started, with update.service_timeout %s: hung", time.Since(t0).Round(time.Second), timeout)
	}
	t.Logf("update with %s killed: %s\n%s%s", killed, time.Since(t0).Round(time.Second), r.out, r.err)
	if l := tableLine(r.out, e.Name("lab")); r.code != 1 || !strings.Contains(l, "service/ServiceUpdateTimeout") ||
		!strings.Contains(l, "of 3 replicas run") {
		t.Errorf("watcher once = exit %d, line %q; want exit 1, ServiceUpdateTimeout saying how many replicas run", r.code, l)
	}
	if !strings.Contains(r.err, "nodes not ready: "+killed) {
		t.Errorf("the log does not name the node that is down (%s)", killed)
	}
	t.Logf("the lab test took %s", time.Since(start).Round(time.Second))
}

// twoManagers promotes node 2 for a while: a watcher with both managers as hosts checks the
// service once, through the first, and says so of the second.
func twoManagers(t *testing.T, env, nodes []string, name string) {
	t.Helper()
	testenv.DockerCLI(t, nodes[0], "node", "promote", "lab2")
	// A promotion ends when the node has joined the managers' raft: until then its engine still
	// says worker, and a demotion is refused.
	waitRole(t, nodes[1], true)
	defer waitRole(t, nodes[1], false)
	defer testenv.DockerCLI(t, nodes[0], "node", "demote", "lab2")
	cfg := writeFile(t, "hosts:\n  - name: m1\n    host: "+nodes[0]+"\n  - name: m2\n    host: "+nodes[1]+"\n")
	code, out, stderr := runCmd(t, env, "check", "--config", cfg)
	lines := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "service "+name) {
			lines++
		}
	}
	if code != 0 || lines != 1 || !strings.Contains(stderr, "this host manages the same swarm as host m1") {
		t.Errorf("watcher check with two managers as hosts = exit %d, %d lines of the service\n%s%s\nwant exit 0, one line, and m2 said to be the same swarm", code, lines, out, stderr)
	}
}

// waitRole waits until the engine at host says it is a manager (or, manager false, that it is not).
func waitRole(t *testing.T, host string, manager bool) {
	t.Helper()
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := cli.Info(context.Background(), client.InfoOptions{})
		if err == nil && info.Info.Swarm.ControlAvailable == manager {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: manager=%v not reached in a minute (last: %v, %v)", host, manager, info.Info.Swarm.ControlAvailable, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// taskNodes returns the nodes of the service's running tasks on image, once every task runs it.
func taskNodes(t *testing.T, cli *client.Client, id, image string) []string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		res, err := cli.TaskList(context.Background(), client.TaskListOptions{Filters: make(client.Filters).Add("service", id)})
		if err != nil {
			continue
		}
		var on []string
		for _, tk := range res.Items {
			if tk.DesiredState == swarm.TaskStateRunning && tk.Status.State == swarm.TaskStateRunning && tk.Spec.ContainerSpec.Image == image {
				on = append(on, tk.NodeID)
			}
		}
		if len(on) == 3 {
			slices.Sort(on)
			return slices.Compact(on)
		}
	}
	return nil
}

// killWorkerOnOld waits until Swarm runs the first task of the update (image), then kills the
// dockerd of a worker whose task has not been updated yet, and returns its hostname (labI).
func killWorkerOnOld(t *testing.T, cli *client.Client, id, image string) string {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		res, err := cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", id).Add("desired-state", "running")})
		if err != nil {
			continue
		}
		updated := slices.ContainsFunc(res.Items, func(tk swarm.Task) bool {
			return tk.Status.State == swarm.TaskStateRunning && tk.Spec.ContainerSpec.Image == image
		})
		if !updated {
			continue
		}
		for _, tk := range res.Items {
			if tk.Spec.ContainerSpec.Image == image {
				continue
			}
			n, err := cli.NodeInspect(ctx, tk.NodeID, client.NodeInspectOptions{})
			if err != nil || n.Node.Spec.Role == swarm.NodeRoleManager {
				continue
			}
			host := n.Node.Description.Hostname
			i, err := strconv.Atoi(strings.TrimPrefix(host, "lab"))
			if err != nil {
				t.Fatalf("node %s is not one of the lab's", host)
			}
			out, err := exec.Command(filepath.Join("..", "..", "scripts", "swarm-lab.sh"), "stop-node", strconv.Itoa(i)).CombinedOutput()
			if err != nil {
				t.Fatalf("stop-node %d: %v\n%s", i, err, out)
			}
			return host
		}
	}
	t.Fatal("no worker with a task on the old image while the update ran")
	return ""
}
