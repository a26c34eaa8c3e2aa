package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

// tagMany points every tag at img with one manifest PUT each (img's blobs pushed once first): a
// thousand tags in well under a second, where a push per tag would re-check every blob.
func tagMany(t testing.TB, reg *testenv.Registry, repo string, img v1.Image, tags ...string) {
	t.Helper()
	if err := reg.Push(reg.Ref(repo, tags[0]), img); err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	put := func(tag string) error {
		req, err := http.NewRequest(http.MethodPut, reg.URL()+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", string(mt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("PUT %s:%s: %s", repo, tag, resp.Status)
		}
		return nil
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, tag := range tags[1:] {
		g.Go(func() error { return put(tag) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func versionTags(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("1.%d.%d", i/100, i%100))
	}
	return out
}

func TestTagsFollowsLinkPages(t *testing.T) {
	reg := testenv.NewRegistry(t)
	want := append(versionTags(1050), "latest", "v1-alpine")
	tagMany(t, reg, "app", cachedImage(t, testenv.ImageSpec{Version: "v1"}), want...)
	reg.PageSize(100)
	reg.ResetRequests()

	c := newChecker(Options{})
	got, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0"))
	if err != nil {
		t.Fatalf("Tags: %v", err)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Tags returned %d tags, want %d (first %v)", len(got), len(want), got[:min(5, len(got))])
	}
	if n := reg.Count("GET", "/tags/list"); n != 11 {
		t.Errorf("tag list GETs = %d, want 11 (1052 tags, 100 a page)", n)
	}
	for _, q := range reg.Requests() {
		if strings.HasSuffix(q.Path, "/tags/list") && q.Status != http.StatusOK {
			t.Errorf("GET %s?%s answered %d", q.Path, q.Query, q.Status)
		}
	}
	// Left to itself, the test registry stops at the n=1000 we ask for and sends no Link: a full
	// page without one is followed by asking for the tags after its last.
	reg.PageSize(0)
	reg.ResetRequests()
	if got, err := c.Tags(context.Background(), reg.Host+"/app"); err != nil || len(got) != len(want) {
		t.Errorf("Tags without Link headers = %d tags, %v; want %d", len(got), err, len(want))
	}
	if n := reg.Count("GET", "/tags/list"); n != 2 {
		t.Errorf("tag list GETs without Link headers = %d, want 2", n)
	}
}

// Tag listing rides on the repository's token: a Check and a listing of one repository cost one
// token between them.
func TestTagsShareTheRepositoryToken(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "1.0.0", "1.0.1")
	reg.RequireToken("", "")
	reg.PageSize(1)
	reg.ResetRequests()
	c := newChecker(Options{})
	mustOK(t, c.Check(context.Background(), []Query{pulled(reg, "app", "1.0.0", d)}))
	tags, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0"))
	if err != nil || len(tags) != 2 {
		t.Fatalf("Tags = %v, %v; want two tags", tags, err)
	}
	if n := reg.Count("GET", "/token"); n != 1 {
		t.Errorf("tokens = %d, want 1 for the check and the listing", n)
	}
	for _, q := range reg.Requests() {
		if strings.HasSuffix(q.Path, "/tags/list") && q.Auth != "Bearer" {
			t.Errorf("GET %s without the bearer token (auth %q)", q.Path, q.Auth)
		}
	}
}

func TestTagsFailures(t *testing.T) {
	const retries = 2
	tests := []struct {
		name  string
		pages bool // one tag a page: the second page's request is the one the fault may hit
		fault testenv.Fault
		want  failure.Reason
		gets  int
		text  string
	}{
		{"404 NAME_UNKNOWN", false, testenv.Fault{Path: "/tags/list", Status: 404, Code: "NAME_UNKNOWN"}, failure.ManifestUnknown, 1, "404"},
		{"401", false, testenv.Fault{Path: "/tags/list", Status: 401, Code: "UNAUTHORIZED"}, failure.Unauthorized, 1, "credentials"},
		{"403 DENIED", false, testenv.Fault{Path: "/tags/list", Status: 403, Code: "DENIED"}, failure.Unauthorized, 1, "403"},
		{"429", false, testenv.Fault{Path: "/tags/list", Status: 429, Header: map[string]string{"Retry-After": "60"}}, failure.RateLimited, 1, "not asking"},
		{"503", false, testenv.Fault{Path: "/tags/list", Status: 503}, failure.RegistryUnavailable, 1 + retries, "503"},
		{"not JSON", false, testenv.Fault{Path: "/tags/list", Status: 200}, failure.RegistryUnavailable, 1, "not JSON"},
		{"Link to another host", false, testenv.Fault{Path: "/tags/list", Header: map[string]string{"Link": `<https://elsewhere.example/v2/app/tags/list?last=1.0.0>; rel="next"`}}, failure.RegistryUnavailable, 1, "another host"},
		{"Link in a circle", false, testenv.Fault{Path: "/tags/list", Header: map[string]string{"Link": `</v2/app/tags/list?n=1000>; rel="next"`}}, failure.RegistryUnavailable, 1, "already read"},
		{"timeout", false, testenv.Fault{Path: "/tags/list", Delay: 2 * time.Second}, failure.RegistryUnavailable, 1, "no answer within"},
		// Pages: 1.0.0, 1.0.1, then the test registry starts over (1.0.0 again), which ends it.
		{"paged", true, testenv.Fault{Path: "/nothing"}, "", 3, ""},
		{"one 502, then fine", true, testenv.Fault{Path: "/tags/list", Status: 502, Times: 1}, "", 4, ""},
		{"second page 404", true, testenv.Fault{Path: "/tags/list", Status: 404, Code: "NAME_UNKNOWN", Times: 2}, failure.ManifestUnknown, 1, "404"},
	}
	reg := testenv.NewRegistry(t)
	pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "1.0.0", "1.0.1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.PageSize(0)
			if tt.pages {
				reg.PageSize(1)
			}
			defer reg.AddFault(tt.fault)()
			reg.ResetRequests()
			c := newChecker(Options{Retries: retries, Timeout: 300 * time.Millisecond})
			tags, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0"))
			if tt.want == "" {
				if err != nil || !slices.Equal(tags, []string{"1.0.0", "1.0.1"}) {
					t.Fatalf("Tags = %v, %v; want both tags", tags, err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Reason != tt.want || !strings.Contains(e.Message, tt.text) || !strings.Contains(e.Message, reg.Host) {
					t.Fatalf("Tags error = %v, want %s naming %s and %q", err, tt.want, reg.Host, tt.text)
				}
			}
			deadline := time.Now().Add(time.Second)
			for reg.Count("GET", "/tags/list") < tt.gets && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := reg.Count("GET", "/tags/list"); n != tt.gets {
				t.Errorf("tag list GETs = %d, want %d", n, tt.gets)
			}
		})
	}
}

// A 429 on the listing keeps the whole host quiet: the HEAD that follows is not sent.
func TestTagsRateLimitBlocksTheHost(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "1.0.0")
	reg.AddFault(testenv.Fault{Path: "/tags/list", Status: 429, Header: map[string]string{"Retry-After": "120"}})
	clock := newFakeClock()
	c := newChecker(Options{Now: clock.Now})
	_, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0"))
	var e *Error
	if !errors.As(err, &e) || e.Reason != failure.RateLimited || !e.RetryAt.Equal(clock.Now().Add(120*time.Second)) {
		t.Fatalf("Tags error = %#v, want failure.RateLimited until +120s", err)
	}
	reg.ResetRequests()
	r := c.Check(context.Background(), []Query{pulled(reg, "app", "1.0.0", d)})[0]
	if r.Reason != failure.RateLimited || len(reg.Requests()) != 0 {
		t.Errorf("Check after a 429 on the listing: %s with %d requests, want failure.RateLimited and none", r.Reason, len(reg.Requests()))
	}
	if _, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0")); !errors.As(err, &e) || e.Reason != failure.RateLimited || len(reg.Requests()) != 0 {
		t.Errorf("second listing: %v with %d requests, want failure.RateLimited and none", err, len(reg.Requests()))
	}
	clock.Advance(121 * time.Second)
	reg.ClearFaults()
	if tags, err := c.Tags(context.Background(), reg.Ref("app", "1.0.0")); err != nil || len(tags) != 1 {
		t.Errorf("listing after the back-off: %v, %v", tags, err)
	}
}

