package lifecycle

// The randomized fault campaign (docs/reliability.md). Each schedule, drawn from a seed, sets up
// a service with a named and an anonymous volume (each holding a marker file), sometimes a
// network_mode container:<svc> dependent, and runs the watcher's update in a child process (this
// test binary, re-executed) that reaches the engine through a fault-injecting proxy
// (testenv.FaultProxy): requests delayed, hung, cut, answered 404/409/500/504, before or after
// the engine acted. The child is killed (SIGKILL) or stopped (SIGTERM) after a chosen journal
// write, and a "user" acts at a chosen moment (docker rm -f, rename, stop, a new container taking
// the name, a compose-style recreate, clones that copy the watcher's label). Sometimes a first
// recovery runs under faults too and is killed in turn; then the next start's recovery runs, and
// the invariants are checked (chaosRun.check).
//
//	go test -run 'TestChaos$' ./lifecycle                       # the fixed CI set (seeds 1..50)
//	CHAOS_SCHEDULES=1000 go test -run 'TestChaos$' ./lifecycle  # make chaos
//	CHAOS_SEED=123 go test -run 'TestChaos$' ./lifecycle        # replay one schedule
//
// A schedule is deterministic from its seed (which faults, kills and user actions, and when in
// the transaction's journal they happen); the engine's own timing is not.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

const (
	chaosChildEnv = "LIFECYCLE_CHAOS_CHILD"
	labelSeed     = "chaos.seed"           // on every container of a schedule, for its cleanup
	labelService  = "chaos.service"        // "svc" or "dep": which service a container is (copied to replacements)
	chaosVerify   = 700 * time.Millisecond // the bad version exits at once: well within it
	chaosMargin   = 4 * time.Second        // Manager.stopMargin: the engine is local and its stops quick
	chaosSettle   = time.Second            // Manager.settle: the proxy is drained before the last recovery
	chaosDrain    = 200 * time.Millisecond // Manager.drain of start-first updates
	childDeadline = 3 * time.Minute
)

// chaosJob is what a chaos child does: "update" (Recover, then Replace svc, then its dependent
// if svc was updated, as the updater does) or "recover" (Recover only). It kills itself with
// Signal after journal write KillAt (counted over all transactions) and Delay.
type chaosJob struct {
	DB, Mode      string
	Svc, Dep      string // container IDs; Dep "" = none
	Image, Pull   string
	Signal        string // "KILL", "TERM" or "" (no kill)
	KillAt        int
	Delay         time.Duration
	StopTimeoutMS int
	StartFirst    bool // svc is updated start-first
}

