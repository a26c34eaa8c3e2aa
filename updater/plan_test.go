package updater

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/failure"
)

// observed builds an Observed from literal containers, as a cycle would after inspecting them.
func observed(cs ...*Container) *Observed {
	obs := &Observed{byName: map[string]*Container{}, byID: map[string]*Container{}}
	for _, c := range cs {
		if c.State == "" {
			c.State = "running"
		}
		if c.ID == "" {
			c.ID = c.Name + "-0123456789abcdef"
		}
		if c.deps == nil {
			c.deps = &depFacts{}
		}
		obs.All = append(obs.All, c)
		obs.byName[c.Name] = c
		obs.byID[c.ID] = c
	}
	return obs
}

// tgt is a watched container named name; mods change it.
func tgt(name string, mods ...func(*Container)) *Container {
	c := &Container{Name: name, Labels: map[string]string{}, Watched: true, Settings: Settings{Mode: ModeUpdate, Policy: PolicyDigest}}
	for _, m := range mods {
		m(c)
	}
	return c
}

func dependsOn(names ...string) func(*Container) {
	return func(c *Container) { c.Settings.DependsOn = names }
}

func linkedTo(links ...string) func(*Container) {
	return func(c *Container) {
		c.deps = depsOf(&container.InspectResponse{HostConfig: &container.HostConfig{Links: links}})
	}
}

func netOf(parent string) func(*Container) {
	return func(c *Container) { c.NetworkMode = "container:" + parent }
}

func pidOf(parent string) func(*Container) {
	return func(c *Container) {
		c.deps = depsOf(&container.InspectResponse{HostConfig: &container.HostConfig{PidMode: container.PidMode("container:" + parent)}})
	}
}

