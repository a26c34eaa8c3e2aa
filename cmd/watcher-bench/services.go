package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	mobyswarm "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/lifecycle"
	"github.com/watcher-dev/watcher/registry"
	"github.com/watcher-dev/watcher/store"
	"github.com/watcher-dev/watcher/swarm"
	"github.com/watcher-dev/watcher/updater"
)

// servicesResult is the Swarm scenario: n services (one task each) on a single-node swarm of a
// fresh private engine, checked, then updated by the watcher and, for the floor, by bare
// ServiceUpdates of all of them at once.
type servicesResult struct {
	services, images int
	monitor          time.Duration // the services' UpdateConfig.Monitor
	setup            time.Duration
	cold, warm       time.Duration
	warmReg          regCounts
	warmAPI          string
	updates          []serviceUpdate
	floor            time.Duration // every service's ServiceUpdate sent at once, until all completed
}

// serviceUpdate is one run that updated every service, at update.parallel.
type serviceUpdate struct {
	parallel int
	wall     time.Duration
	each     []time.Duration // per service: from its ServiceUpdate to Swarm's completed
	api      string
}

// servicesScenario measures the check and the update of c.services Swarm services over
// c.serviceImages images.
func (b *bench) servicesScenario(ctx context.Context, c config, t *table) error {
	start := time.Now()
	x, err := testenv.StartEngine(testenv.EngineOptions{Swarm: true})
	if err != nil {
		return err
	}
	b.extra = append(b.extra, x)
	cli, err := engine.ConnectTo(engine.Target{Host: x.Host}, client.WithHTTPRequestHook(b.api.hook))
	if err != nil {
		return err
	}
	r := &servicesResult{services: c.services, images: c.serviceImages, monitor: time.Second}
	scope := "wbs-" + b.owner
	ids, err := b.createServices(ctx, x.Docker, c, scope, r.monitor)
	if err != nil {
		return err
	}
	r.setup = time.Since(start)
	logf("setup a swarm and %d services over %d images: %s", c.services, c.serviceImages, r.setup.Round(time.Millisecond))

	sel := updater.Selection{LabelEnable: true, Scope: scope}
	u := updater.NewHosts([]updater.Host{{Engine: cli}}, registry.New(registry.Options{}), nil, updater.Options{Selection: sel, Services: true, Logger: quiet()})
	b.reg.Reset()
	if r.cold, err = cycle(ctx, u, c.services); err != nil {
		return err
	}
	walls, err := b.warmCycles(ctx, u, c.services, c.cycles, &r.warmReg, &r.warmAPI)
	if err != nil {
		return err
	}
	r.warm = median(walls)
	logf("check %d services over %d images: cold %s, warm median %s of %v (%s; engine %s)", c.services, c.serviceImages,
		r.cold.Round(time.Millisecond), r.warm.Round(time.Millisecond), roundAll(walls), r.warmReg, r.warmAPI)

	for k, p := range c.batchParallel {
		up, err := b.updateServices(ctx, cli, c, sel, p, fmt.Sprintf("s%d", k+2))
		if err != nil {
			return err
		}
		r.updates = append(r.updates, up)
	}
	if r.floor, err = b.serviceFloor(ctx, x.Docker, c, ids, "sf"); err != nil {
		return err
	}
	logf("floor: %d bare ServiceUpdates at once, all completed after %s", c.services, r.floor.Round(time.Millisecond))
	t.services = r
	return nil
}

// createServices makes the scenario's services, pinned by digest as `docker service create` pins
// them, and waits until every task runs.
func (b *bench) createServices(ctx context.Context, cli *client.Client, c config, scope string, monitor time.Duration) ([]string, error) {
	refs, err := b.images(ctx, "svc", 0, c.serviceImages, "s1")
	if err != nil {
		return nil, err
	}
	ids := make([]string, c.services)
	one := uint64(1)
	err = parallel(c.services, 4, func(i int) error {
		spec := mobyswarm.ServiceSpec{
			Annotations: mobyswarm.Annotations{Name: fmt.Sprintf("wbs-%s-%03d", b.owner, i),
				Labels: map[string]string{testenv.OwnerLabel: b.owner, "watcher.enable": "true", "watcher.scope": scope}},
			TaskTemplate: mobyswarm.TaskSpec{ContainerSpec: &mobyswarm.ContainerSpec{Image: refs[i*len(refs)/c.services],
				Labels: map[string]string{testenv.OwnerLabel: b.owner}}},
			Mode:         mobyswarm.ServiceMode{Replicated: &mobyswarm.ReplicatedService{Replicas: &one}},
			UpdateConfig: &mobyswarm.UpdateConfig{Parallelism: 1, Monitor: monitor, FailureAction: mobyswarm.UpdateFailureActionPause},
		}
		res, err := cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec, QueryRegistry: true})
		ids[i] = res.ID
		return err
	})
	if err != nil {
		return nil, err
	}
	return ids, waitServices(ctx, cli, ids)
}

// waitServices waits until every service's update is done (or it was never updated) and each
// runs its one task.
func waitServices(ctx context.Context, cli *client.Client, ids []string) error {
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		res, err := cli.ServiceList(ctx, client.ServiceListOptions{Status: true, Filters: make(client.Filters).Add("id", ids...)})
		if err != nil {
			return err
		}
		done := 0
		for _, s := range res.Items {
			settled := s.UpdateStatus == nil || s.UpdateStatus.State == mobyswarm.UpdateStateCompleted
			if settled && s.ServiceStatus != nil && s.ServiceStatus.RunningTasks == 1 {
				done++
			}
		}
		if done == len(ids) {
			return nil
		}
	}
	return fmt.Errorf("the services did not settle within 5 minutes")
}