func TestNextPage(t *testing.T) {
	cur, _ := url.Parse("http://127.0.0.1:5000/v2/app/tags/list?n=2")
	tests := []struct {
		links []string
		want  string // "" = no next page
		err   bool
	}{
		{nil, "", false},
		{[]string{`</v2/app/tags/list?n=2&last=b>; rel="next"`}, "http://127.0.0.1:5000/v2/app/tags/list?n=2&last=b", false},
		{[]string{`<http://127.0.0.1:5000/v2/app/tags/list?last=b&n=2>; rel=next`}, "http://127.0.0.1:5000/v2/app/tags/list?last=b&n=2", false},
		{[]string{`</v2/app/tags/list?last=a>; rel="prev", </v2/app/tags/list?last=c>; rel="next"`}, "http://127.0.0.1:5000/v2/app/tags/list?last=c", false},
		{[]string{`</v2/app/tags/list?last=a>; rel="prev"`, `</v2/app/tags/list?last=d>; title="x,y"; rel="last next"`}, "http://127.0.0.1:5000/v2/app/tags/list?last=d", false},
		{[]string{`<https://127.0.0.1:5000/v2/app/tags/list?last=b>; rel="next"`}, "http://127.0.0.1:5000/v2/app/tags/list?last=b", false}, // scheme is ours to pick
		{[]string{`</v2/app/tags/list?last=a>; rel="prev"`}, "", false},
		{[]string{`<//evil.example/v2/app/tags/list>; rel="next"`}, "", true},
		{[]string{`<http://127.0.0.1:5001/v2/app/tags/list>; rel="next"`}, "", true},
	}
	for _, tt := range tests {
		got, err := nextPage(cur, tt.links)
		gotS := ""
		if got != nil {
			gotS = got.String()
		}
		if gotS != tt.want || (err != nil) != tt.err {
			t.Errorf("nextPage(%q) = %q, %v; want %q, error %t", tt.links, gotS, err, tt.want, tt.err)
		}
	}
}