func labels(kv ...string) func(*Container) {
	return func(c *Container) {
		for i := 0; i+1 < len(kv); i += 2 {
			c.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withID(id string) func(*Container) { return func(c *Container) { c.ID = id } }

func stopped(c *Container)  { c.State = "exited" }
func optedOut(c *Container) { c.Watched = false }
func follows(c *Container)  { c.Watched, c.Settings.Follow = false, true }
func monitor(c *Container)  { c.Settings.Mode = ModeMonitor }
func self(c *Container)     { c.Self = true }
func otherWatcher(c *Container) {
	c.Labels[WatcherImageLabel] = WatcherImageTitle
}

func cands(obs *Observed, names ...string) []Candidate {
	var out []Candidate
	for _, n := range names {
		out = append(out, Candidate{Container: obs.byName[n], Cause: "new digest"})
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	const notManaged = "skip vpn: DependentNotManaged: client joins the network namespace of vpn and is not managed by this watcher: " +
		"updating vpn would cut it off; label client watcher.follow=true to let it be recreated with vpn\n"
	tests := []struct {
		name    string
		obs     func() *Observed
		updates []string
		opts    planOptions
		want    string
	}{
		{
			name:    "independent updates are separate groups",
			obs:     func() *Observed { return observed(tgt("a"), tgt("b"), tgt("c")) },
			updates: []string{"b", "a"},
			want:    "group 1:\n  update a (new digest)\ngroup 2:\n  update b (new digest)\n",
		},
		{
			name: "start-first is the update's order; its dependents are restarted as ever",
			obs: func() *Observed {
				return observed(tgt("db", func(c *Container) { c.Settings.UpdateOrder = OrderStartFirst }), tgt("app", dependsOn("db")))
			},
			updates: []string{"db"},
			want:    "group 1:\n  update db (new digest) start-first\n  restart app (depends on db) after db\n",
		},
		{
			name: "depends-on label orders and restarts dependents",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("db")), tgt("db"), tgt("other"))
			},
			updates: []string{"db"},
			want:    "group 1:\n  update db (new digest)\n  restart app (depends on db) after db\n",
		},
		{
			name: "both updated: dependency first",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("db")), tgt("db"))
			},
			updates: []string{"app", "db"},
			want:    "group 1:\n  update db (new digest)\n  update app (new digest) after db\n",
		},
		{
			name: "legacy links",
			obs: func() *Observed {
				return observed(tgt("web", linkedTo("/cache:/web/cache")), tgt("cache"))
			},
			updates: []string{"cache"},
			want:    "group 1:\n  update cache (new digest)\n  restart web (depends on cache) after cache\n",
		},
		{
			name: "container network mode is recreated, transitively",
			obs: func() *Observed {
				return observed(tgt("vpn", withID("vpnid0123456789")), tgt("client", netOf("vpnid0123456789")), tgt("user", dependsOn("client")))
			},
			updates: []string{"vpn"},
			want:    "group 1:\n  update vpn (new digest)\n  recreate client (joins the namespaces of vpn, which is replaced) after vpn\n  restart user (depends on client) after client\n",
		},
		{
			name: "compose depends_on within the project only",
			obs: func() *Observed {
				return observed(
					tgt("p1-web-1", labels(composeProject, "p1", composeService, "web", composeDependsOn, "db:service_started:false")),
					tgt("p1-db-1", labels(composeProject, "p1", composeService, "db")),
					tgt("p2-db-1", labels(composeProject, "p2", composeService, "db")),
				)
			},
			updates: []string{"p2-db-1", "p1-db-1"},
			want:    "group 1:\n  update p1-db-1 (new digest)\n  restart p1-web-1 (depends on p1-db-1) after p1-db-1\ngroup 2:\n  update p2-db-1 (new digest)\n",
		},
		{
			name: "a cycle is skipped, the rest proceed",
			obs: func() *Observed {
				return observed(tgt("x", dependsOn("y")), tgt("y", dependsOn("x")), tgt("z"))
			},
			updates: []string{"x", "z"},
			want:    "group 1:\n  update z (new digest)\nskip x: dependency cycle: x -> y -> x\n",
		},
		{
			name: "dependents in a cycle are left alone",
			obs: func() *Observed {
				return observed(tgt("db"), tgt("a", dependsOn("db", "b")), tgt("b", dependsOn("a")))
			},
			updates: []string{"db"},
			want:    "group 1:\n  update db (new digest)\nleave a: dependency cycle: a -> b -> a\n",
		},
		{
			name: "stopped dependents stay stopped",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("db"), stopped), tgt("db"))
			},
			updates: []string{"db"},
			want:    "group 1:\n  update db (new digest)\nleave app: stopped; a container its user stopped stays stopped\n",
		},
		{
			name: "unknown depends-on names are ignored",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("ghost")))
			},
			updates: []string{"app"},
			want:    "group 1:\n  update app (new digest)\n",
		},
		{
			name: "monitor mode and another watcher instance are held; the watcher itself goes last",
			obs: func() *Observed {
				return observed(tgt("mon", monitor), tgt("w2", otherWatcher), tgt("watcher", self, otherWatcher), tgt("app"))
			},
			updates: []string{"mon", "w2", "watcher", "app"},
			opts:    planOptions{CanHandOver: true},
			want: "group 1:\n  update app (new digest)\nlast:\n  handover watcher (new digest)\n" +
				"hold mon: monitor mode: new digest\nskip w2: another watcher instance (new digest); it updates itself\n",
		},
		{
			name: "the watcher itself is held where it cannot hand over, even as another instance",
			obs: func() *Observed {
				return observed(tgt("watcher", self, otherWatcher), tgt("selfmon", self, monitor))
			},
			updates: []string{"watcher", "selfmon"},
			want: "hold watcher: this is the watcher's own container; only the daemon (watcher run) updates itself\n" +
				"hold selfmon: monitor mode: new digest\n",
		},
		{
			name: "a dry run plans what a run would do",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("db")), tgt("db"), tgt("mon", monitor))
			},
			updates: []string{"db", "mon"},
			opts:    planOptions{DryRun: true},
			want:    "group 1:\n  update db (new digest)\n  restart app (depends on db) after db\nhold mon: monitor mode: new digest\n",
		},
		{
			name: "an opted-out depends-on dependent is not restarted",
			obs: func() *Observed {
				return observed(tgt("db"), tgt("app", dependsOn("db"), optedOut), tgt("web", linkedTo("/db:/web/db"), optedOut))
			},
			updates: []string{"db"},
			want: "group 1:\n  update db (new digest)\n" +
				"leave app: not managed by this watcher; label it watcher.follow=true to restart it after db\n" +
				"leave web: not managed by this watcher; label it watcher.follow=true to restart it after db\n",
		},
		{
			name: "an opted-out network-namespace dependent holds its parent",
			obs: func() *Observed {
				return observed(tgt("vpn"), tgt("client", netOf("vpn"), optedOut), tgt("other"))
			},
			updates: []string{"vpn", "other"},
			want:    "group 1:\n  update other (new digest)\n" + notManaged,
		},
		{
			name: "an opted-out pid-namespace dependent holds its parent too",
			obs: func() *Observed {
				return observed(tgt("app"), tgt("sidecar", pidOf("app"), optedOut))
			},
			updates: []string{"app"},
			want: "skip app: DependentNotManaged: sidecar joins the pid namespace of app and is not managed by this watcher: " +
				"updating app would cut it off; label sidecar watcher.follow=true to let it be recreated with app\n",
		},
		{
			name: "a stopped opted-out namespace dependent holds nothing",
			obs: func() *Observed {
				return observed(tgt("vpn"), tgt("client", netOf("vpn"), optedOut, stopped))
			},
			updates: []string{"vpn"},
			want:    "group 1:\n  update vpn (new digest)\nleave client: stopped; a container its user stopped stays stopped\n",
		},
		{
			name: "watcher.follow=true lets an opted-out dependent follow",
			obs: func() *Observed {
				return observed(tgt("vpn"), tgt("client", netOf("vpn"), follows), tgt("app", dependsOn("vpn"), follows))
			},
			updates: []string{"vpn"},
			want: "group 1:\n  update vpn (new digest)\n  restart app (depends on vpn) after vpn\n" +
				"  recreate client (joins the namespaces of vpn, which is replaced) after vpn\n",
		},
		{
			name: "an opted-out container deeper down holds the update that would reach it",
			obs: func() *Observed {
				return observed(tgt("db"), tgt("vpn", dependsOn("db")), tgt("client", netOf("vpn"), optedOut), tgt("cache"))
			},
			updates: []string{"db", "vpn", "cache"},
			want: "group 1:\n  update cache (new digest)\n" +
				"skip db: DependentNotManaged: client joins the network namespace of vpn and is not managed by this watcher: " +
				"updating db (which stops vpn) would cut it off; label client watcher.follow=true to let it be recreated with vpn\n" + notManaged,
		},
		{
			name: "the watcher's own container in a parent's network namespace holds that parent",
			obs: func() *Observed {
				return observed(tgt("proxy"), tgt("watcher", self, netOf("proxy")))
			},
			updates: []string{"proxy"},
			want:    "skip proxy: DependentNotManaged: the watcher's own container watcher joins the network namespace of proxy: updating proxy would cut it off\n",
		},
		{
			name: "the watcher's own container is never restarted as a dependent",
			obs: func() *Observed {
				return observed(tgt("proxy"), tgt("watcher", self, dependsOn("proxy")))
			},
			updates: []string{"proxy"},
			want:    "group 1:\n  update proxy (new digest)\nleave watcher: the watcher's own container is never restarted as a dependent\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := tc.obs()
			got := buildPlan(obs, cands(obs, tc.updates...), tc.opts)
			if got.String() != tc.want {
				t.Errorf("buildPlan() =\n%s\nwant\n%s", got, tc.want)
			}
			if got.DryRun != tc.opts.DryRun {
				t.Errorf("buildPlan().DryRun = %v, want %v", got.DryRun, tc.opts.DryRun)
			}
		})
	}
}

