package main

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// TestDaemonApprovals: with update.approve, the daemon holds an update as pending_approval and
// notifies it once; GET /v1/containers shows the exact digest waiting; watcher check prints the
// hold; POST /v1/approve applies it in a run; POST /v1/reject holds a newer one; both answer 409
// when nothing waits.
func TestDaemonApprovals(t *testing.T) {
	hook := newHookReceiver(t)
	addr := freePort(t)
	e, env, labels := opsEnv(t, "WATCHER_HTTP_LISTEN="+addr, "WATCHER_HTTP_TOKEN="+dashToken, "WATCHER_UPDATE_APPROVE=digest",
		"WATCHER_NOTIFY_URLS=generic+"+hook.URL+"/hook")
	app := e.Name("app")
	ref, _ := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Run(app, &container.Config{Image: ref, Labels: labels}, nil, nil)
	_, d2 := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v2"})
	stop := startDaemon(t, env)
	defer stop()

	pending := func(what string) {
		t.Helper()
		code, v := apiCall(t, addr, dashToken, "POST", "/v1/update?wait=true")
		if code != 200 || !strings.Contains(jsonText(v), `"outcome":"pending_approval"`) {
			t.Fatalf("%s: POST /v1/update?wait=true = %d %s, want app pending_approval", what, code, jsonText(v))
		}
	}
	pending("first run")
	pending("second run")
	if posts := hook.posts(); len(posts) != 1 || !strings.Contains(posts[0], "pending approval") || !strings.Contains(posts[0], d2.String()[:19]) {
		t.Errorf("notifications after two runs: %q; want one telling of the update to %s waiting", posts, d2)
	}
	if code, v := apiCall(t, addr, dashToken, "GET", "/v1/containers"); code != 200 ||
		!strings.Contains(jsonText(v), `"approval":{"digest":"`+d2.String()+`","kind":"digest"`) || !strings.Contains(jsonText(v), `"state":"pending"`) {
		t.Errorf("GET /v1/containers = %d %s; want app's approval pending for %s", code, jsonText(v), d2)
	}
	if code, out, stderr := runCmd(t, env, "check"); !strings.Contains(out, "wait "+app+": a digest update waits for approval") {
		t.Errorf("watcher check = exit %d\n%s%s\nwant the approval hold in its plan", code, out, stderr)
	}

	code, v := apiCall(t, addr, dashToken, "POST", "/v1/approve?container="+app+"&wait=true")
	if code != 200 || v["trigger"] != "approve" || !strings.Contains(jsonText(v), `"outcome":"updated"`) || appVersion(e, app) != "v2" {
		t.Fatalf("POST /v1/approve?wait=true = %d %s, app runs %s; want it updated to v2", code, jsonText(v), appVersion(e, app))
	}
	for _, path := range []string{"/v1/approve?container=" + app, "/v1/reject?container=" + app} {
		if code, v := apiCall(t, addr, dashToken, "POST", path); code != 409 || v["reason"] != "NoPendingApproval" {
			t.Errorf("POST %s with nothing waiting = %d %v, want 409 NoPendingApproval", path, code, v)
		}
	}

	_, d3 := e.Registry.PushImage(t, "app", "latest", testenv.ImageSpec{Version: "v3"})
	pending("after a new push")
	code, v = apiCall(t, addr, dashToken, "POST", "/v1/reject?container="+app)
	if code != 200 || !strings.Contains(jsonText(v), `"digest":"`+d3.String()+`"`) || !strings.Contains(jsonText(v), `"state":"rejected"`) {
		t.Errorf("POST /v1/reject = %d %s", code, jsonText(v))
	}
	code, v = apiCall(t, addr, dashToken, "POST", "/v1/update?wait=true")
	if code != 200 || !strings.Contains(jsonText(v), `"outcome":"skipped"`) || appVersion(e, app) != "v2" {
		t.Errorf("a run after the rejection = %d %s, app runs %s; want skipped, v2", code, jsonText(v), appVersion(e, app))
	}
}
