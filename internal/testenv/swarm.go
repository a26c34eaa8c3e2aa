package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// initSwarm makes the engine the one manager of a swarm of its own, listening on a free port of
// 127.0.0.1 (never 2377: several swarm engines may run on the machine at once). Swarm's gossip
// port 7946 is the machine's; a second swarm engine cannot bind it, which costs only the
// overlay networks the tests never use.
func (x *ExtraEngine) initSwarm() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := x.Docker.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: addr, AdvertiseAddr: addr}); err != nil {
		return fmt.Errorf("swarm init on %s: %w", x.Host, err)
	}
	x.SwarmAddr = addr
	return nil
}

// ServiceSpec says what service Env.Service creates. Tasks run without a network (the engines
// have no bridge) and without published ports.
type ServiceSpec struct {
	Image    string
	Replicas uint64 // replicated service with this many tasks (0 = 1); ignored when Global
	Global   bool
	// MaxPerNode limits the tasks Swarm puts on one node (Placement.MaxReplicas; 0 = no limit):
	// 3 replicas on 3 nodes, one each.
	MaxPerNode uint64
	Labels     map[string]string // service labels (the owner label is added)
	Env        []string
	// Update is the service's UpdateConfig; nil = parallelism 1, no delay, monitor 1s,
	// failure_action pause (Swarm's default action, with a monitor short enough for tests).
	Update *swarm.UpdateConfig
	// Rollback is its RollbackConfig; nil = parallelism 0 (all at once), monitor 1s.
	Rollback *swarm.UpdateConfig
	// Auth is X-Registry-Auth for the deploy (kept in the spec for later pulls).
	Auth string
}

// Service creates a service owned by this test on a swarm manager and returns its ID once every
// task runs. The Env's cleanup removes it.
func (e *Env) Service(name string, s ServiceSpec) string {
	e.t.Helper()
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: e.Labels(s.Labels)},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: s.Image, Env: s.Env, Labels: map[string]string{OwnerLabel: e.Owner}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: ptr(200 * time.Millisecond)},
		},
		UpdateConfig:   s.Update,
		RollbackConfig: s.Rollback,
	}
	if s.MaxPerNode > 0 {
		spec.TaskTemplate.Placement = &swarm.Placement{MaxReplicas: s.MaxPerNode}
	}
	if spec.UpdateConfig == nil {
		spec.UpdateConfig = &swarm.UpdateConfig{Parallelism: 1, Monitor: time.Second, FailureAction: swarm.UpdateFailureActionPause}
	}
	if spec.RollbackConfig == nil {
		spec.RollbackConfig = &swarm.UpdateConfig{Parallelism: 0, Monitor: time.Second}
	}
	if s.Global {
		spec.Mode.Global = &swarm.GlobalService{}
	} else {
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: ptr(max(s.Replicas, 1))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.Docker.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec, EncodedRegistryAuth: s.Auth})
	if err != nil {
		e.t.Fatalf("testenv: service create %s: %v", name, err)
	}
	if err := e.WaitTasks(ctx, res.ID, s.Image); err != nil {
		e.t.Fatalf("testenv: service %s: %v", name, err)
	}
	return res.ID
}

// WaitTasks waits until every task the service should run is running image (a reference, or the
// digest it pins) and no other task runs.
func (e *Env) WaitTasks(ctx context.Context, serviceID, image string) error {
	for {
		running, desired, err := e.ServiceTasks(ctx, serviceID, image)
		if err == nil && desired > 0 && running == desired {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d tasks run %s: %v (%v)", running, desired, image, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ServiceTasks counts the service's running tasks on image (a reference, or the digest it pins)
// and the tasks it should have; desired is 0 until every running task runs image.
func (e *Env) ServiceTasks(ctx context.Context, serviceID, image string) (running, desired int, err error) {
	svc, err := e.Docker.ServiceInspect(ctx, serviceID, client.ServiceInspectOptions{})
	if err != nil {
		return 0, 0, err
	}
	tasks, err := e.Docker.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", serviceID)})
	if err != nil {
		return 0, 0, err
	}
	other := false
	for _, t := range tasks.Items {
		if t.DesiredState != swarm.TaskStateRunning || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		if sameImage(t.Spec.ContainerSpec.Image, image) {
			running++
		} else {
			other = true
		}
	}
	switch {
	case svc.Service.Spec.Mode.Replicated != nil:
		desired = int(*svc.Service.Spec.Mode.Replicated.Replicas)
	default:
		nodes, err := e.Docker.NodeList(ctx, client.NodeListOptions{})
		if err != nil {
			return running, 0, err
		}
		for _, n := range nodes.Items {
			if n.Status.State == swarm.NodeStateReady {
				desired++
			}
		}
	}
	if other {
		desired = 0
	}
	return running, desired, nil
}

// ServiceImage is the image the service's spec has now.
func (e *Env) ServiceImage(serviceID string) string {
	e.t.Helper()
	res, err := e.Docker.ServiceInspect(context.Background(), serviceID, client.ServiceInspectOptions{})
	if err != nil {
		e.t.Fatalf("testenv: service inspect %s: %v", serviceID, err)
	}
	return res.Service.Spec.TaskTemplate.ContainerSpec.Image
}

// sameImage: a task's image is ref, or pins the digest ref names or pins.
func sameImage(taskImage, ref string) bool {
	if taskImage == ref {
		return true
	}
	_, d, ok := strings.Cut(ref, "@")
	if !ok && strings.HasPrefix(ref, "sha256:") {
		d, ok = ref, true
	}
	return ok && strings.HasSuffix(taskImage, "@"+d)
}

// removeServices removes every service of this test's owner (on an engine that is a swarm
// manager; elsewhere the list fails and there is nothing to remove) and waits for their tasks'
// containers to go.
func (e *Env) removeServices(ctx context.Context) {
	owner := make(client.Filters).Add("label", OwnerLabel+"="+e.Owner)
	res, err := e.Docker.ServiceList(ctx, client.ServiceListOptions{Filters: owner})
	if err != nil || len(res.Items) == 0 {
		return
	}
	for _, s := range res.Items {
		_, _ = e.Docker.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{})
	}
	for _, s := range res.Items {
		tasks := make(client.Filters).Add("label", "com.docker.swarm.service.id="+s.ID)
		for ctx.Err() == nil {
			cs, err := e.Docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: tasks})
			if err != nil || len(cs.Items) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// NewOn is an Env on an engine the test did not start (a node of scripts/swarm-lab.sh's swarm),
// with registry reg: what the test makes there is removed when it ends.
func NewOn(t testing.TB, docker *client.Client, reg *Registry) *Env {
	e := &Env{Docker: docker, Registry: reg, Owner: randomID(), t: t}
	t.Cleanup(e.cleanup)
	return e
}

// SwarmEngine starts an extra engine that is the one manager of a swarm of its own, for the
// test (and its subtests), and an Env on it with a registry of its own.
func SwarmEngine(t *testing.T) (*ExtraEngine, *Env) {
	t.Helper()
	x := NewEngine(t, EngineOptions{Swarm: true})
	return x, NewOn(t, x.Docker, NewRegistry(t))
}

func ptr[T any](v T) *T { return &v }

// DockerCLI runs the Docker CLI against the engine at host and returns its output, failing the
// test when it fails.
func DockerCLI(t testing.TB, host string, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RegistryAuth is X-Registry-Auth for user and pass on the registry at host (as `docker login`
// would give an engine).
func RegistryAuth(t testing.TB, user, pass, host string) string {
	t.Helper()
	s, err := authconfig.Encode(registry.AuthConfig{Username: user, Password: pass, ServerAddress: host})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
