package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/watcher-dev/watcher/internal/engine"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// apiCounter counts Engine API requests by method and path shape (IDs and names replaced).
type apiCounter struct {
	mu    sync.Mutex
	n     map[string]int
	trace []traced // every request while tracing is on
	on    bool
}

// traced is one request as sent: when, method, path (API version stripped).
type traced struct {
	at     time.Time
	method string
	path   string
}

var apiVersion = regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)

func (a *apiCounter) hook(req *http.Request) error {
	p := apiVersion.ReplaceAllString(req.URL.Path, "")
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(seg) >= 3:
		seg = []string{seg[0], "{id}", seg[len(seg)-1]}
	case len(seg) == 2 && (req.Method == http.MethodDelete || seg[0] == "services" || seg[0] == "nodes" || seg[0] == "tasks"):
		seg[1] = "{id}"
	}
	key := req.Method + " /" + strings.Join(seg, "/")
	a.mu.Lock()
	a.n[key]++
	if a.on {
		a.trace = append(a.trace, traced{time.Now(), req.Method, p + "?" + req.URL.RawQuery})
	}
	a.mu.Unlock()
	return nil
}

func (a *apiCounter) Reset() {
	a.mu.Lock()
	a.n = map[string]int{}
	a.trace = nil
	a.mu.Unlock()
}

// Trace turns request tracing on or off.
func (a *apiCounter) Trace(on bool) {
	a.mu.Lock()
	a.on = on
	a.mu.Unlock()
}

// timeline prints the requests whose path mentions any of ids, relative to t0.
func (a *apiCounter) timeline(t0 time.Time, ids ...string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var sb strings.Builder
	for _, r := range a.trace {
		for _, id := range ids {
			if id != "" && strings.Contains(r.path, id) {
				p := r.path
				for _, id := range ids {
					if id != "" {
						p = strings.ReplaceAll(p, id, id[:min(12, len(id))])
					}
				}
				fmt.Fprintf(&sb, "    %+8.1f ms  %s %s\n", float64(r.at.Sub(t0).Microseconds())/1000, r.method, p)
				break
			}
		}
	}
	return sb.String()
}

// total is the number of requests counted.
func (a *apiCounter) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, v := range a.n {
		n += v
	}
	return n
}

// String lists the counts, most frequent first: "1 GET /containers/json, 40 GET /images/{id}/json".
func (a *apiCounter) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := make([]string, 0, len(a.n))
	total := 0
	for k, v := range a.n {
		keys = append(keys, k)
		total += v
	}
	sort.Slice(keys, func(i, j int) bool {
		if a.n[keys[i]] != a.n[keys[j]] {
			return a.n[keys[i]] > a.n[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", a.n[k], k)
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

// bench is one run's shared state.
type bench struct {
	cli   *client.Client
	api   *apiCounter
	reg   *regClient
	owner string // testenv.OwnerLabel value on everything made

	checkRefs []string               // the check scenario's images, in container order
	extra     []*testenv.ExtraEngine // the hosts scenario's engines
	binary    string                 // ./cmd/watcher built for the daemon scenarios
	cleanups  []func()
}

func newBench() (*bench, error) {
	a := &apiCounter{n: map[string]int{}}
	cli, err := engine.Connect(client.WithHTTPRequestHook(a.hook))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, fmt.Errorf("docker engine at DOCKER_HOST: %v (start the private one: scripts/test-engine.sh start)", err)
	}
	reg, err := startRegistryChild()
	if err != nil {
		return nil, err
	}
	return &bench{cli: cli.Client, api: a, reg: reg, owner: testenv.NewOwner()}, nil
}

func (b *bench) Close() {
	for _, f := range b.cleanups {
		f()
	}
	for _, x := range b.extra {
		x.Close() // with everything on it
	}
	testenv.CleanupOwner(b.cli, b.owner, b.reg.Host)
	b.reg.Close()
	_ = b.cli.Close()
}

// pushImage builds a test image of the given version and pushes it as repo:tag; returns the ref.
func (b *bench) pushImage(repo, tag, version string) (string, error) {
	img, err := testenv.BuildImage(testenv.ImageSpec{Version: version})
	if err != nil {
		return "", err
	}
	ref := b.reg.Host + "/" + repo + ":" + tag
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	return ref, remote.Write(t, img)
}

func (b *bench) pull(ctx context.Context, ref string) error { return pullOn(ctx, b.cli, ref) }

func pullOn(ctx context.Context, cli *client.Client, ref string) error {
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// parallel runs f(0..n-1), k at a time, and returns the first error.
func parallel(n, k int, f func(i int) error) error {
	sem := make(chan struct{}, k)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// images pushes repos prefix000..prefix(n-1), tag v1, each a distinct image, and pulls them.
func (b *bench) images(ctx context.Context, prefix string, from, n int, version string) ([]string, error) {
	refs := make([]string, n)
	err := parallel(n, 4, func(i int) error {
		ref, err := b.pushImage(fmt.Sprintf("%s%03d", prefix, from+i), "v1", fmt.Sprintf("%s-%d", version, from+i))
		if err != nil {
			return err
		}
		refs[i] = ref
		return b.pull(ctx, ref)
	})
	return refs, err
}

// runContainer creates and starts a watched container of ref in scope, with no network.
func (b *bench) runContainer(ctx context.Context, name, ref, scope string) (string, error) {
	return b.runOn(ctx, b.cli, name, ref, scope)
}

// runOn is runContainer on the engine of cli.
func (b *bench) runOn(ctx context.Context, cli *client.Client, name, ref, scope string) (string, error) {
	labels := map[string]string{testenv.OwnerLabel: b.owner}
	if scope != "" {
		labels["watcher.enable"] = "true"
		labels["watcher.scope"] = scope
	}
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config:     &container.Config{Image: ref, Labels: labels},
		HostConfig: &container.HostConfig{NetworkMode: "none"}})
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start %s: %w", name, err)
	}
	return res.ID, nil
}

// eventLog records container die and start events of this run's containers, by container name.
type eventLog struct {
	mu     sync.Mutex
	die    map[string][]int64 // name -> die times (ns)
	start  map[string][]int64
	cancel context.CancelFunc
}

func (b *bench) watchEvents() *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{die: map[string][]int64{}, start: map[string][]int64{}, cancel: cancel}
	f := make(client.Filters).Add("type", "container").Add("label", testenv.OwnerLabel+"="+b.owner)
	res := b.cli.Events(ctx, client.EventsListOptions{Filters: f})
	go func() {
		for m := range res.Messages {
			n := m.Actor.Attributes["name"]
			l.mu.Lock()
			switch m.Action {
			case events.ActionDie:
				l.die[n] = append(l.die[n], m.TimeNano)
			case events.ActionStart:
				l.start[n] = append(l.start[n], m.TimeNano)
			}
			l.mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond) // the subscription is in place before anything happens
	return l
}

// dieTime is name's first die event after since.
func (l *eventLog) dieTime(name string, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.die[name] {
		if t >= since.UnixNano() {
			return time.Unix(0, t)
		}
	}
	return time.Time{}
}

// downtime is, for name, the time from its first die after since to the first start after that.
func (l *eventLog) downtime(name string, since time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var die int64
	for _, t := range l.die[name] {
		if t >= since.UnixNano() {
			die = t
			break
		}
	}
	if die == 0 {
		return 0, false
	}
	for _, t := range l.start[name] {
		if t >= die {
			return time.Duration(t - die), true
		}
	}
	return 0, false
}

func (l *eventLog) Close() { l.cancel() }