// TestChaosChild is the watcher of a chaos schedule, in a child process.
func TestChaosChild(t *testing.T) {
	var job chaosJob
	ctx, stop := childJob(t, chaosChildEnv, &job)
	defer stop()
	s, err := store.Open(job.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := client.New(client.FromEnv) // DOCKER_HOST: the fault proxy
	if err != nil {
		t.Fatal(err)
	}
	m := New(cli, s, Options{StopTimeout: time.Duration(job.StopTimeoutMS) * time.Millisecond, Verify: chaosVerify,
		HealthTimeout: 10 * time.Second, Logger: testLogger(t)})
	m.stopMargin, m.settle, m.drain = chaosMargin, chaosSettle, chaosDrain
	var once sync.Once
	m.afterJournal = func(seq int, step string) {
		n := journalWrites.Add(1)
		fmt.Printf("JOURNAL %d %s\n", n, step) // the parent's cue for user actions
		if job.Signal == "" || int(n) != job.KillAt {
			return
		}
		once.Do(func() {
			sig := syscall.SIGKILL
			if job.Signal == "TERM" {
				sig = syscall.SIGTERM
			}
			time.AfterFunc(job.Delay, func() {
				fmt.Printf("SIGNAL %s\n", job.Signal) // the parent's tally
				_ = syscall.Kill(os.Getpid(), sig)
			})
		})
	}
	report := func(what string, r Result) {
		b, _ := json.Marshal(r)
		fmt.Printf("RESULT %s %s\n", what, b)
	}
	for _, r := range m.Recover(ctx) {
		report("recover", r)
	}
	if job.Mode != "update" {
		return
	}
	res := m.Replace(ctx, Spec{ContainerID: job.Svc, Image: job.Image, PullRef: job.Pull, Rollback: true, StartFirst: job.StartFirst})
	report("svc", res)
	if job.Dep != "" && res.Outcome == OutcomeUpdated && ctx.Err() == nil {
		report("dep", m.Replace(ctx, Spec{ContainerID: job.Dep, Recreate: true, Replaced: map[string]string{job.Svc: res.NewID}, Rollback: true}))
	}
}

// journalWrites counts a chaos child's journal writes over all its transactions.
var journalWrites atomic.Int64

// schedule is one chaos schedule, all drawn from its seed.
type schedule struct {
	Seed        uint64
	AutoRemove  bool
	IgnoreTerm  bool
	StopTimeout int // seconds
	Restart     bool
	Bad         bool // the new version exits: the update is rolled back
	Dependent   bool
	StartFirst  bool `json:",omitempty"` // svc is updated start-first (a schedule without a dependent)
	Faults      []faultSpec
	Kill        killSpec
	Action      string // user action: "", rm, rename, stop, takeover, compose, clone, commit
	ActionAt    int    // after this journal write (0 = once the first run ended)
	ActionDelay time.Duration
	Recovery    *recoverySpec // a first recovery under faults, maybe killed
}

type killSpec struct {
	Signal string // "", KILL, TERM
	At     int
	Delay  time.Duration
}

type recoverySpec struct {
	Faults []faultSpec
	Kill   killSpec
}

// faultSpec is a testenv.FaultRule in a form that prints and replays.
type faultSpec struct {
	Method, Path string
	Nth          int
	Kind         testenv.FaultKind
	Delay        time.Duration
	Status       int
}

func (f faultSpec) rule() *testenv.FaultRule {
	return &testenv.FaultRule{Method: f.Method, Path: regexp.MustCompile(f.Path), Nth: f.Nth, Kind: f.Kind, Delay: f.Delay, Status: f.Status}
}

// endpoint is a request pattern and the faults that make sense for it: the streaming ones
// (events, wait) get no "after" kinds, and no request gets a fault on /_ping (the client's
// version negotiation, which a real proxy answers locally).
type endpoint struct {
	method, path string
	kinds        []testenv.FaultKind
	statuses     []int
}

var (
	allKinds = []testenv.FaultKind{testenv.FaultDelay, testenv.FaultHang, testenv.FaultCut, testenv.FaultStatus,
		testenv.FaultCutAfter, testenv.FaultStatusAfter, testenv.FaultTimeout}
	beforeKinds = []testenv.FaultKind{testenv.FaultDelay, testenv.FaultHang, testenv.FaultCut, testenv.FaultStatus, testenv.FaultTimeout}
	endpoints   = []endpoint{
		{"POST", `^/containers/create$`, allKinds, []int{409, 500}},
		{"POST", `^/containers/[^/]+/stop$`, allKinds, []int{404, 409, 500}},
		{"POST", `^/containers/[^/]+/start$`, allKinds, []int{409, 500}},
		{"POST", `^/containers/[^/]+/rename$`, allKinds, []int{409, 500}},
		{"DELETE", `^/containers/[^/]+$`, allKinds, []int{404, 409, 500}},
		{"GET", `^/containers/[^/]+/json$`, beforeKinds, []int{404, 500}},
		{"GET", `^/containers/json$`, beforeKinds, []int{500}},
		{"POST", `^/containers/[^/]+/wait$`, beforeKinds, []int{500}},
		{"GET", `^/events$`, beforeKinds, []int{500}},
		{"POST", `^/images/create$`, allKinds, []int{500}},
		{"POST", `^/images/[^/]+/tag$`, beforeKinds, []int{500}},
	}
	userActions = []string{"rm", "rename", "stop", "takeover", "compose", "clone", "commit"}
)

func drawFaults(rng *rand.Rand, most int) []faultSpec {
	n := rng.IntN(most + 1)
	out := make([]faultSpec, 0, n)
	for range n {
		e := endpoints[rng.IntN(len(endpoints))]
		// Most requests of a kind come once or twice per transaction: early occurrences count.
		f := faultSpec{Method: e.method, Path: e.path, Nth: []int{1, 1, 1, 2, 2, 3}[rng.IntN(6)], Kind: e.kinds[rng.IntN(len(e.kinds))]}
		switch f.Kind {
		case testenv.FaultDelay:
			f.Delay = time.Duration(100+rng.IntN(1900)) * time.Millisecond
		case testenv.FaultHang:
			f.Delay = time.Duration(200+rng.IntN(2800)) * time.Millisecond
		case testenv.FaultTimeout:
			f.Delay = time.Duration(300+rng.IntN(1200)) * time.Millisecond
		case testenv.FaultStatus, testenv.FaultStatusAfter:
			f.Status = e.statuses[rng.IntN(len(e.statuses))]
			if f.Kind == testenv.FaultStatusAfter {
				f.Status = 500
			}
		}
		out = append(out, f)
	}
	return out
}

func drawKill(rng *rand.Rand, noKill float64, most int) killSpec {
	r := rng.Float64()
	k := killSpec{At: 1 + rng.IntN(most), Delay: time.Duration(rng.IntN(1500)) * time.Millisecond}
	switch {
	case r < noKill:
	case r < noKill+(1-noKill)*0.7:
		k.Signal = "KILL"
	default:
		k.Signal = "TERM"
	}
	return k
}

// newSchedule draws schedule seed.
func newSchedule(seed uint64) schedule {
	rng := rand.New(rand.NewPCG(seed, 0x5afe))
	s := schedule{Seed: seed, AutoRemove: rng.IntN(5) < 2, IgnoreTerm: rng.IntN(10) < 3, StopTimeout: 1 + rng.IntN(2),
		Bad: rng.IntN(10) < 3, Dependent: rng.IntN(5) == 0}
	s.Restart = !s.AutoRemove && rng.IntN(5) == 0
	s.Faults = drawFaults(rng, 4)
	if rng.IntN(100) < 15 {
		// A socket proxy in front of the engine whose HTTP timeout is shorter than a stop.
		s.Faults = append(s.Faults, faultSpec{Path: `^/(containers|images)/`, Kind: testenv.FaultTimeout,
			Delay: time.Duration(500+rng.IntN(1000)) * time.Millisecond})
	}
	steps := 12
	if s.Dependent {
		steps = 24
	}
	s.Kill = drawKill(rng, 0.2, steps)
	if !s.Dependent && rng.IntN(5) < 3 {
		s.Action = userActions[rng.IntN(len(userActions))]
		if s.Action == "stop" && s.AutoRemove {
			s.Action = "rm" // a user stopping an --rm container deletes its anonymous volume: their doing, not ours
		}
		s.ActionAt = rng.IntN(steps + 1)
		s.ActionDelay = time.Duration(rng.IntN(800)) * time.Millisecond
	}
	if rng.IntN(10) < 3 {
		s.Recovery = &recoverySpec{Faults: drawFaults(rng, 2), Kill: drawKill(rng, 0.5, 8)}
	}
	// Drawn apart, so that every other draw (and so every schedule of the fixed set) stays as it
	// was before start-first existed; a quarter of the schedules without a dependent (which start-
	// first refuses) update start-first.
	s.StartFirst = !s.Dependent && rand.New(rand.NewPCG(seed, 0x5f1257)).IntN(4) == 0
	return s
}

func (s schedule) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// chaosImages are the campaign's images, pushed and pulled once. Each schedule runs its own
// tag of v1 (chaosRun.ref): the watcher moves the tag it updates, and schedules run at once.
type chaosImages struct {
	v1, good, bad string // by-digest references
	ids           map[string]string
}

// TestChaos runs the campaign: CHAOS_SCHEDULES schedules from seed CHAOS_FIRST (default 50
// from 1), or the one CHAOS_SEED; -parallel bounds how many run at once. A failure names its
// seed and the command that replays it. CHAOS_REPORT=path writes the tallies as JSON.
func TestChaos(t *testing.T) {
	seeds := chaosSeeds(t)
	env := testenv.New(t)
	imgs := pushChaosImages(t, env)
	var tally chaosTally
	t.Cleanup(func() { tally.report(t, len(seeds)) })
	t.Run("schedules", func(t *testing.T) {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
				t.Parallel()
				run := &chaosRun{t: t, env: env.For(t), imgs: imgs, s: newSchedule(seed)}
				violations := run.play()
				tally.add(run, violations)
				if len(violations) > 0 {
					t.Errorf("chaos seed %d: %d invariant violations:\n  %s\nschedule: %s\nfaults injected: %v\nchild output:\n%s\nreplay: CHAOS_SEED=%d go test -race -run 'TestChaos$' ./lifecycle",
						seed, len(violations), strings.Join(violations, "\n  "), run.s, run.faultLog, run.out.String(), seed)
				}
			})
		}
	})
}