// updateServices pushes a new digest of every image and runs the watcher over the services with
// update.parallel p.
func (b *bench) updateServices(ctx context.Context, cli *engine.Client, c config, sel updater.Selection, p int, version string) (serviceUpdate, error) {
	up := serviceUpdate{parallel: p}
	for i := range c.serviceImages {
		if _, err := b.pushImage(fmt.Sprintf("svc%03d", i), "v1", fmt.Sprintf("%s-%d", version, i)); err != nil {
			return up, err
		}
	}
	dir, err := os.MkdirTemp("", "watcher-bench-swarm")
	if err != nil {
		return up, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "watcher.db"))
	if err != nil {
		return up, err
	}
	defer st.Close()
	h := updater.Host{Engine: cli, Life: lifecycle.New(cli, st, lifecycle.Options{Logger: quiet()}),
		Services: swarm.New(cli, st, swarm.Options{Logger: quiet()})}
	u := updater.NewHosts([]updater.Host{h}, registry.New(registry.Options{}), st, updater.Options{Selection: sel, Services: true, Parallel: p, Logger: quiet()})
	b.api.Reset()
	since := time.Now()
	rep := u.Execute(ctx, "", updater.Request{Trigger: "bench"})
	up.wall, up.api = time.Since(since), b.api.String()
	for _, l := range rep.Containers {
		if l.Outcome != updater.OutcomeUpdated {
			return up, fmt.Errorf("service update: %s %s %+v", l.Name, l.Outcome, l.Failure)
		}
		up.each = append(up.each, l.Duration)
	}
	logf("update %d services, parallel %d: %s; each median %s max %s; engine %s", len(up.each), p, up.wall.Round(time.Millisecond),
		median(up.each).Round(time.Millisecond), maxOf(up.each).Round(time.Millisecond), up.api)
	return up, nil
}

// serviceFloor is the bare floor: a new digest of every image, every service's image set to it
// by one ServiceUpdate each, all at once, and the time until Swarm reports every one completed.
func (b *bench) serviceFloor(ctx context.Context, cli *client.Client, c config, ids []string, version string) (time.Duration, error) {
	pinned := map[string]string{}
	for i := range c.serviceImages {
		repo := fmt.Sprintf("svc%03d", i)
		ref, err := b.pushImage(repo, "v1", fmt.Sprintf("%s-%d", version, i))
		if err != nil {
			return 0, err
		}
		d, err := cli.DistributionInspect(ctx, ref, client.DistributionInspectOptions{})
		if err != nil {
			return 0, err
		}
		pinned[b.reg.Host+"/"+repo] = ref + "@" + d.Descriptor.Digest.String()
	}
	start := time.Now()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			res, err := cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
			if err == nil {
				spec := res.Service.Spec
				cs := *spec.TaskTemplate.ContainerSpec
				repo, _, _ := strings.Cut(cs.Image, ":v1")
				cs.Image = pinned[repo]
				spec.TaskTemplate.ContainerSpec = &cs
				_, err = cli.ServiceUpdate(ctx, id, client.ServiceUpdateOptions{Version: res.Service.Version, Spec: spec})
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, errs[0]
	}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := cli.ServiceList(ctx, client.ServiceListOptions{Filters: make(client.Filters).Add("id", ids...)})
		if err != nil {
			return 0, err
		}
		if !slices.ContainsFunc(res.Items, func(s mobyswarm.Service) bool {
			return s.UpdateStatus == nil || s.UpdateStatus.State != mobyswarm.UpdateStateCompleted
		}) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("the floor's updates did not complete within 5 minutes")
}

// rows are the scenario's rows of the summary table.
func (r *servicesResult) rows() []string {
	name := fmt.Sprintf("%d services/%d images (1 task each, monitor %s)", r.services, r.images, r.monitor)
	out := []string{
		fmt.Sprintf("| check %s unchanged: wall, warm (median) | %s | | — | |", name, ms(r.warm)),
		fmt.Sprintf("| check %s unchanged: wall, cold | %s | | — | |", name, ms(r.cold)),
		fmt.Sprintf("| check %s unchanged: registry, warm | %s | | %d HEAD, 0 GET | %s |", name, r.warmReg, r.images, yes(r.warmReg.Heads == r.images && r.warmReg.Gets == 0)),
		fmt.Sprintf("| check %s unchanged: engine API calls | %s | | — | |", name, r.warmAPI),
	}
	for _, u := range r.updates {
		pn := fmt.Sprintf("update %s, parallel %d", name, u.parallel)
		if u.parallel == 4 {
			pn += " (default)"
		}
		out = append(out,
			fmt.Sprintf("| %s: total wall | %s | all %d ServiceUpdates at once, until Swarm completed them: %s | — | |", pn, ms(u.wall), r.services, ms(r.floor)),
			fmt.Sprintf("| %s: per service, median / max | %s / %s | | — | |", pn, ms(median(u.each)), ms(maxOf(u.each))),
			fmt.Sprintf("| %s: engine API calls | %s | | — | |", pn, u.api))
	}
	return append(out, fmt.Sprintf("| %s: setup (a swarm, images pushed, services created and running) | %s | | — | |", name, ms(r.setup)))
}
