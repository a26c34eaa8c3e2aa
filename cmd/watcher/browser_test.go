package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Helpers of the dashboard's browser tests (dashboard_test.go): Debian's chromium, headless,
// driven with chromedp. Without chromium the tests skip, except under CI=true, where they fail.

// browserTimeout bounds every wait on the page: the updates it waits for take seconds.
const browserTimeout = 90 * time.Second

// chromium finds the browser; "" when none is installed.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless browser with a fresh profile for t and returns its tab's context.
// The browser ends with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and under CI the dashboard's browser tests must run (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium): the dashboard's browser tests need it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// do runs actions on the tab, failing the test on an error.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds; on timeout the test fails with what it
// waited for and the page's text.
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(browserTimeout))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, js, err, text)
	}
}

// row is the JavaScript expression of container name's row.
func row(name string) string { return fmt.Sprintf(`document.querySelector('tr[data-name=%q]')`, name) }

// rowHas is a condition: name's row exists, has state, and its text holds every one of texts.
func rowHas(name, state string, texts ...string) string {
	js := fmt.Sprintf(`(r => r !== null && r.dataset.state === %q`, state)
	for _, s := range texts {
		js += fmt.Sprintf(` && r.textContent.includes(%q)`, s)
	}
	return js + ")(" + row(name) + ")"
}

// screenshot saves the page as PNG (full: all of it, else what the screen shows): a test
// artifact (go test -artifacts keeps it), and under $WATCHER_SCREENSHOTS too when set (make
// screenshots writes docs/images that way).
func screenshot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("WATCHER_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatalf("writing screenshot %s: %v", name, err)
		}
	}
	t.Logf("screenshot %s: %d bytes in %s", name, len(png), strings.Join(dirs, ", "))
}

// lowContrast lists the visible texts whose colour has less than 4.5:1 contrast (WCAG AA) with
// the background behind them.
const lowContrast = `(() => {
  const rgb = (s) => s.match(/[\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const behind = (el) => { for (let e = el; e; e = e.parentElement) { const v = rgb(getComputedStyle(e).backgroundColor); if (v.length < 4 || v[3] > 0) return v; } return [255, 255, 255]; };
  const low = [];
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (el.offsetParent === null || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    checked++;
    const r = ratio(rgb(getComputedStyle(el).color), behind(el));
    if (r < 4.5) low.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + r.toFixed(2));
  }
  if (checked < 30) low.push('only ' + checked + ' texts found to check');
  return low;
})()`

// colorScheme makes the page see prefers-color-scheme: scheme ("" = the browser's own).
func colorScheme(t *testing.T, ctx context.Context, scheme string) {
	t.Helper()
	p := emulation.SetEmulatedMediaParams{}
	if scheme != "" {
		p.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, p); err != nil {
		t.Fatalf("emulating prefers-color-scheme %q: %v", scheme, err)
	}
}

// transfer counts the bytes the tab received over the network: every finished request's total
// (headers and body as sent, compressed), and what an unfinished one (the event stream)
// received so far.
type transfer struct {
	mu       sync.Mutex
	finished map[network.RequestID]float64
	partial  map[network.RequestID]float64
	urls     map[network.RequestID]string
}

func countTransfer(t *testing.T, ctx context.Context) *transfer {
	t.Helper()
	tr := &transfer{finished: map[network.RequestID]float64{}, partial: map[network.RequestID]float64{}, urls: map[network.RequestID]string{}}
	err := chromedp.Listen(ctx, func(ev any) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			tr.urls[ev.RequestID] = ev.Request.URL
		case *network.EventResponseReceived:
			tr.partial[ev.RequestID] = max(tr.partial[ev.RequestID], ev.Response.EncodedDataLength)
		case *network.EventDataReceived:
			tr.partial[ev.RequestID] += float64(ev.EncodedDataLength)
		case *network.EventLoadingFinished:
			tr.finished[ev.RequestID] = ev.EncodedDataLength
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// total returns the bytes received and one line per request.
func (tr *transfer) total() (int, []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	sum := 0.0
	var lines []string
	for id, url := range tr.urls {
		n, ok := tr.finished[id]
		if !ok {
			n = tr.partial[id]
		}
		sum += n
		lines = append(lines, fmt.Sprintf("%7.0f %s", n, url))
	}
	return int(sum), lines
}

// apiCall sends one request to the daemon with the token and decodes the JSON answer.
func apiCall(t *testing.T, addr, token, method, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, v
}

// jsonText is v as compact JSON, for matching and messages.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
