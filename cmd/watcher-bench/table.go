package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// table collects every scenario's numbers and prints them as the Markdown docs/benchmarks.md keeps.
type table struct {
	machine  string
	checks   []*checkResult
	hosts    *hostsResult
	services *servicesResult
	daemons  []*daemonResult
	batches  []*batchResult
	floors   []*floorResult
	probes   []*probeResult
}

func machineInfo(b *bench) string {
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := procStatusFile("/proc/meminfo", "MemTotal")
	engine := "?"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := b.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		engine = fmt.Sprintf("%s (API %s)", v.Version, v.APIVersion)
	}
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB memory, Docker engine %s, %s %s/%s, load average at start %s",
		runtime.NumCPU(), model, float64(mem)/(1<<20), engine, runtime.Version(), runtime.GOOS, runtime.GOARCH, loadavg())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func procStatusFile(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && k == key {
			var n int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &n)
			return n
		}
	}
	return -1
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (t *table) print(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s; load average at the end %s.\n\n", t.machine, loadavg())
	fmt.Fprintln(w, "| scenario | watcher | floor, same run | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, c := range t.checks {
		target, targetText := 150*time.Millisecond, "150 ms"
		if c.containers > 200 {
			target, targetText = 600*time.Millisecond, "600 ms"
		}
		name := fmt.Sprintf("check %d/%d unchanged", c.containers, c.images)
		fmt.Fprintf(w, "| %s: wall, warm (median) | %s | %d HEADs from go-containerregistry: %s; one container list: %s; one image list: %s | < %s | %s |\n",
			name, ms(c.warm), c.images, ms(c.floorWarm), ms(c.floorList), ms(c.imageList), targetText, yes(c.warm < target))
		fmt.Fprintf(w, "| %s: wall, cold (first cycle of a daemon) | %s | %d HEADs, new puller: %s | — | |\n", name, ms(c.cold), c.images, ms(c.floorCold))
		fmt.Fprintf(w, "| %s: registry, warm | %s | %s | %d HEAD, 0 GET | %s |\n", name, c.warmReg, c.floorReg, c.images, yes(c.warmReg.Heads == c.images && c.warmReg.Gets == 0))
		fmt.Fprintf(w, "| %s: registry, cold | %s | | 1 token per registry | %s |\n", name, c.coldReg, yes(c.coldReg.Tokens <= 1 && c.coldReg.Heads == c.images && c.coldReg.Gets == 0))
		fmt.Fprintf(w, "| %s: engine API calls | %s | 1 list | — | |\n", name, c.warmAPI)
		fmt.Fprintf(w, "| %s: allocations per cycle (watcher process) | %d allocs, %d KiB | | — | |\n", name, c.allocs, c.bytes>>10)
		fmt.Fprintf(w, "| %s: setup (images pushed+pulled, containers created+started) | %s | | < 5 min | %s |\n", name, ms(c.setup), yes(c.setup < 5*time.Minute))
	}
	if t.hosts != nil {
		for _, row := range t.hosts.rows() {
			fmt.Fprintln(w, row)
		}
	}
	if t.services != nil {
		for _, row := range t.services.rows() {
			fmt.Fprintln(w, row)
		}
	}
	for _, d := range t.daemons {
		target, targetText := 20*time.Millisecond, "≤ 20 ms"
		if d.watched > 200 {
			target, targetText = 100*time.Millisecond, "≤ 100 ms"
		}
		name := fmt.Sprintf("check %d/%d unchanged in the daemon", d.watched, d.images)
		floor := "—"
		if c := d.check; c != nil {
			floor = fmt.Sprintf("%d HEADs from go-containerregistry: %s (what a run without the inventory also pays: one container list, %s)", c.images, ms(c.floorWarm), ms(c.floorList))
		}
		fmt.Fprintf(w, "| %s: wall, warm (median of %d runs' own duration) | %s (POST /v1/update?wait=true round trip %s) | %s | %s | %s |\n",
			name, len(d.walls), ms(d.warm), ms(d.warmHTTP), floor, targetText, yes(d.warm <= target))
		fmt.Fprintf(w, "| %s: wall, first run | %s | | — | |\n", name, ms(d.cold))
		fmt.Fprintf(w, "| %s: engine API calls, warm | %s | without the inventory: 1 list, %d image inspects | — | |\n", name, d.warmAPI, d.images)
		fmt.Fprintf(w, "| daemon RSS idle, %d watched containers (VmRSS after start; after the runs) | %.1f MiB; %.1f MiB | | ≤ 20 MiB | %s |\n",
			d.watched, float64(d.idle)/1024, float64(d.idleAfter)/1024, yes(max(d.idle, d.idleAfter) <= 20*1024))
		fmt.Fprintf(w, "| daemon peak, %d watched containers (VmHWM) | %.1f MiB | | — | |\n", d.watched, float64(d.peak)/1024)
	}
	floorAt := map[int][]time.Duration{} // bare replacement downtimes by concurrency
	for _, f := range t.floors {
		floorAt[f.parallel] = append(floorAt[f.parallel], f.down...)
	}
	for _, r := range t.batches {
		name := fmt.Sprintf("update %d/%d, verify %s, parallel %d", r.containers, r.images, r.verify, r.parallel)
		if r.parallel == 4 {
			name += " (default)"
		}
		name += [...]string{", the daemon's first update run", ", a later run"}[min(r.round, 1)]
		fmt.Fprintf(w, "| %s: total wall | %s (%d updated) | | < 30 s | %s |\n", name, ms(r.wall), r.updated, yes(r.wall < 30*time.Second))
		dm, fl := median(r.down), median(floorAt[r.parallel])
		fmt.Fprintf(w, "| %s: downtime die→start, median / max | %s / %s | bare stop+rm+run, %d at a time: %s / %s; one at a time: %s / %s | median < 500 ms and ≤ 1.2× floor | %s (%.2f× floor) |\n",
			name, ms(dm), ms(maxOf(r.down)), r.parallel, ms(fl), ms(maxOf(floorAt[r.parallel])), ms(median(floorAt[1])), ms(maxOf(floorAt[1])),
			yes(dm < 500*time.Millisecond && float64(dm) <= 1.2*float64(fl)), float64(dm)/float64(fl))
		perUpdate := float64(r.apiTotal) / float64(max(r.updated, 1))
		fmt.Fprintf(w, "| %s: engine API calls per update (the run's and the next check's / updates) | %.1f | bare stop+rm+create+start: 4 (5 with an inspect) | ≤ 12 | %s |\n",
			name, perUpdate, yes(perUpdate <= 12))
		fmt.Fprintf(w, "| %s: engine API calls | %s; the next check: %s | | — | |\n", name, r.api, r.after)
	}
	for _, p := range t.probes {
		name := fmt.Sprintf("%s update under a client connecting to its network alias every %s", p.order, probeEvery)
		want, ok := "some (the probe sees downtime)", p.failed > 0
		if p.order == "start-first" {
			want, ok = "0", p.failed == 0
		}
		detail := ""
		if p.failureDetail != "" {
			detail = "; first: " + p.failureDetail
		}
		fmt.Fprintf(w, "| %s: failed requests | %d of %d%s | | %s | %s |\n", name, p.failed, p.requests, detail, want, yes(ok))
		fmt.Fprintf(w, "| %s: the slowest answer (%s allowed); the update's wall; the new version's first answer after the run's start | %s; %s; %s | | — | |\n",
			name, "3 s", ms(p.slowest), ms(p.wall), ms(p.firstV2))
	}
}
