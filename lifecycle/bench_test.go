package lifecycle

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/store"
)

// eventClock records the engine's die and start events of this test's containers.
type eventClock struct {
	mu    sync.Mutex
	die   map[string]time.Time
	start map[string]time.Time
}

func watchEvents(ctx context.Context, b testing.TB, d *client.Client, owner string) *eventClock {
	c := &eventClock{die: map[string]time.Time{}, start: map[string]time.Time{}}
	res := d.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("label", testenv.OwnerLabel+"="+owner).Add("event", "die").Add("event", "start")})
	go func() {
		for {
			select {
			case m := <-res.Messages:
				c.mu.Lock()
				at := time.Unix(0, m.TimeNano)
				switch m.Action {
				case events.ActionDie:
					c.die[m.Actor.ID] = at
				case events.ActionStart:
					c.start[m.Actor.ID] = at
				}
				c.mu.Unlock()
			case <-res.Err:
				return
			}
		}
	}()
	return c
}

// downtime waits for oldID's die and newID's start events and returns the gap.
func (c *eventClock) downtime(b testing.TB, oldID, newID string) time.Duration {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		die, ok1 := c.die[oldID]
		start, ok2 := c.start[newID]
		c.mu.Unlock()
		if ok1 && ok2 {
			return start.Sub(die)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("no die event for %s or start event for %s", shortID(oldID), shortID(newID))
	return 0
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkDowntime measures a service's downtime per update — the old container's "die" event
// to the new container's "start" event, from the engine's own event stream — for a watcher
// update and, in the same run on the same engine, for the floor: a bare stop + rm + run
// (ContainerStop, ContainerRemove, ContainerCreate, ContainerStart) of the same container. The
// service is on an --internal network with a static IP. Reported: medians in ms and their ratio.
//
//	go test -run '^$' -bench BenchmarkDowntime -benchtime 20x ./lifecycle/
func BenchmarkDowntime(b *testing.B) {
	e := testenv.New(b)
	s, err := store.Open(filepath.Join(b.TempDir(), "watcher.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := New(e.Docker, s, Options{StopTimeout: 10 * time.Second, Verify: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := watchEvents(ctx, b, e.Docker, e.Owner)

	ref, d1 := e.Registry.PushImage(b, "app", "latest", testenv.ImageSpec{Version: "v1"})
	_, d2 := e.Registry.PushImage(b, "app", "v2", testenv.ImageSpec{Version: "v2"})
	pulls := []string{e.Registry.Host + "/app@" + d2.String(), e.Registry.Host + "/app@" + d1.String()}
	e.Pull(ref)
	e.Pull(pulls[0])
	f := &fixture{Env: e}
	var netName string
	for netName == "" {
		cidr, _ := subnet()
		netName, _ = f.tryNetworkB(b, cidr)
	}
	_, ip := subnetIP(b, e, netName)
	cfg := func() (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
		return &container.Config{Image: ref, Labels: e.Labels(nil)},
			&container.HostConfig{NetworkMode: container.NetworkMode(netName)},
			&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: ip}}}}
	}
	svc := e.Name("svc")
	c1, h1, n1 := cfg()
	id := e.Run(svc, c1, h1, n1)
	bare := e.Name("bare")
	c2, h2, n2 := cfg()
	n2.EndpointsConfig[netName].IPAMConfig.IPv4Address = ip.Next()
	bareID := e.Run(bare, c2, h2, n2)

	var watcher, floor []time.Duration
	timeout := 10
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := m.Replace(ctx, Spec{ContainerID: id, Image: ref, PullRef: pulls[i%2], Rollback: true})
		if res.Outcome != OutcomeUpdated {
			b.Fatalf("update %d: %s, %v", i, res.Outcome, res.Err)
		}
		watcher = append(watcher, clock.downtime(b, id, res.NewID))
		id = res.NewID

		if _, err := e.Docker.ContainerStop(ctx, bareID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Docker.ContainerRemove(ctx, bareID, client.ContainerRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		c, h, n := cfg()
		n.EndpointsConfig[netName].IPAMConfig.IPv4Address = ip.Next()
		cr, err := e.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{Name: bare, Config: c, HostConfig: h, NetworkingConfig: n})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Docker.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
			b.Fatal(err)
		}
		floor = append(floor, clock.downtime(b, bareID, cr.ID))
		bareID = cr.ID
	}
	b.StopTimer()
	mw, mf := median(watcher), median(floor)
	b.ReportMetric(float64(mw.Microseconds())/1000, "ms-watcher-median")
	b.ReportMetric(float64(mf.Microseconds())/1000, "ms-bare-median")
	b.ReportMetric(float64(mw)/float64(mf), "ratio")
	b.ReportMetric(0, "ns/op")
	b.Logf("n=%d watcher median %v (min %v max %v); bare stop+rm+run median %v (min %v max %v)",
		len(watcher), mw, slices.Min(watcher), slices.Max(watcher), mf, slices.Min(floor), slices.Max(floor))
}
