package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/updater"
)

// checkResult is one check scenario's numbers.
type checkResult struct {
	containers, images int
	setup              time.Duration // creating and starting the containers (and images) for it
	cold, warm         time.Duration // first cycle with a new registry.Checker; median of the warm ones
	coldReg, warmReg   regCounts
	coldAPI, warmAPI   string
	allocs, bytes      uint64 // per warm cycle, this process (the registry is another process)
	floorCold          time.Duration
	floorWarm          time.Duration
	floorReg           regCounts
	floorList          time.Duration // one ContainerList(All) on the engine
	imageList          time.Duration // one ImageList on the engine
	follow             *followResult // the daemon's way, in this process
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (b *bench) checkScenarios(ctx context.Context, c config, t *table) error {
	scope := "wb-" + b.owner
	start := time.Now()
	refs, err := b.images(ctx, "app", 0, c.smallImages, "check")
	if err != nil {
		return err
	}
	b.reg.RequireToken()
	if err := b.startContainers(ctx, 0, c.small, refs, scope); err != nil {
		return err
	}
	b.checkRefs = refs
	setup := time.Since(start)
	logf("setup %d containers over %d images: %s", c.small, c.smallImages, setup.Round(time.Millisecond))
	r, err := b.measureCheck(ctx, c, scope, refs, c.small, "check200")
	if err != nil {
		return err
	}
	r.setup = setup
	t.checks = append(t.checks, r)
	if r.follow, err = b.measureFollow(ctx, c, scope, c.small, "follow200"); err != nil {
		return err
	}

	if c.daemon {
		return b.daemonRow(ctx, c, t, r, scope, c.small, c.smallImages)
	}

	return nil
}

// startContainers runs containers from..to-1; container i uses refs[i*len(refs)/to] (5 a piece
// for both 200/40 and 1000/200, and the first 200 keep their image when the set grows).
func (b *bench) startContainers(ctx context.Context, from, to int, refs []string, scope string) error {
	return parallel(to-from, 6, func(k int) error {
		i := from + k
		_, err := b.runContainer(ctx, fmt.Sprintf("wb-%s-c%04d", b.owner, i), refs[i*len(refs)/to], scope)
		if err == nil && (i+1)%100 == 0 {
			logf("  %d containers running", i+1)
		}
		return err
	})
}

func (b *bench) newUpdater(scope string, opts func(*updater.Options)) *updater.Updater {
	o := updater.Options{
		Selection: updater.Selection{LabelEnable: true, Scope: scope},
		Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
		Cleanup:   true,
		Logger:    quiet(),
	}
	if opts != nil {
		opts(&o)
	}
	// The daemon's registry options: the defaults (16 overall, 8 per host).
	return updater.New(b.cli, registry.New(registry.Options{}), nil, nil, o)
}

// cycle runs one unchanged cycle and checks that every container came back up to date.
func cycle(ctx context.Context, u *updater.Updater, want int) (time.Duration, error) {
	start := time.Now()
	rep := u.Execute(ctx, "", updater.Request{Trigger: "bench"})
	d := time.Since(start)
	if rep.Error != "" {
		return d, fmt.Errorf("cycle: %s", rep.Error)
	}
	if n := rep.Count(updater.OutcomeUpToDate); n != want || len(rep.Containers) != want {
		for _, l := range rep.Containers {
			if l.Outcome != updater.OutcomeUpToDate {
				return d, fmt.Errorf("cycle: %d of %d lines up to date; e.g. %s: %s %s %+v", n, len(rep.Containers), l.Name, l.Outcome, l.Message, l.Failure)
			}
		}
		return d, fmt.Errorf("cycle: %d of %d lines up to date, want %d", n, len(rep.Containers), want)
	}
	return d, nil
}

// daemonRow measures the daemon on the check scenario r's containers and adds it to the table.
func (b *bench) daemonRow(ctx context.Context, c config, t *table, r *checkResult, scope string, n, images int) error {
	d, err := b.daemonScenario(ctx, c, scope, n, images)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	d.check = r
	t.daemons = append(t.daemons, d)
	return nil
}

// measuredCycle runs one cycle with the engine counter reset and returns its wall and what this
// process allocated in it (count, bytes).
func (b *bench) measuredCycle(ctx context.Context, u *updater.Updater, n int) (d time.Duration, allocs, bytes uint64, err error) {
	b.api.Reset()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	d, err = cycle(ctx, u, n)
	runtime.ReadMemStats(&m1)
	return d, m1.Mallocs - m0.Mallocs, m1.TotalAlloc - m0.TotalAlloc, err
}

func (b *bench) measureCheck(ctx context.Context, c config, scope string, refs []string, n int, prof string) (*checkResult, error) {
	r := &checkResult{containers: n, images: len(refs)}
	u := b.newUpdater(scope, nil)

	b.reg.Reset()
	b.api.Reset()
	d, err := cycle(ctx, u, n)
	if err != nil {
		return nil, err
	}
	r.cold, r.coldReg, r.coldAPI = d, b.reg.Counts(), b.api.String()

	var walls []time.Duration
	var allocs, bytes uint64
	err = profile(c.profileDir, prof, func() error {
		for i := range c.cycles {
			b.reg.Reset()
			d, n0, n1, err := b.measuredCycle(ctx, u, n)
			if err != nil {
				return err
			}
			walls = append(walls, d)
			allocs += n0
			bytes += n1
			if i == 0 {
				r.warmReg, r.warmAPI = b.reg.Counts(), b.api.String()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.warm = median(walls)
	if err := b.phases(ctx, u, n); err != nil {
		return nil, err
	}
	r.allocs, r.bytes = allocs/uint64(c.cycles), bytes/uint64(c.cycles)
	logf("check %d/%d: cold %s (%s; engine %s), warm median %s of %v (%s; engine %s), %d allocs %d KiB a cycle",
		n, len(refs), r.cold.Round(time.Millisecond), r.coldReg, r.coldAPI, r.warm.Round(time.Millisecond), roundAll(walls), r.warmReg, r.warmAPI, r.allocs, r.bytes>>10)

	// The floor: one HEAD per image straight from go-containerregistry, 16 at a time, with a new
	// puller (token fetches included) and again with the same one (tokens held).
	p, err := remote.NewPuller(remote.WithAuth(authn.Anonymous))
	if err != nil {
		return nil, err
	}
	heads := func() (time.Duration, error) {
		start := time.Now()
		err := parallel(len(refs), 16, func(i int) error {
			ref, err := name.ParseReference(refs[i], name.Insecure)
			if err != nil {
				return err
			}
			_, err = remote.Head(ref, remote.Reuse(p), remote.WithContext(ctx))
			return err
		})
		return time.Since(start), err
	}
	if r.floorCold, err = heads(); err != nil {
		return nil, fmt.Errorf("floor HEADs: %w", err)
	}
	var fw []time.Duration
	for range c.cycles {
		b.reg.Reset()
		d, err := heads()
		if err != nil {
			return nil, fmt.Errorf("floor HEADs: %w", err)
		}
		fw = append(fw, d)
	}
	r.floorWarm, r.floorReg = median(fw), b.reg.Counts()
	var lw []time.Duration
	for range c.cycles {
		start := time.Now()
		if _, err := b.cli.ContainerList(ctx, client.ContainerListOptions{All: true}); err != nil {
			return nil, err
		}
		lw = append(lw, time.Since(start))
	}
	r.floorList = median(lw)
	// For comparison with the image inspects: one image list (all images, with repo digests).
	var iw []time.Duration
	for range c.cycles {
		start := time.Now()
		if _, err := b.cli.ImageList(ctx, client.ImageListOptions{}); err != nil {
			return nil, err
		}
		iw = append(iw, time.Since(start))
	}
	r.imageList = median(iw)
	logf("floor: %d HEADs cold %s, warm median %s (%s); one container list %s; one image list %s", len(refs),
		r.floorCold.Round(time.Millisecond), r.floorWarm.Round(time.Millisecond), r.floorReg, r.floorList.Round(time.Millisecond), r.imageList.Round(time.Millisecond))
	return r, nil
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// phases runs one more cycle with request tracing and logs where its wall time went: from the
// container list request to the first image inspect request (list answered and decoded), the image
// inspects (first to last sent), and the rest (last inspects answered, registry check, report).
func (b *bench) phases(ctx context.Context, u *updater.Updater, n int) error {
	b.api.Reset()
	b.api.Trace(true)
	start := time.Now()
	if _, err := cycle(ctx, u, n); err != nil {
		return err
	}
	end := time.Now()
	b.api.Trace(false)
	b.api.mu.Lock()
	defer b.api.mu.Unlock()
	var firstImg, lastImg time.Time
	for _, r := range b.api.trace {
		if strings.HasPrefix(r.path, "/images/") {
			if firstImg.IsZero() {
				firstImg = r.at
			}
			lastImg = r.at
		}
	}
	if firstImg.IsZero() {
		return nil
	}
	logf("cycle phases: list %s, image inspects sent over %s, rest %s (total %s)", firstImg.Sub(start).Round(time.Millisecond),
		lastImg.Sub(firstImg).Round(time.Millisecond), end.Sub(lastImg).Round(time.Millisecond), end.Sub(start).Round(time.Millisecond))
	return nil
}

// bigCheck grows the check scenario to c.big containers over c.bigImages images and measures it.
// It runs last: a thousand running containers slow every other engine call on a small machine.
func (b *bench) bigCheck(ctx context.Context, c config, t *table) error {
	scope := "wb-" + b.owner
	refs := b.checkRefs
	start := time.Now()
	more, err := b.images(ctx, "app", c.smallImages, c.bigImages-c.smallImages, "check")
	if err != nil {
		return err
	}
	refs = append(refs, more...)
	if err := b.startContainers(ctx, c.small, c.big, refs, scope); err != nil {
		return fmt.Errorf("starting %d containers: %w (after %s)", c.big, err, time.Since(start).Round(time.Second))
	}
	setup := time.Since(start)
	logf("setup %d more containers over %d more images: %s", c.big-c.small, c.bigImages-c.smallImages, setup.Round(time.Millisecond))
	r, err := b.measureCheck(ctx, c, scope, refs, c.big, "check1000")
	if err != nil {
		return err
	}
	r.setup = setup
	t.checks = append(t.checks, r)
	if c.daemon {
		return b.daemonRow(ctx, c, t, r, scope, c.big, c.bigImages)
	}
	return nil
}