func chaosSeeds(t *testing.T) []uint64 {
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		return []uint64{seed}
	}
	n, first := 50, uint64(1)
	if v, err := strconv.Atoi(os.Getenv("CHAOS_SCHEDULES")); err == nil {
		n = v
	}
	if v, err := strconv.ParseUint(os.Getenv("CHAOS_FIRST"), 10, 64); err == nil {
		first = v
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

func pushChaosImages(t *testing.T, env *testenv.Env) chaosImages {
	t.Helper()
	vols := []string{"/data"}
	_, d1 := env.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1", Volumes: vols})
	_, d2 := env.Registry.PushImage(t, "app", "good", testenv.ImageSpec{Version: "v2", Volumes: vols})
	_, d3 := env.Registry.PushImage(t, "app", "bad", testenv.ImageSpec{Version: "v2-bad", Volumes: vols,
		Env: []string{"APP_EXIT_CODE=3"}})
	at := func(d fmt.Stringer) string { return env.Registry.Host + "/app@" + d.String() }
	imgs := chaosImages{v1: at(d1), good: at(d2), bad: at(d3), ids: map[string]string{}}
	for _, r := range []string{imgs.v1, imgs.good, imgs.bad} {
		env.Pull(r)
		img, err := env.Docker.ImageInspect(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		imgs.ids[r] = img.ID
	}
	return imgs
}

// userContainer is a container a user action made, and the state the action left it in.
type userContainer struct {
	ID, Name string
	Running  bool
}

// chaosRun is one schedule being played.
type chaosRun struct {
	t    *testing.T
	env  *testenv.Env
	imgs chaosImages
	s    schedule

	dir, db    string
	ref        string // this schedule's image reference, v1 at first
	svcName    string
	depName    string
	volume     string            // the named volume
	anon       map[string]string // service -> its original anonymous volume
	original   map[string]string // service -> its original container ID
	user       []userContainer
	mode       string // what the user action did to the service's name: see act
	faultLog   []string
	injected   map[testenv.FaultKind]int
	kills      map[string]int
	actionDone string
	out        safeBuffer
}

// play sets the schedule up, runs it, recovers and checks; it returns the violations.
func (c *chaosRun) play() []string {
	c.setup()
	defer c.cleanup()
	c.injected, c.kills = map[testenv.FaultKind]int{}, map[string]int{}
	c.runChild("update", c.s.Faults, c.s.Kill, true)
	if c.actionDone == "" && c.s.Action != "" {
		c.act() // the moment never came while the watcher ran: the user acts while it is down
	}
	if r := c.s.Recovery; r != nil {
		c.runChild("recover", r.Faults, r.Kill, false)
	}
	c.recoverClean()
	return c.check()
}

func (c *chaosRun) labels(service string) map[string]string {
	return c.env.Labels(map[string]string{labelSeed: strconv.FormatUint(c.s.Seed, 10), labelService: service})
}

func (c *chaosRun) setup() {
	t, e := c.t, c.env
	dir, err := os.MkdirTemp("", "chaos")
	if err != nil {
		t.Fatal(err)
	}
	c.dir, c.db = dir, filepath.Join(dir, "watcher.db")
	tag := fmt.Sprintf("%d", c.s.Seed)
	c.svcName, c.depName, c.volume = e.Name("svc"+tag), e.Name("dep"+tag), e.Name("vol"+tag)
	c.ref = fmt.Sprintf("%s/chaos%s:%s", e.Registry.Host, tag, e.Owner)
	if _, err := e.Docker.ImageTag(context.Background(), client.ImageTagOptions{Source: c.imgs.v1, Target: c.ref}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Docker.VolumeCreate(context.Background(), client.VolumeCreateOptions{Name: c.volume}); err != nil {
		t.Fatal(err)
	}
	c.original, c.anon = map[string]string{}, map[string]string{}
	stop := c.s.StopTimeout
	env := []string{"APP_WRITE=/data/marker=anon-" + tag + ";/named/marker-svc=named-" + tag}
	if c.s.IgnoreTerm {
		env = append(env, "APP_IGNORE_TERM=1")
	}
	hc := &container.HostConfig{AutoRemove: c.s.AutoRemove, Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: c.volume, Target: "/named"}}}
	if c.s.Restart {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	}
	c.original["svc"] = e.Run(c.svcName, &container.Config{Image: c.ref, Env: env, StopTimeout: &stop, Labels: c.labels("svc")}, hc, nil)
	if c.s.Dependent {
		denv := []string{"APP_WRITE=/data/marker=dep-" + tag + ";/named/marker-dep=named-" + tag}
		c.original["dep"] = e.Run(c.depName, &container.Config{Image: c.ref, Env: denv, StopTimeout: &stop, Labels: c.labels("dep")},
			&container.HostConfig{NetworkMode: container.NetworkMode("container:" + c.original["svc"]),
				Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: c.volume, Target: "/named"}}}, nil)
	}
	for svc, id := range c.original {
		for _, mp := range e.Inspect(id).Mounts {
			if mp.Destination == "/data" {
				c.anon[svc] = mp.Name
			}
		}
	}
	c.awaitMarkers()
}

