package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testcerts"
)

// EngineOptions say what extra engine to start.
type EngineOptions struct {
	// TCP makes dockerd listen on tcp://127.0.0.1:PORT with TLS, client certificates required,
	// with certificates made for it (ExtraEngine.TLS), instead of on a unix socket.
	TCP bool
	// Podman starts Podman's Docker-compatible API (podman system service) instead of dockerd.
	Podman bool
	// Insecure are the registries (host:port on 127.0.0.1) Podman pulls from over plain HTTP;
	// dockerd allows 127.0.0.0/8 by itself.
	Insecure []string
	// Swarm makes the dockerd the one manager of a swarm of its own (see initSwarm).
	Swarm bool
}

// ExtraEngine is a private engine besides the one of DOCKER_HOST, for tests of several hosts: a
// second dockerd on a unix socket, one on TCP with TLS, or Podman. It lives in a directory of its
// own next to the main engine's (WATCHER_ENGINE_DIR-xxxxxxxx), started with the flags of
// scripts/test-engine.sh, and is stopped and removed with everything it held by Close.
type ExtraEngine struct {
	Host   string           // for DOCKER_HOST or a hosts entry: unix:///DIR/docker.sock or tcp://127.0.0.1:PORT
	Dir    string           // its data, exec root, socket and log
	TLS    *testcerts.Files // TCP: the CA, the engine's and the client's certificates
	Docker *client.Client   // a client of the test's own
	Podman bool
	// SwarmAddr is the swarm's listen and advertise address (EngineOptions.Swarm).
	SwarmAddr string

	opts EngineOptions
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// NewEngine starts an extra engine for the test and removes it when the test ends. Without
// dockerd (or podman) the test fails under CI and is skipped elsewhere, like Engine.
func NewEngine(t testing.TB, o EngineOptions) *ExtraEngine {
	t.Helper()
	bin := "dockerd"
	if o.Podman {
		bin = "podman"
	}
	if _, err := exec.LookPath(bin); err != nil {
		noEngine(t, bin+" is not installed")
	}
	x, err := StartEngine(o)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(x.Close)
	return x
}

// StartEngine is NewEngine without a testing.TB (benchmark programs): Close removes it.
func StartEngine(o EngineOptions) (*ExtraEngine, error) {
	base := os.Getenv("WATCHER_ENGINE_DIR")
	if base == "" {
		base = "/tmp/watcher-test-engine"
	}
	// Short: the unix socket's path must stay under 108 bytes.
	x := &ExtraEngine{Dir: base + "-" + randomID(), opts: o, Podman: o.Podman}
	if err := os.MkdirAll(x.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := x.configure(); err != nil {
		x.Close()
		return nil, err
	}
	if err := x.Start(); err != nil {
		x.Close()
		return nil, err
	}
	if o.Swarm {
		if err := x.initSwarm(); err != nil {
			x.Close()
			return nil, err
		}
	}
	return x, nil
}

// configure picks the engine's address and writes its certificates or Podman's configuration.
func (x *ExtraEngine) configure() error {
	switch {
	case x.opts.TCP:
		files, err := testcerts.Write(x.Dir, testcerts.Options{})
		if err != nil {
			return err
		}
		x.TLS = &files
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		x.Host = "tcp://" + l.Addr().String()
		_ = l.Close()
	case x.opts.Podman:
		x.Host = "unix://" + filepath.Join(x.Dir, "podman.sock")
		conf := "[containers]\n" +
			// runc here cannot set Podman's default ulimits (operation not permitted).
			"default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n" +
			"[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n" +
			"tmp_dir = \"" + filepath.Join(x.Dir, "tmp") + "\"\n" +
			"volume_path = \"" + filepath.Join(x.Dir, "volumes") + "\"\n" +
			"[network]\nnetwork_config_dir = \"" + filepath.Join(x.Dir, "net") + "\"\n"
		regs := "unqualified-search-registries = []\n"
		for _, r := range x.opts.Insecure {
			regs += fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", r)
		}
		if err := os.WriteFile(filepath.Join(x.Dir, "containers.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(x.Dir, "registries.conf"), []byte(regs), 0o644)
	default:
		x.Host = "unix://" + filepath.Join(x.Dir, "docker.sock")
	}
	return nil
}

// command is the engine's command line, as scripts/test-engine.sh starts the main engine.
func (x *ExtraEngine) command() *exec.Cmd {
	d := x.Dir
	if x.opts.Podman {
		cmd := exec.Command("podman", "--root", d+"/root", "--runroot", d+"/run", "--storage-driver", "vfs",
			"--cgroup-manager", "cgroupfs", "--events-backend", "file", "system", "service", "--time=0", x.Host)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+d+"/containers.conf", "CONTAINERS_REGISTRIES_CONF="+d+"/registries.conf")
		return cmd
	}
	args := []string{"--data-root", d + "/data", "--exec-root", d + "/exec", "--pidfile", d + "/docker.pid",
		"--storage-driver=vfs", "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false",
		"--host", x.Host}
	if x.TLS != nil {
		args = append(args, "--tlsverify", "--tlscacert", x.TLS.CA, "--tlscert", x.TLS.ServerCert, "--tlskey", x.TLS.ServerKey)
	}
	cmd := exec.Command("dockerd", args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

// Start starts the engine (again, after Kill: on the same data) and waits until it answers.
func (x *ExtraEngine) Start() error {
	if x.cmd != nil && x.running() {
		return errors.New("engine " + x.Host + " is running")
	}
	log, err := os.OpenFile(filepath.Join(x.Dir, "engine.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := x.command()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	x.cmd, x.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(x.done)
	if x.Docker == nil {
		opts := []client.Opt{client.WithHost(x.Host)}
		if x.TLS != nil {
			opts = []client.Opt{client.WithTLSClientConfig(x.TLS.CA, x.TLS.Cert, x.TLS.Key), client.WithHost(x.Host)}
		}
		if x.Docker, err = client.New(opts...); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := x.Docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-x.done:
			return fmt.Errorf("engine %s exited at start; its log: %s", x.Host, x.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engine %s did not answer within 60s (%v); its log: %s", x.Host, err, x.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill kills the engine's process (SIGKILL), as a crash would, and waits for it and the
// containerd it started to be gone. Start brings it back on the same data (dockerd then stops
// the containers that were running: live restore is off).
func (x *ExtraEngine) Kill() {
	if x.cmd == nil {
		return
	}
	_ = x.cmd.Process.Signal(syscall.SIGKILL)
	<-x.done
	// containerd dies with dockerd (its parent-death signal), a moment later: a dockerd started
	// before that would take it for a running one and wait for it in vain.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(x.processes("containerd --config")) == 0 {
			break
		}
	}
	_ = os.Remove(filepath.Join(x.Dir, "docker.pid"))
	_ = os.Remove(filepath.Join(x.Dir, "exec", "containerd", "containerd.pid"))
}

// processes returns the PIDs of the processes whose command line names the engine's directory
// and contains what (its containerd, containerd's shims, Podman's conmon).
func (x *ExtraEngine) processes(what string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if err == nil && strings.Contains(cmd, x.Dir+"/") && strings.Contains(cmd, what) {
			out = append(out, pid)
		}
	}
	return out
}

func (x *ExtraEngine) running() bool {
	select {
	case <-x.done:
		return false
	default:
		return true
	}
}

// stop ends the engine gracefully (SIGTERM, then SIGKILL after 20s).
func (x *ExtraEngine) stop() {
	if x.cmd == nil || !x.running() {
		return
	}
	_ = x.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-x.done:
	case <-time.After(20 * time.Second):
		x.Kill()
	}
}

// Close stops the engine and removes its directory, unmounting what its containers left.
func (x *ExtraEngine) Close() {
	if x.cmd != nil && !x.Podman && !x.running() {
		// Killed: started again, dockerd stops the containers the kill left running.
		_ = x.Start()
	}
	x.stop()
	if x.Docker != nil {
		_ = x.Docker.Close()
	}
	if x.Podman {
		// Podman's containers outlive its API service: remove them with its own CLI.
		d := x.Dir
		rm := exec.Command("podman", "--root", d+"/root", "--runroot", d+"/run", "--storage-driver", "vfs", "rm", "--all", "--force", "--time", "0")
		rm.Env = append(os.Environ(), "CONTAINERS_CONF="+d+"/containers.conf")
		_ = rm.Run()
	}
	for _, pid := range x.processes("") {
		_ = syscall.Kill(pid, syscall.SIGKILL) // what a failed start left: its own processes only
	}
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		var mounts []string
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], x.Dir+"/") {
				mounts = append(mounts, f[1])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	_ = os.RemoveAll(x.Dir)
}

// logTail is the end of the engine's log, for errors.
func (x *ExtraEngine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(x.Dir, "engine.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// On is an Env on engine x: the same registry and owner as e, containers made on x, and
// everything of this owner removed from x when the test ends.
func (e *Env) On(x *ExtraEngine) *Env {
	o := &Env{Docker: x.Docker, Registry: e.Registry, Owner: e.Owner, t: e.t}
	e.t.Cleanup(o.cleanup)
	return o
}
