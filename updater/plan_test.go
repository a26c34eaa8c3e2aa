package updater

import (
	"testing"

	"github.com/moby/moby/api/types/container"
)

// observed builds an Observed from literal targets, as a cycle would after inspecting them.
func observed(ts ...*Target) *Observed {
	obs := &Observed{byName: map[string]*Target{}, byID: map[string]*Target{}}
	for _, t := range ts {
		if t.State == "" {
			t.State = "running"
		}
		if t.ID == "" {
			t.ID = t.Name + "-0123456789abcdef"
		}
		if t.inspect == nil {
			t.inspect = &container.InspectResponse{HostConfig: &container.HostConfig{}}
		}
		obs.All = append(obs.All, t)
		obs.byName[t.Name] = t
		obs.byID[t.ID] = t
	}
	return obs
}

func tgt(name string, mods ...func(*Target)) *Target {
	t := &Target{Name: name, Labels: map[string]string{}}
	for _, m := range mods {
		m(t)
	}
	return t
}

func dependsOn(names ...string) func(*Target) {
	return func(t *Target) { t.Settings.DependsOn = names }
}

func linkedTo(links ...string) func(*Target) {
	return func(t *Target) {
		t.inspect = &container.InspectResponse{HostConfig: &container.HostConfig{Links: links}}
	}
}

func labels(kv ...string) func(*Target) {
	return func(t *Target) {
		for i := 0; i+1 < len(kv); i += 2 {
			t.Labels[kv[i]] = kv[i+1]
		}
	}
}

func stopped(t *Target) { t.State = "exited" }

func cands(obs *Observed, names ...string) []Candidate {
	var out []Candidate
	for _, n := range names {
		out = append(out, Candidate{Target: obs.byName[n], Cause: "new digest"})
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	tests := []struct {
		name    string
		obs     func() *Observed
		updates []string
		want    string
	}{
		{
			name:    "independent updates are separate groups",
			obs:     func() *Observed { return observed(tgt("a"), tgt("b"), tgt("c")) },
			updates: []string{"b", "a"},
			want:    "group 1:\n  update a (new digest)\ngroup 2:\n  update b (new digest)\n",
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
				vpn := tgt("vpn", func(t *Target) { t.ID = "vpnid0123456789" })
				client := tgt("client", func(t *Target) { t.NetworkMode = "container:vpnid0123456789" })
				user := tgt("user", dependsOn("client"))
				return observed(vpn, client, user)
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
			name: "stopped dependents stay stopped",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("db"), stopped), tgt("db"))
			},
			updates: []string{"db"},
			want:    "group 1:\n  update db (new digest)\n",
		},
		{
			name: "unknown depends-on names are ignored",
			obs: func() *Observed {
				return observed(tgt("app", dependsOn("ghost")))
			},
			updates: []string{"app"},
			want:    "group 1:\n  update app (new digest)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := tc.obs()
			got := buildPlan(obs, cands(obs, tc.updates...)).String()
			if got != tc.want {
				t.Errorf("buildPlan() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestMergeRequests(t *testing.T) {
	a := Request{Containers: []string{"x"}, Trigger: "http"}
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
