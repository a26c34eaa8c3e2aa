package main

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/updater"
)

// hostsResult is the check scenario spread over several engines (hosts).
type hostsResult struct {
	hosts, containers, images int
	setup                     time.Duration // starting the engines, pulling, creating and starting
	cold, warm                time.Duration
	coldReg, warmReg          regCounts
	warmAPI                   string
	single                    *checkResult // the same check on one engine, this run
}

// hostsScenario runs the check scenario's containers (the same images) spread over c.hosts
// fresh private engines, container i on engine i mod hosts, and measures one watcher's check
// of all of them: still one HEAD per distinct image, and its wall time against the one engine's.
// The engines are new dockerds (testenv.StartEngine), so no engine lists more than its share.
func (b *bench) hostsScenario(ctx context.Context, c config, t *table) error {
	start := time.Now()
	hosts := make([]updater.Host, c.hosts)
	scope := "wbh-" + b.owner
	sel := updater.Selection{LabelEnable: true, Scope: scope}
	for i := range hosts {
		x, err := testenv.StartEngine(testenv.EngineOptions{})
		if err != nil {
			return err
		}
		b.extra = append(b.extra, x)
		cli, err := engine.ConnectTo(engine.Target{Host: x.Host}, client.WithHTTPRequestHook(b.api.hook))
		if err != nil {
			return err
		}
		hosts[i] = updater.Host{Name: fmt.Sprintf("h%d", i+1), Engine: cli, Selection: &sel}
		if err := parallel(len(b.checkRefs), 4, func(k int) error { return pullOn(ctx, x.Docker, b.checkRefs[k]) }); err != nil {
			return fmt.Errorf("pull on %s: %w", x.Host, err)
		}
	}
	refs := b.checkRefs
	err := parallel(c.small, 6, func(i int) error {
		_, err := b.runOn(ctx, b.extra[i%c.hosts].Docker, fmt.Sprintf("wbh-%s-c%04d", b.owner, i), refs[i*len(refs)/c.small], scope)
		return err
	})
	if err != nil {
		return err
	}
	r := &hostsResult{hosts: c.hosts, containers: c.small, images: len(refs), setup: time.Since(start)}
	if len(t.checks) > 0 {
		r.single = t.checks[0]
	}
	logf("setup %d containers over %d images on %d engines: %s", c.small, len(refs), c.hosts, r.setup.Round(time.Millisecond))

	u := updater.NewHosts(hosts, registry.New(registry.Options{}), nil, updater.Options{Logger: quiet(), Cleanup: true})
	b.reg.Reset()
	d, err := cycle(ctx, u, c.small)
	if err != nil {
		return err
	}
	r.cold, r.coldReg = d, b.reg.Counts()
	walls, err := b.warmCycles(ctx, u, c.small, c.cycles, &r.warmReg, &r.warmAPI)
	if err != nil {
		return err
	}
	r.warm = median(walls)
	logf("check %d/%d over %d hosts: cold %s (%s), warm median %s of %v (%s; engines %s)", c.small, len(refs), c.hosts,
		r.cold.Round(time.Millisecond), r.coldReg, r.warm.Round(time.Millisecond), roundAll(walls), r.warmReg, r.warmAPI)
	t.hosts = r
	return nil
}

// warmCycles runs n check cycles of u (want lines, all up to date) and returns their walls; the
// first one's registry requests and engine calls go to reg and api.
func (b *bench) warmCycles(ctx context.Context, u *updater.Updater, want, n int, reg *regCounts, api *string) ([]time.Duration, error) {
	var walls []time.Duration
	for i := range n {
		b.reg.Reset()
		b.api.Reset()
		d, err := cycle(ctx, u, want)
		if err != nil {
			return nil, err
		}
		walls = append(walls, d)
		if i == 0 {
			*reg, *api = b.reg.Counts(), b.api.String()
		}
	}
	return walls, nil
}

// rows are the scenario's rows of the summary table.
func (r *hostsResult) rows() []string {
	name := fmt.Sprintf("check %d/%d unchanged over %d hosts", r.containers, r.images, r.hosts)
	single := "—"
	ratio := ""
	if r.single != nil {
		single = fmt.Sprintf("the same %d containers on one engine: %s", r.single.containers, ms(r.single.warm))
		ratio = fmt.Sprintf(" (%.2f×)", float64(r.warm)/float64(r.single.warm))
	}
	return []string{
		fmt.Sprintf("| %s: wall, warm (median) | %s%s | %s | — | |", name, ms(r.warm), ratio, single),
		fmt.Sprintf("| %s: wall, cold (first cycle of a daemon) | %s | | — | |", name, ms(r.cold)),
		fmt.Sprintf("| %s: registry, warm | %s | | %d HEAD, 0 GET | %s |", name, r.warmReg, r.images, yes(r.warmReg.Heads == r.images && r.warmReg.Gets == 0)),
		fmt.Sprintf("| %s: registry, cold | %s | | 1 token per registry | %s |", name, r.coldReg, yes(r.coldReg.Tokens <= 1 && r.coldReg.Heads == r.images && r.coldReg.Gets == 0)),
		fmt.Sprintf("| %s: engine API calls (all hosts) | %s | %d lists | — | |", name, r.warmAPI, r.hosts),
		fmt.Sprintf("| %s: setup (%d engines started, images pulled, containers created+started) | %s | | — | |", name, r.hosts, ms(r.setup)),
	}
}