// The plan is data: what `watcher check --json` carries, with kind-neutral targets, the follow
// rule and the plan-stage reason of a hold.
func TestPlanJSON(t *testing.T) {
	obs := observed(tgt("db"), tgt("app", dependsOn("db")), tgt("vpn"), tgt("client", netOf("vpn"), optedOut))
	b, err := json.Marshal(buildPlan(obs, cands(obs, "db", "vpn"), planOptions{DryRun: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"dry_run":true`,
		`{"op":"update","target":{"kind":"container","name":"db","id":"db-0123456789abcdef"},"cause":"new digest"}`,
		`{"op":"restart","target":{"kind":"container","name":"app","id":"app-0123456789abcdef"},"cause":"depends on db","after":["db"],"follows":["db"]}`,
		`"outcome":"skipped","reason":"` + string(failure.DependentNotManaged) + `"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("plan JSON %s\nlacks %s", b, want)
		}
	}
}

func TestTargetString(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{Kind: KindContainer, Name: "web"}, "web"},
		{Target{Kind: KindContainer, Host: "edge-1", Name: "web"}, "edge-1/web"},
		{Target{Kind: KindService, Host: "edge-1", Name: "web"}, "service edge-1/web"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestMergeRequests(t *testing.T) {
	a := Request{Containers: []string{"x"}, Trigger: TriggerHTTP}
	b := Request{Containers: []string{"y", "x"}, Images: []string{"nginx"}}
	got := mergeRequests(a, b)
	if len(got.Containers) != 2 || len(got.Images) != 1 {
		t.Errorf("mergeRequests(filtered, filtered) = %+v, want containers x,y and image nginx", got)
	}
	if got := mergeRequests(a, Request{}); len(got.Containers) != 0 || len(got.Images) != 0 {
		t.Errorf("mergeRequests(filtered, all) = %+v, want all", got)
	}
}

func TestMatchesImage(t *testing.T) {
	tests := []struct {
		image   string
		filters []string
		want    bool
	}{
		{"nginx", []string{"docker.io/library/nginx"}, true},
		{"nginx:1.25", []string{"nginx"}, true},
		{"nginx:1.25", []string{"nginx:1.26"}, false},
		{"127.0.0.1:5000/app:v1", []string{"127.0.0.1:5000/app"}, true},
		{"127.0.0.1:5000/app:v1", []string{"127.0.0.1:5000/app:v1"}, true},
		{"127.0.0.1:5000/app:v1", []string{"127.0.0.1:5000/other"}, false},
	}
	for _, tc := range tests {
		if got := matchesImage(tc.image, tc.filters); got != tc.want {
			t.Errorf("matchesImage(%q, %q) = %v, want %v", tc.image, tc.filters, got, tc.want)
		}
	}
}

// svc is a watched Swarm service named name (which may be a container's name too).
func svc(name string, mods ...func(*Container)) *Container {
	c := tgt(name, mods...)
	c.Kind, c.ID, c.service = KindService, name+"-svc", &serviceInfo{Spec: "reg/" + name + ":1"}
	return c
}

// TestPlanServices: a service is a group of its own, after the containers' groups, whatever a
// container of the same name depends on; holds apply to it as to a container; the watcher's own
// service goes last in the daemon and is held elsewhere.
func TestPlanServices(t *testing.T) {
	obs := observed(tgt("db"), tgt("app", dependsOn("db")))
	web, mon, own := svc("web"), svc("cache", monitor), svc("watcher", self)
	all := append(cands(obs, "db"), Candidate{Container: svc("app"), Cause: "new digest"}, Candidate{Container: web, Cause: "new digest"},
		Candidate{Container: mon, Cause: "new digest"}, Candidate{Container: own, Cause: "new digest"})
	want := "group 1:\n  update db (new digest)\n  restart app (depends on db) after db\ngroup 2:\n  update service app (new digest)\n" +
		"group 3:\n  update service web (new digest)\nlast:\n  handover service watcher (new digest)\nhold service cache: monitor mode: new digest\n"
	if got := buildPlan(obs, all, planOptions{CanHandOverService: true}).String(); got != want {
		t.Errorf("daemon's plan =\n%s\nwant\n%s", got, want)
	}
	got := buildPlan(obs, all, planOptions{}).String()
	if !strings.Contains(got, "hold service watcher: this is the watcher's own service; only the daemon (watcher run) updates it\n") {
		t.Errorf("once's plan =\n%s\nwant the watcher's own service held", got)
	}
	if needsOrder([]Candidate{{Container: web}}, planOptions{}) {
		t.Error("a service's update asks for the containers' dependency graph")
	}
	back := buildPlan(obs, []Candidate{{Container: web, Cause: "rollback"}}, planOptions{Rollback: true})
	if len(back.Groups) != 1 || !back.Groups[0][0].Rollback {
		t.Errorf("a service's manual rollback: %+v, want one step with Rollback set", back.Groups)
	}
}
