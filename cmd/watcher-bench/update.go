package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/updater"
)

// batchResult is one update batch: every container's image moved to a new digest.
type batchResult struct {
	containers, images, parallel int
	verify                       time.Duration
	wall                         time.Duration
	updated                      int
	down                         []time.Duration // die -> start from the engine's events
	lifeDown                     []time.Duration // lifecycle's own Result.Downtime
	api                          string
	apiTotal                     int // engine API requests of the whole run and of the check after it
	after                        string
	reg                          regCounts
	round                        int // 0: the first run of a daemon that has updated nothing yet
}

// batchRound pushes version for every image, runs one update of the batch through u and a check
// after it (the inventory's look at what the run changed is part of the updates' cost), and
// measures both.
func (b *bench) batchRound(ctx context.Context, c config, u *updater.Updater, ev *eventLog, images, p int, version string) (*batchResult, error) {
	for i := range images {
		if _, err := b.pushImage(fmt.Sprintf("batch%03d", i), "v1", fmt.Sprintf("%s-%d", version, i)); err != nil {
			return nil, err
		}
	}
	r := &batchResult{containers: c.batch, images: c.batchImages, parallel: p, verify: c.verify}
	b.api.Reset()
	b.api.Trace(true)
	b.reg.Reset()
	var rep *updater.Report
	since := time.Now()
	err := profile(c.profileDir, fmt.Sprintf("update-p%d-%s", p, version), func() error {
		rep = u.Execute(ctx, "", updater.Request{Trigger: "bench"})
		return nil
	})
	r.wall = time.Since(since)
	b.api.Trace(false)
	r.api, r.apiTotal, r.reg = b.api.String(), b.api.total(), b.reg.Counts()
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // the last start events arrive
	for _, l := range rep.Containers {
		if l.Outcome != updater.OutcomeUpdated {
			return nil, fmt.Errorf("batch: %s %s %s %+v", l.Name, l.Outcome, l.Message, l.Failure)
		}
		r.updated++
		r.lifeDown = append(r.lifeDown, l.Downtime)
		if d, ok := ev.downtime(l.Name, since); ok {
			r.down = append(r.down, d)
		}
	}
	if f := os.Getenv("BENCH_TRACE"); f != "" {
		_ = os.WriteFile(f+"-"+version, []byte(b.api.timeline(since, "/")), 0o644)
	}
	// One container's engine requests around its downtime: where the time between die and start goes.
	if len(rep.Containers) > 0 {
		l := rep.Containers[len(rep.Containers)/2]
		t0 := ev.dieTime(l.Name, since)
		d, _ := ev.downtime(l.Name, since)
		logf("timeline of %s (t=0: die event; start event at %+.1f ms):\n%s", l.Name, float64(d.Microseconds())/1000, b.api.timeline(t0, l.ID, l.NewID, l.Name))
	}
	b.api.Reset()
	if rep := u.Execute(ctx, "", updater.Request{Trigger: "bench"}); rep.Error != "" {
		return nil, fmt.Errorf("the check after the batch: %s", rep.Error)
	}
	r.after, r.apiTotal = b.api.String(), r.apiTotal+b.api.total()
	logf("batch %d/%d parallel %d verify %s (%s): %s, %d updated, downtime median %s max %s (lifecycle's own: median %s max %s); engine %s, the check after it %s; registry %s",
		c.batch, c.batchImages, p, c.verify, version, r.wall.Round(time.Millisecond), r.updated, median(r.down).Round(time.Millisecond), maxOf(r.down).Round(time.Millisecond),
		median(r.lifeDown).Round(time.Millisecond), maxOf(r.lifeDown).Round(time.Millisecond), r.api, r.after, r.reg)
	return r, nil
}

// floorResult is the bare docker replacement: stop, rm, create, start.
type floorResult struct {
	n, parallel int
	down        []time.Duration // die -> start from the engine's events
}