// markers are the files every volume must still hold at the end: volume -> file -> content.
func (c *chaosRun) markers() map[string]map[string]string {
	tag := fmt.Sprintf("%d", c.s.Seed)
	m := map[string]map[string]string{c.volume: {"marker-svc": "named-" + tag}, c.anon["svc"]: {"marker": "anon-" + tag}}
	if c.s.Dependent {
		m[c.volume]["marker-dep"] = "named-" + tag
		m[c.anon["dep"]] = map[string]string{"marker": "dep-" + tag}
	}
	return m
}

func (c *chaosRun) awaitMarkers() {
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := c.checkMarkers()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("setup: %v", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkMarkers reads every marker from the volumes' directories on this machine (the private
// engine is local) and returns what is missing or changed.
func (c *chaosRun) checkMarkers() []string {
	var bad []string
	for vol, files := range c.markers() {
		res, err := c.env.Docker.VolumeInspect(context.Background(), vol, client.VolumeInspectOptions{})
		if err != nil {
			bad = append(bad, fmt.Sprintf("volume %s: %v", vol, err))
			continue
		}
		for f, want := range files {
			got, err := os.ReadFile(filepath.Join(res.Volume.Mountpoint, f))
			if err != nil || string(got) != want {
				bad = append(bad, fmt.Sprintf("volume %s: %s is %q (%v), want %q", shortID(vol), f, got, err, want))
			}
		}
	}
	return bad
}

// runChild runs a chaos child through a fresh fault proxy and, when withAction, plays the user
// action at its cue. The proxy is closed (its requests finished) before runChild returns.
func (c *chaosRun) runChild(mode string, faults []faultSpec, kill killSpec, withAction bool) {
	t := c.t
	p := testenv.NewFaultProxy(t)
	defer func() {
		p.Close()
		for k, n := range p.Injected() {
			c.injected[k] += n
		}
		c.faultLog = append(c.faultLog, p.Log()...)
	}()
	rules := make([]*testenv.FaultRule, 0, len(faults))
	for _, f := range faults {
		rules = append(rules, f.rule())
	}
	p.SetRules(rules...)
	pull := c.imgs.good
	if c.s.Bad {
		pull = c.imgs.bad
	}
	job := chaosJob{DB: c.db, Mode: mode, Svc: c.original["svc"], Dep: c.original["dep"], Image: c.ref, Pull: pull,
		Signal: kill.Signal, KillAt: kill.At, Delay: kill.Delay, StopTimeoutMS: c.s.StopTimeout * 1000, StartFirst: c.s.StartFirst}
	raw, _ := json.Marshal(job)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosChild$", "-test.v")
	cmd.Env = append(os.Environ(), chaosChildEnv+"="+string(raw), "DOCKER_HOST="+p.Host)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &c.out
	fmt.Fprintf(&c.out, "--- %s child (%s)\n", mode, p.Host)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(childDeadline, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	c.follow(stdout, withAction)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(&c.out, "--- killed by %v\n", ws.Signal())
	} else if err != nil {
		fmt.Fprintf(&c.out, "--- exit: %v\n", err)
	}
}

// follow copies the child's output and plays the user action after its cue (journal write n).
func (c *chaosRun) follow(r io.Reader, withAction bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var acting sync.WaitGroup
	cued := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(&c.out, line)
		if sig, ok := strings.CutPrefix(line, "SIGNAL "); ok {
			c.kills["SIG"+sig]++
		}
		var n int
		if _, err := fmt.Sscanf(line, "JOURNAL %d", &n); err != nil || !withAction || c.s.Action == "" || n != c.s.ActionAt || cued {
			continue
		}
		cued = true
		acting.Add(1)
		time.AfterFunc(c.s.ActionDelay, func() {
			defer acting.Done()
			c.act()
		})
	}
	acting.Wait()
}

// recoverClean is the next start: Recover on the state file, straight to the engine.
func (c *chaosRun) recoverClean() {
	s, err := store.Open(c.db)
	if err != nil {
		c.t.Fatal(err)
	}
	defer s.Close()
	m := New(c.env.Docker, s, Options{StopTimeout: time.Duration(c.s.StopTimeout) * time.Second, Verify: chaosVerify,
		HealthTimeout: 10 * time.Second, Logger: testLogger(c.t)})
	m.stopMargin, m.settle, m.drain = chaosMargin, chaosSettle, chaosDrain
	for _, r := range m.Recover(context.Background()) {
		b, _ := json.Marshal(r)
		fmt.Fprintf(&c.out, "--- final recovery: %s\n", b)
	}
}

func (c *chaosRun) cleanup() {
	ctx := context.Background()
	d := c.env.Docker
	res, err := d.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", labelSeed+"="+strconv.FormatUint(c.s.Seed, 10))})
	if err == nil {
		for _, ctr := range res.Items {
			_, _ = d.ContainerRemove(ctx, ctr.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	_, _ = d.ImageRemove(ctx, c.ref, client.ImageRemoveOptions{}) // the tag only
	for _, v := range append([]string{c.volume}, c.anon["svc"], c.anon["dep"]) {
		if v != "" {
			_, _ = d.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true})
		}
	}
	_ = os.RemoveAll(c.dir)
}

// chaosTally adds up the campaign's figures.
type chaosTally struct {
	mu         sync.Mutex
	schedules  int
	startFirst int
	violations int
	failed     []uint64
	injected   map[testenv.FaultKind]int
	kills      map[string]int
	actions    map[string]int
	modes      map[string]int
}

func (ta *chaosTally) add(c *chaosRun, violations []string) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if ta.injected == nil {
		ta.injected, ta.kills, ta.actions, ta.modes = map[testenv.FaultKind]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	}
	ta.schedules++
	if c.s.StartFirst {
		ta.startFirst++
	}
	ta.violations += len(violations)
	if len(violations) > 0 {
		ta.failed = append(ta.failed, c.s.Seed)
	}
	for k, n := range c.injected {
		ta.injected[k] += n
	}
	for k, n := range c.kills {
		ta.kills[k] += n
	}
	if c.s.Action != "" {
		ta.actions[c.s.Action]++
		ta.modes[c.mode]++
	}
}

func (ta *chaosTally) report(t *testing.T, planned int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	sort.Slice(ta.failed, func(i, j int) bool { return ta.failed[i] < ta.failed[j] })
	out := map[string]any{"schedules_planned": planned, "schedules_run": ta.schedules, "start_first_schedules": ta.startFirst, "violations": ta.violations,
		"failed_seeds": ta.failed, "faults_injected": ta.injected, "watcher_killed_by": ta.kills, "user_actions": ta.actions,
		"user_action_effects": ta.modes}
	b, _ := json.MarshalIndent(out, "", "  ")
	t.Logf("chaos campaign:\n%s", b)
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		_ = os.WriteFile(path, b, 0o644)
	}
}
