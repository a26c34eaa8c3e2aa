package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/api/types/container"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// The dashboard in a real browser (headless Chromium) against the real daemon on the private
// engine. Screenshots are test artifacts (go test -artifacts; `make screenshots` writes the ones
// docs/ shows).

const dashToken = "dash-token-0123456789abcdef"

// xssLabel is a label value a hostile image or compose file could carry. A malformed
// watcher.window label is quoted in the container's failure message, which the page shows.
const xssLabel = `<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>`

// firstViewLimit is the budget for the first view, everything transferred included.
const firstViewLimit = 100 << 10

// TestDashboardActs: the token flow (a wrong token refused and not kept; the right one typed
// once, kept in sessionStorage, never in the URL or a cookie), the containers listed with a
// hostile label shown as text, an update by the button (of a container no run has checked yet)
// whose row changes through the event stream without a reload or a new read of the list, an
// approval by keyboard, screenshots in light and dark and on a phone.
func TestDashboardActs(t *testing.T) {
	addr := freePort(t)
	e, env, labels := opsEnv(t, "WATCHER_HTTP_LISTEN="+addr, "WATCHER_HTTP_TOKEN="+dashToken)
	app, appr, xss, mon := e.Name("app"), e.Name("appr"), e.Name("xss"), e.Name("mon")
	ref, _ := e.Registry.PushImage(t, "app", "1.4", testenv.ImageSpec{Version: "v1"})
	refAppr, _ := e.Registry.PushImage(t, "appr", "2.0", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	e.Pull(refAppr)
	e.Run(app, &container.Config{Image: ref, Labels: labels}, nil, nil)
	e.Run(appr, &container.Config{Image: refAppr, Labels: with(labels, "watcher.approve", "digest")}, nil, nil)
	e.Run(xss, &container.Config{Image: ref, Labels: with(labels, "watcher.window", xssLabel)}, nil, nil)
	e.Run(mon, &container.Config{Image: ref, Labels: with(labels, "watcher.mode", "monitor")}, nil, nil)
	_, d2 := e.Registry.PushImage(t, "app", "1.4", testenv.ImageSpec{Version: "v2"})
	_, d3 := e.Registry.PushImage(t, "appr", "2.0", testenv.ImageSpec{Version: "v2"})
	stop := startDaemon(t, env)
	defer stop()
	// A run of appr, xss and mon: appr's update waits for approval, xss fails on its label, mon
	// (monitor mode) has one available.
	if code, v := apiCall(t, addr, dashToken, "POST", "/v1/update?container="+appr+"&container="+xss+"&container="+mon+"&wait=true"); code != 200 {
		t.Fatalf("first run = %d %v", code, v)
	}

	ctx := newBrowser(t)
	do(t, ctx, "open the dashboard", chromedp.Navigate("http://"+addr+"/"))
	waitFor(t, ctx, "the token form", `document.body.dataset.mode === 'locked' && !document.getElementById('token-form').hidden`)
	if hidden := eval[bool](t, ctx, `document.getElementById('containers').hidden`); !hidden {
		t.Error("the containers show before the token was given")
	}

	do(t, ctx, "type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "wrong-token-0123456789\n"))
	waitFor(t, ctx, "the refusal", `document.getElementById('notice').textContent.includes('not accepted')`)
	if kept := eval[bool](t, ctx, `sessionStorage.length > 0`); kept {
		t.Error("a refused token was kept in sessionStorage")
	}
	do(t, ctx, "type the token", chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`), chromedp.SendKeys(chromedp.ID("token"), dashToken+"\n"))
	waitFor(t, ctx, "the containers", `document.body.dataset.mode === 'act' && `+rowHas(app, "unknown")+` && `+
		rowHas(appr, "pending_approval", d3.Hex[:12])+` && `+rowHas(mon, "update_available", d2.Hex[:12])+` && `+row(xss)+` !== null && document.getElementById('live').dataset.live === 'on'`)
	where := eval[map[string]string](t, ctx, `({stored: sessionStorage.getItem('watcher.token'), url: location.href, cookie: document.cookie})`)
	if where["stored"] != dashToken || strings.Contains(where["url"], dashToken) || where["cookie"] != "" {
		t.Errorf("token kept as %v; want it in sessionStorage only", where)
	}

	// The hostile label is text: its characters show, no element or handler came of it.
	xssText := eval[string](t, ctx, row(xss)+`.textContent`)
	if !strings.Contains(xssText, `<img src=x onerror=window.__pwned=1><script>`) || !strings.Contains(xssText, "InvalidLabel") {
		t.Errorf("xss row %q does not show the label as text", xssText)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('main img, main script, [onerror]').length`); n != 0 {
		t.Errorf("the label made %d elements", n)
	}
	if pwned := eval[bool](t, ctx, `window.__pwned !== undefined`); pwned {
		t.Error("the label's script ran")
	}

	// Update by the button: the row changes through the event stream, without a reload and
	// without reading the list again.
	do(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.__marker = 1`))
	lists := `performance.getEntriesByType('resource').filter(e => e.name.endsWith('/v1/containers')).length`
	before := eval[int](t, ctx, lists)
	do(t, ctx, "press Update", chromedp.Click(chromedp.CSS(`tr[data-name="`+app+`"] button[data-action="update"]`)))
	waitFor(t, ctx, "app updated", rowHas(app, "up_to_date", d2.Hex[:12]))
	if v := appVersion(e, app); v != "v2" {
		t.Errorf("app runs %s after the update, want v2", v)
	}

	// Every state on the page: screenshots, and the contrast of every text in both schemes.
	for _, scheme := range []string{"light", "dark"} {
		colorScheme(t, ctx, scheme)
		screenshot(t, ctx, "dashboard-"+scheme+".png", true)
		if low := eval[[]string](t, ctx, lowContrast); len(low) > 0 {
			t.Errorf("%s: texts under 4.5:1 contrast: %q", scheme, low)
		}
		if bg := eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); (bg == "rgb(17, 19, 22)") != (scheme == "dark") {
			t.Errorf("%s scheme: background %s", scheme, bg)
		}
	}

	// Approve by keyboard: focus the button, press Enter.
	do(t, ctx, "approve with the keyboard", chromedp.Focus(chromedp.CSS(`tr[data-name="`+appr+`"] button[data-action="approve"]`)), chromedp.KeyEvent("\r"))
	waitFor(t, ctx, "appr updated after its approval", rowHas(appr, "up_to_date", d3.Hex[:12]))
	if v := appVersion(e, appr); v != "v2" {
		t.Errorf("appr runs %s after its approval, want v2", v)
	}
	if m, after := eval[int](t, ctx, `window.__marker`), eval[int](t, ctx, lists); m != 1 || after != before {
		t.Errorf("marker %d (want 1: no reload), list read %d times (was %d): the rows must change through events", m, after, before)
	}
	waitFor(t, ctx, "the runs in the history", `document.querySelectorAll('#runs tr').length >= 3`)

	// Filters: by name, by state.
	do(t, ctx, "search", chromedp.SendKeys(chromedp.ID("search"), "xss"))
	waitFor(t, ctx, "only xss", `document.querySelectorAll('#groups tr[data-name]').length === 1 && `+row(xss)+` !== null`)
	do(t, ctx, "clear the search", chromedp.Evaluate[chromedp.Void](`document.getElementById('search').value = ''; document.getElementById('search').dispatchEvent(new Event('input'))`))
	do(t, ctx, "filter by state", chromedp.SetValue(chromedp.ID("state-filter"), "up_to_date"), chromedp.Evaluate[chromedp.Void](`document.getElementById('state-filter').dispatchEvent(new Event('input'))`))
	waitFor(t, ctx, "the up-to-date ones", `document.querySelectorAll('#groups tr[data-name]').length === 2 && `+row(xss)+` === null && `+row(mon)+` === null`)
	do(t, ctx, "all states", chromedp.SetValue(chromedp.ID("state-filter"), ""), chromedp.Evaluate[chromedp.Void](`document.getElementById('state-filter').dispatchEvent(new Event('input'))`))
	waitFor(t, ctx, "every row", `document.querySelectorAll('#groups tr[data-name]').length === 4`)

	// A phone: the rows become cards, nothing scrolls sideways.
	colorScheme(t, ctx, "light")
	do(t, ctx, "a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	waitFor(t, ctx, "rows as cards", `getComputedStyle(document.querySelector('#groups td')).display === 'grid'`)
	if wide := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
		t.Errorf("the page is %d px wide on a 390 px screen", eval[int](t, ctx, `document.documentElement.scrollWidth`))
	}
	screenshot(t, ctx, "dashboard-phone.png", false)

	// The token was typed once: a reload is signed in.
	do(t, ctx, "reload", chromedp.Reload())
	waitFor(t, ctx, "signed in after a reload", `document.body.dataset.mode === 'act' && `+row(app)+` !== null`)
}

// TestDashboardReadOnly: with http.public_read and no token the page shows everything, says it
// is read-only and offers no action; the first view stays under 100 KB; the live feed comes
// back after the daemon restarts (a dropped stream), and a run's detail shows each line.
func TestDashboardReadOnly(t *testing.T) {
	addr := freePort(t)
	e, env, labels := opsEnv(t, "WATCHER_HTTP_LISTEN="+addr, "WATCHER_HTTP_TOKEN="+dashToken, "WATCHER_HTTP_PUBLIC_READ=true")
	web := e.Name("web")
	ref, _ := e.Registry.PushImage(t, "web", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	for _, n := range []string{web, e.Name("api"), e.Name("worker"), e.Name("cache")} {
		e.Run(n, &container.Config{Image: ref, Labels: labels}, nil, nil)
	}
	stop := startDaemon(t, env)
	defer func() { stop() }()
	for range 3 { // a history of a few runs
		if code, v := apiCall(t, addr, dashToken, "POST", "/v1/update?wait=true"); code != 200 {
			t.Fatalf("run = %d %v", code, v)
		}
	}

	ctx := newBrowser(t)
	tr := countTransfer(t, ctx)
	do(t, ctx, "open the dashboard", chromedp.Navigate("http://"+addr+"/"))
	waitFor(t, ctx, "the read-only view", `document.body.dataset.mode === 'read' && `+rowHas(web, "up_to_date")+
		` && document.querySelectorAll('#runs tr').length >= 3 && document.getElementById('live').dataset.live === 'on'`)
	bytes, reqs := tr.total()
	slices.Sort(reqs)
	t.Logf("first view: %d bytes transferred in %d requests:\n%s", bytes, len(reqs), strings.Join(reqs, "\n"))
	if bytes >= firstViewLimit || len(reqs) < 7 {
		t.Errorf("first view: %d bytes in %d requests; want under %d bytes for the page, its script, style and icon, the status, the list, the runs and the event stream",
			bytes, len(reqs), firstViewLimit)
	}
	if mode := eval[string](t, ctx, `document.getElementById('mode').textContent`); !strings.Contains(mode, "Read-only") {
		t.Errorf("the page does not say it is read-only: %q", mode)
	}
	if n := eval[int](t, ctx, `[...document.querySelectorAll('[data-act]')].filter(b => b.offsetParent !== null).length`); n != 0 {
		t.Errorf("%d action buttons show in the read-only view", n)
	}
	screenshot(t, ctx, "dashboard-readonly.png", true)

	// A dropped stream: the daemon stops and starts again; the page reconnects by itself and
	// shows the next run's changes without a reload.
	do(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.__marker = 1`))
	stop()
	waitFor(t, ctx, "the page noticing the drop", `document.getElementById('live').dataset.live === 'retry'`)
	stop = startDaemon(t, env)
	waitFor(t, ctx, "the stream back", `document.getElementById('live').dataset.live === 'on'`)
	_, d2 := e.Registry.PushImage(t, "web", "latest", testenv.ImageSpec{Version: "v2"})
	if code, v := apiCall(t, addr, dashToken, "POST", "/v1/update?container="+web); code != 202 {
		t.Fatalf("POST /v1/update = %d %v", code, v)
	}
	waitFor(t, ctx, "web updated, seen live", rowHas(web, "up_to_date", d2.Hex[:12]))
	if m := eval[int](t, ctx, `window.__marker`); m != 1 {
		t.Error("the page was reloaded")
	}

	// The newest run's detail: web's line with its downtime.
	waitFor(t, ctx, "the run in the history", `document.querySelector('#runs tr td').textContent !== '' && document.querySelector('#runs tr').textContent.includes('1 updated')`)
	do(t, ctx, "open the run", chromedp.Click(chromedp.CSS(`#runs tr button`)))
	waitFor(t, ctx, "the run's detail", fmt.Sprintf(`document.getElementById('run-dialog').open && (l => l !== null && l.textContent.includes('updated') && !l.querySelector('[data-label="Downtime"]').textContent.includes('–'))(document.querySelector('#run-body tr[data-line=%q]'))`, web))
	screenshot(t, ctx, "dashboard-run.png", true)
}

// TestDashboardHosts: with two hosts the page groups the containers by host (the same name on
// both), filters by host, and a row's Update acts on its own host only.
func TestDashboardHosts(t *testing.T) {
	e, remote, re, labels := twoEngines(t)
	addr := freePort(t)
	ref, _ := e.Registry.PushImage(t, "web", "latest", testenv.ImageSpec{Version: "v1"})
	e.Pull(ref)
	re.Pull(ref)
	web := e.Name("web")
	e.Run(web, &container.Config{Image: ref, Labels: labels}, nil, nil)
	re.Run(web, &container.Config{Image: ref, Labels: labels}, nil, nil)
	cfg := hostsConfig(t, "http:\n  listen: "+addr+"\n  token: "+dashToken+"\nschedule: \"\"\n",
		hostEntry("local", os.Getenv("DOCKER_HOST"), e.Owner, nil), hostEntry("edge", remote.Host, e.Owner, remote.TLS))
	stop := startDaemon(t, []string{"WATCHER_CONFIG=" + cfg})
	defer stop()
	if code, v := apiCall(t, addr, dashToken, "POST", "/v1/update?wait=true"); code != 200 {
		t.Fatalf("first run = %d %v", code, v)
	}
	_, d2 := e.Registry.PushImage(t, "web", "latest", testenv.ImageSpec{Version: "v2"})

	ctx := newBrowser(t)
	do(t, ctx, "open the dashboard", chromedp.Navigate("http://"+addr+"/"),
		chromedp.SendKeys(chromedp.ID("token"), dashToken+"\n"))
	inHost := func(h string) string {
		return fmt.Sprintf(`document.querySelector('.host[data-host=%q] tr[data-name=%q]')`, h, web)
	}
	waitFor(t, ctx, "a group per host", `document.querySelectorAll('#groups .host h3').length === 2 && `+inHost("edge")+` !== null && `+inHost("local")+` !== null && document.getElementById('live').dataset.live === 'on'`)
	screenshot(t, ctx, "dashboard-hosts.png", true)
	if opts := eval[[]string](t, ctx, `[...document.getElementById('host-filter').options].map(o => o.value)`); !slices.Equal(opts, []string{"", "edge", "local"}) {
		t.Errorf("host filter options %q", opts)
	}
	do(t, ctx, "filter by host", chromedp.SetValue(chromedp.ID("host-filter"), "edge"), chromedp.Evaluate[chromedp.Void](`document.getElementById('host-filter').dispatchEvent(new Event('input'))`))
	waitFor(t, ctx, "edge only", `document.querySelectorAll('#groups tr[data-name]').length === 1 && `+inHost("edge")+` !== null`)

	do(t, ctx, "update web on edge", chromedp.Click(chromedp.CSS(`.host[data-host="edge"] tr[data-name="`+web+`"] button[data-action="update"]`)))
	waitFor(t, ctx, "edge's web updated", fmt.Sprintf(`(r => r !== null && r.dataset.state === 'up_to_date' && r.textContent.includes(%q))(%s)`, d2.Hex[:12], inHost("edge")))
	if v1, v2 := runningVersion(e.Docker, web), runningVersion(remote.Docker, web); v1 != "v1" || v2 != "v2" {
		t.Errorf("web runs %s locally and %s on edge; want only edge's updated (v1, v2)", v1, v2)
	}
}