func (b *bench) updateScenarios(ctx context.Context, c config, t *table) error {
	scope := "wbb-" + b.owner
	start := time.Now()
	refs, err := b.images(ctx, "batch", 0, c.batchImages, "b1")
	if err != nil {
		return err
	}
	if err := parallel(c.batch, 6, func(i int) error {
		_, err := b.runContainer(ctx, fmt.Sprintf("wb-%s-b%03d", b.owner, i), refs[i*len(refs)/c.batch], scope)
		return err
	}); err != nil {
		return err
	}
	floorNames := make([]string, c.floorN)
	if err := parallel(c.floorN, 6, func(i int) error {
		floorNames[i] = fmt.Sprintf("wb-%s-f%03d", b.owner, i)
		_, err := b.runContainer(ctx, floorNames[i], refs[i%len(refs)], "")
		return err
	}); err != nil {
		return err
	}
	logf("setup %d batch containers over %d images and %d floor containers: %s", c.batch, c.batchImages, c.floorN, time.Since(start).Round(time.Millisecond))

	ev := b.watchEvents()
	defer ev.Close()

	st, done, err := tempStore()
	if err != nil {
		return err
	}
	defer done()
	life := lifecycle.New(b.cli, st, lifecycle.Options{StopTimeout: 10 * time.Second, Verify: c.verify, HealthTimeout: 2 * time.Minute, Logger: quiet()})

	// The floor first, then the batches, then the floor again: the machine's load drifts.
	floors := []int{1}
	for _, p := range c.batchParallel {
		if !slices.Contains(floors, p) {
			floors = append(floors, p)
		}
	}
	for _, p := range floors {
		f, err := b.floor(ctx, ev, floorNames, p)
		if err != nil {
			return err
		}
		t.floors = append(t.floors, f)
	}
	for k, p := range c.batchParallel {
		u := updater.New(b.cli, registry.New(registry.Options{}), life, st, updater.Options{
			Selection: updater.Selection{LabelEnable: true, Scope: scope},
			Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
			Cleanup:   true,
			Parallel:  p,
			Logger:    quiet(),
		})
		// As the daemon runs it: the inventory follows the engine's events (its first resync is
		// not counted), so the run's engine calls are the updates' own.
		stopFollowing := follow(ctx, u)
		for round := range c.batchRounds {
			r, err := b.batchRound(ctx, c, u, ev, len(refs), p, fmt.Sprintf("b%d-%d", k+2, round))
			if err != nil {
				stopFollowing()
				return err
			}
			r.round = round
			t.batches = append(t.batches, r)
		}
		stopFollowing()
	}
	for _, p := range floors {
		f, err := b.floor(ctx, ev, floorNames, p)
		if err != nil {
			return err
		}
		t.floors = append(t.floors, f)
	}
	return nil
}

// tempStore opens a state file in a new temporary directory; done closes and removes it.
func tempStore() (st *store.Store, done func(), err error) {
	dir, err := os.MkdirTemp("", "watcher-bench-state")
	if err != nil {
		return nil, nil, err
	}
	st, err = store.Open(filepath.Join(dir, "watcher.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return st, func() { st.Close(); os.RemoveAll(dir) }, nil
}

// floor replaces each named container the bare way, p at a time: stop, rm, create, start.
func (b *bench) floor(ctx context.Context, ev *eventLog, names []string, p int) (*floorResult, error) {
	since := time.Now()
	err := parallel(len(names), p, func(i int) error {
		ins, err := b.cli.ContainerInspect(ctx, names[i], client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		old := ins.Container
		timeout := 10
		if _, err := b.cli.ContainerStop(ctx, old.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			return err
		}
		if _, err := b.cli.ContainerRemove(ctx, old.ID, client.ContainerRemoveOptions{}); err != nil {
			return err
		}
		res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: names[i],
			Config:     &container.Config{Image: old.Config.Image, Labels: map[string]string{testenv.OwnerLabel: b.owner}},
			HostConfig: &container.HostConfig{NetworkMode: "none"}})
		if err != nil {
			return err
		}
		_, err = b.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	f := &floorResult{n: len(names), parallel: p}
	for _, n := range names {
		if d, ok := ev.downtime(n, since); ok {
			f.down = append(f.down, d)
		}
	}
	logf("floor stop+rm+create+start, %d at a time: downtime median %s max %s (%d containers)", p, median(f.down).Round(time.Millisecond), maxOf(f.down).Round(time.Millisecond), len(f.down))
	return f, nil
}
