// Command watcher-bench measures the watcher against the physical floor on the private test
// engine and an in-process registry, and prints the table docs/benchmarks.md keeps (issue 7):
// the check cycle (200 containers over 40 images, and 1000 over 200), an update batch with its
// per-container downtime, the bare docker and go-containerregistry floor for both, the daemon's
// memory, the check spread over several engines (hosts), and the check and update of Swarm services. Everything it creates carries
// testenv's owner label and is removed at the end (the extra engines with all they hold).
//
//	DOCKER_HOST=unix:///tmp/watcher-test-engine/docker.sock go run ./cmd/watcher-bench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/internal/testenv"
)

type config struct {
	small, smallImages              int
	hosts                           int
	services                        int
	serviceImages                   int
	big, bigImages                  int
	batch, batchImages, batchRounds int
	verify                          time.Duration
	batchParallel                   []int
	floorN                          int
	cycles                          int
	daemon                          bool
	profileDir                      string
	check                           bool          // the 200-container check scenario (and the daemon's)
	probe                           bool          // the probe scenario: failed requests across updates
	probeVerify                     time.Duration // update.verify in the probe scenario
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-registry-child" {
		if err := registryChild(); err != nil {
			fmt.Fprintln(os.Stderr, "registry child:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	var par, cleanup string
	flag.IntVar(&c.small, "containers", 200, "watched containers in the check scenario")
	flag.IntVar(&c.smallImages, "images", 40, "distinct images they use")
	flag.IntVar(&c.hosts, "hosts", 3, "private engines the check scenario is also spread over (0 = skip)")
	flag.IntVar(&c.services, "services", 20, "Swarm services on a single-node swarm of a fresh engine, checked and updated (0 = skip)")
	flag.IntVar(&c.serviceImages, "service-images", 5, "distinct images the services use")
	flag.IntVar(&c.big, "big", 1000, "containers in the large check scenario (0 = skip)")
	flag.IntVar(&c.bigImages, "big-images", 200, "distinct images in the large check scenario")
	flag.IntVar(&c.batch, "batch", 50, "containers in the update batch (0 = skip)")
	flag.IntVar(&c.batchImages, "batch-images", 10, "distinct images in the update batch")
	flag.IntVar(&c.batchRounds, "batch-rounds", 2, "update runs of the batch per update.parallel value, by one daemon (the first learns the dependency graph)")
	flag.DurationVar(&c.verify, "verify", 5*time.Second, "update.verify for the batch")
	flag.StringVar(&par, "batch-parallel", "4,16", "update.parallel values, one batch each (4 is the default)")
	flag.IntVar(&c.floorN, "floor", 12, "containers replaced by bare stop+rm+run for the floor")
	flag.IntVar(&c.cycles, "cycles", 5, "warm check cycles measured (the median is shown)")
	flag.BoolVar(&c.daemon, "daemon", true, "measure a real `watcher run` process's memory")
	flag.BoolVar(&c.check, "check", true, "run the check scenario (200 containers, and the daemon with them)")
	flag.BoolVar(&c.probe, "probe", true, "run the probe scenario: a client's failed requests across a stop-first and a start-first update")
	flag.DurationVar(&c.probeVerify, "probe-verify", 2*time.Second, "update.verify in the probe scenario")
	flag.StringVar(&c.profileDir, "profile", "", "write CPU and allocation profiles of the check and update paths here")
	flag.StringVar(&cleanup, "cleanup", "", "only remove what an interrupted run left: OWNER or OWNER@REGISTRYHOST (from its container names and image references)")
	flag.Parse()
	if cleanup != "" {
		owner, host, _ := strings.Cut(cleanup, "@")
		cli, err := engine.Connect()
		if err != nil {
			fmt.Fprintln(os.Stderr, "watcher-bench:", err)
			os.Exit(1)
		}
		testenv.CleanupOwner(cli.Client, owner, host)
		return
	}
	for _, s := range strings.Split(par, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			c.batchParallel = append(c.batchParallel, n)
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "watcher-bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	b, err := newBench()
	if err != nil {
		return err
	}
	// Clean up on SIGINT/SIGTERM too: hundreds of containers must not be left on a shared engine.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		logf("interrupted: cleaning up")
		b.Close()
		os.Exit(130)
	}()
	defer func() {
		t := time.Now()
		b.Close()
		logf("cleanup took %s", time.Since(t).Round(time.Millisecond))
	}()
	t := &table{}
	t.machine = machineInfo(b)
	ctx := context.Background()

	if c.probe {
		if err := b.probeScenario(ctx, c, t); err != nil {
			return err
		}
	}
	if c.check {
		if err := b.checkScenarios(ctx, c, t); err != nil {
			return err
		}
	}
	if c.hosts > 0 && c.check { // both build on the check scenario's containers
		if err := b.hostsScenario(ctx, c, t); err != nil {
			return err
		}
	}
	if c.services > 0 {
		if err := b.servicesScenario(ctx, c, t); err != nil {
			return err
		}
	}
	if c.batch > 0 {
		if err := b.updateScenarios(ctx, c, t); err != nil {
			return err
		}
	}
	if c.big > c.small && c.check {
		if err := b.bigCheck(ctx, c, t); err != nil {
			return err
		}
	}
	t.print(os.Stdout)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// profile runs f under a CPU profile written to dir/name.cpu.pprof (and an allocation profile
// to dir/name.allocs.pprof); without dir it just runs f.
func profile(dir, name string, f func() error) error {
	if dir == "" {
		return f()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cpu, err := os.Create(dir + "/" + name + ".cpu.pprof")
	if err != nil {
		return err
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	ferr := f()
	pprof.StopCPUProfile()
	runtime.GC()
	if mem, err := os.Create(dir + "/" + name + ".allocs.pprof"); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(mem, 0)
		mem.Close()
	}
	logf("profiles written: %s/%s.{cpu,allocs}.pprof", dir, name)
	return ferr
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}
