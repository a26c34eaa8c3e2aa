package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/updater"
)

// probeResult is what a client that connects to a service's network alias every 50 ms saw
// across one update of that service.
type probeResult struct {
	order         string // stop-first or start-first
	requests      int    // during the update (from the run's start to a second after its end)
	failed        int
	firstV2       time.Duration // from the run's start to the first answer of the new container
	wall          time.Duration // the run
	lifeDowntime  time.Duration // lifecycle's own Result.Downtime
	outcome       string
	failureDetail string          // the first failed request's error
	failedAt      []time.Duration // each failed request, from the run's start
	slowest       time.Duration   // the longest successful request
	slowestAt     time.Duration   // when it was made, from the run's start
}

const probeEvery = 50 * time.Millisecond

// probeScenario updates a stop-first and a start-first service, each on an internal network of
// its own with a probe container connecting to its alias every 50 ms, one after the other, and
// counts the probes' failed requests during each update.
func (b *bench) probeScenario(ctx context.Context, c config, t *table) error {
	st, done, err := tempStore()
	if err != nil {
		return err
	}
	defer done()
	logger := quiet()
	if os.Getenv("BENCH_PROBE_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	life := lifecycle.New(b.cli, st, lifecycle.Options{StopTimeout: 10 * time.Second, Verify: c.probeVerify, HealthTimeout: time.Minute, Logger: logger})
	for i, order := range []string{updater.OrderStopFirst, updater.OrderStartFirst} {
		r, err := b.probeOne(ctx, life, st, order, i)
		if err != nil {
			return fmt.Errorf("probe %s: %w", order, err)
		}
		t.probes = append(t.probes, r)
	}
	return nil
}

// probeOne is one service's update under the probe.
func (b *bench) probeOne(ctx context.Context, life *lifecycle.Manager, st *store.Store, order string, i int) (*probeResult, error) {
	repo, alias := fmt.Sprintf("probe%d", i), fmt.Sprintf("svc%d", i)
	net := fmt.Sprintf("wbp-%s-%d", b.owner, i)
	if _, err := b.cli.NetworkCreate(ctx, net, client.NetworkCreateOptions{Driver: "bridge", Internal: true,
		Labels: map[string]string{testenv.OwnerLabel: b.owner}}); err != nil {
		return nil, err
	}
	ref, err := b.pushImage(repo, "v1", "v1")
	if err != nil {
		return nil, err
	}
	if err := b.pull(ctx, ref); err != nil {
		return nil, err
	}
	scope := "wbp-" + b.owner + "-" + order
	labels := map[string]string{testenv.OwnerLabel: b.owner, "watcher.enable": "true", "watcher.scope": scope, updater.LabelUpdateOrder: order}
	on := func(aliases ...string) *network.NetworkingConfig {
		return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {Aliases: aliases}}}
	}
	if _, err := b.create(ctx, fmt.Sprintf("wb-%s-svc%d", b.owner, i), &container.Config{Image: ref, Labels: labels, Env: []string{"APP_SERVE=:8080"}}, net, on(alias)); err != nil {
		return nil, err
	}
	probeID, err := b.create(ctx, fmt.Sprintf("wb-%s-probe%d", b.owner, i), &container.Config{Image: ref, Tty: true,
		Labels: map[string]string{testenv.OwnerLabel: b.owner},
		Env:    []string{"APP_PROBE=" + alias + ":8080", "APP_PROBE_EVERY=" + probeEvery.String()}}, net, on())
	if err != nil {
		return nil, err
	}
	if _, err := b.pushImage(repo, "v1", "v2"); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // the probe's first answers: the service serves before the update
	u := updater.New(b.cli, registry.New(registry.Options{}), life, st, updater.Options{
		Selection: updater.Selection{LabelEnable: true, Scope: scope},
		Defaults:  updater.Defaults{Mode: updater.ModeUpdate},
		Logger:    quiet(),
	})
	since := time.Now()
	rep := u.Execute(ctx, "", updater.Request{Trigger: "bench"})
	r := &probeResult{order: order, wall: time.Since(since)}
	time.Sleep(time.Second)
	if len(rep.Containers) != 1 {
		return nil, fmt.Errorf("%d report lines, want 1", len(rep.Containers))
	}
	l := rep.Containers[0]
	r.outcome, r.lifeDowntime = string(l.Outcome), l.Downtime
	if l.Outcome != updater.OutcomeUpdated {
		return nil, fmt.Errorf("%s: %s %s %+v", l.Name, l.Outcome, l.Message, l.Failure)
	}
	time.Sleep(3 * time.Second) // the last requests' answers (or time-outs)
	if err := b.countProbes(ctx, probeID, since, since.Add(r.wall+time.Second), r); err != nil {
		return nil, err
	}
	logf("probe %s: update %s, %d requests every %s during it, %d failed at %v from the run's start (first: %s); the slowest answer took %s (at %s); the new version answered %s after the run started; lifecycle's downtime %s",
		order, r.wall.Round(time.Millisecond), r.requests, probeEvery, r.failed, r.failedAt, r.failureDetail, r.slowest.Round(time.Millisecond), r.slowestAt.Round(time.Millisecond),
		r.firstV2.Round(time.Millisecond), r.lifeDowntime.Round(time.Millisecond))
	return r, nil
}

// create creates and starts a container on network net.
func (b *bench) create(ctx context.Context, name string, cfg *container.Config, net string, nc *network.NetworkingConfig) (string, error) {
	res, err := b.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg,
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(net)}, NetworkingConfig: nc})
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := b.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	return res.ID, nil
}

// countProbes reads the probe's lines ("probe <unix ns> ok|fail ...") between from and to.
func (b *bench) countProbes(ctx context.Context, id string, from, to time.Time, r *probeResult) error {
	rc, err := b.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc) // a TTY: the log is the raw output
	for sc.Scan() {
		f := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 4)
		if len(f) < 4 || f[0] != "probe" {
			continue
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, ns)
		if at.Before(from) || at.After(to) {
			continue
		}
		r.requests++
		switch {
		case f[2] != "ok":
			r.failed++
			r.failedAt = append(r.failedAt, at.Sub(from).Round(time.Millisecond))
			if r.failureDetail == "" {
				r.failureDetail = f[3]
			}
		default:
			answer, took, _ := strings.Cut(f[3], " ")
			if us, err := strconv.ParseInt(took, 10, 64); err == nil && time.Duration(us)*time.Microsecond > r.slowest {
				r.slowest, r.slowestAt = time.Duration(us)*time.Microsecond, at.Sub(from)
			}
			if answer == "v2" && r.firstV2 == 0 {
				r.firstV2 = at.Sub(from)
			}
		}
	}
	if r.requests == 0 {
		return fmt.Errorf("the probe made no requests during the update")
	}
	return sc.Err()
}