func TestCreated(t *testing.T) {
	reg := testenv.NewRegistry(t)
	when := time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC)
	ref, d := reg.PushImage(t, "app", "1.0.0", testenv.ImageSpec{Version: "created-plain", Created: when})
	c := newChecker(Options{})
	reg.ResetRequests()
	for _, r := range []string{ref, reg.Host + "/app@" + d.String()} {
		got, err := c.Created(context.Background(), r, v1.Platform{})
		if err != nil || !got.Equal(when) {
			t.Errorf("Created(%s) = %v, %v; want %v", r, got, err, when)
		}
	}
	// The manifest and the config are content-addressed: asked again, only the HEADs repeat.
	if h, g, b := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"), reg.Count("GET", "/blobs/"); h != 2 || g != 1 || b != 1 {
		t.Errorf("HEAD, manifest GET, blob GET = %d, %d, %d; want 2, 1, 1", h, g, b)
	}

	// An index: the platform's own config decides.
	amd := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	arm := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pa, pr := v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}
	reg.PushIndex(t, "multi", "2.0.0",
		testenv.PlatformImage{Platform: pa, Image: testenv.Image(t, testenv.ImageSpec{Version: "created-amd", Platform: &pa, Created: amd})},
		testenv.PlatformImage{Platform: pr, Image: testenv.Image(t, testenv.ImageSpec{Version: "created-arm", Platform: &pr, Created: arm})})
	for _, tt := range []struct {
		p    v1.Platform
		want time.Time
	}{{pa, amd}, {pr, arm}} {
		if got, err := c.Created(context.Background(), reg.Ref("multi", "2.0.0"), tt.p); err != nil || !got.Equal(tt.want) {
			t.Errorf("Created(multi:2.0.0, %s) = %v, %v; want %v", tt.p.String(), got, err, tt.want)
		}
	}
	_, err := c.Created(context.Background(), reg.Ref("multi", "2.0.0"), v1.Platform{OS: "linux", Architecture: "s390x"})
	var e *Error
	if !errors.As(err, &e) || e.Reason != failure.ManifestUnknown || !strings.Contains(e.Message, "linux/s390x") {
		t.Errorf("Created for a platform the index lacks: %v, want failure.ManifestUnknown naming it", err)
	}
	if _, err := c.Created(context.Background(), reg.Ref("app", "9.9.9"), v1.Platform{}); !errors.As(err, &e) || e.Reason != failure.ManifestUnknown {
		t.Errorf("Created of a missing tag: %v, want failure.ManifestUnknown", err)
	}

	// A failing config GET is classified like any other request.
	ref3, _ := reg.PushImage(t, "app", "3.0.0", testenv.ImageSpec{Version: "created-3"})
	reg.AddFault(testenv.Fault{Method: "GET", Path: "/blobs/", Status: 500})
	if _, err := newChecker(Options{Retries: -1}).Created(context.Background(), ref3, v1.Platform{}); !errors.As(err, &e) || e.Reason != failure.RegistryUnavailable {
		t.Errorf("Created with a failing blob GET: %v, want failure.RegistryUnavailable", err)
	}
}
