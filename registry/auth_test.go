package registry

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/pkg/authconfig"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

func TestOneTokenPerRepositoryAcrossLookupsAndChecks(t *testing.T) {
	reg := testenv.NewRegistry(t)
	tags := make([]string, 40)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%02d", i)
	}
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, tags...)
	other := pushTags(t, reg, "other", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.RequireToken("", "")
	reg.ResetRequests()

	var qs []Query
	for _, tag := range tags {
		qs = append(qs, pulled(reg, "app", tag, d))
	}
	c := newChecker(Options{PerHost: 8})
	mustOK(t, c.Check(context.Background(), qs))
	if got := reg.Count("GET", "/token"); got != 1 {
		t.Fatalf("token requests after 40 lookups in one repository = %d, want 1", got)
	}
	if got := manifestCalls(reg, "HEAD"); got != 40 {
		t.Fatalf("HEADs = %d, want 40", got)
	}

	mustOK(t, c.Check(context.Background(), append(qs, pulled(reg, "other", "v1", other))))
	if got := reg.Count("GET", "/token"); got != 2 {
		t.Errorf("token requests after a second Check adding a repository = %d, want 2 (1 reused + 1 new scope)", got)
	}
	pings := 0
	for _, r := range reg.Requests() {
		if r.Path == "/v2/" {
			pings++
		}
		if strings.Contains(r.Path, "/manifests/") && (r.Auth != "Bearer" || r.Status != 200) {
			t.Errorf("%s %s: auth %q status %d, want a bearer token accepted the first time", r.Method, r.Path, r.Auth, r.Status)
		}
	}
	if pings != 1 {
		t.Errorf("pings = %d, want 1 per registry", pings)
	}
}

func TestCredentials(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "private", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.RequireToken("alice", "s3cret")
	q := pulled(reg, "private", "v1", d)
	good := authn.AuthConfig{Username: "alice", Password: "s3cret"}
	bad := &authn.Basic{Username: "alice", Password: "wrong"}

	tests := []struct {
		name string
		o    Options
		want failure.Reason
	}{
		{"anonymous", Options{}, failure.Unauthorized},
		{"keychain", Options{Keychain: &staticKeychain{auth: map[string]authn.Authenticator{reg.Host: authn.FromConfig(good)}}}, ""},
		{"wrong keychain", Options{Keychain: &staticKeychain{auth: map[string]authn.Authenticator{reg.Host: bad}}}, failure.Unauthorized},
		{"config", Options{Auth: map[string]authn.AuthConfig{reg.Host: good}}, ""},
		{"config with scheme", Options{Auth: map[string]authn.AuthConfig{"http://" + reg.Host + "/": good}}, ""},
		{"config before keychain", Options{Auth: map[string]authn.AuthConfig{reg.Host: good}, Keychain: &staticKeychain{auth: map[string]authn.Authenticator{reg.Host: bad}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newChecker(tt.o).Check(context.Background(), []Query{q})[0]
			if r.Reason != tt.want {
				t.Fatalf("Reason = %q (%s), want %q", r.Reason, r.Message, tt.want)
			}
			if tt.want == failure.Unauthorized && (!strings.Contains(r.Message, reg.Host) || !strings.Contains(r.Message, "401")) {
				t.Errorf("Message = %q, want host and status", r.Message)
			}
			if tt.want == "" && r.UpdateAvailable {
				t.Errorf("UpdateAvailable for an unchanged image")
			}
		})
	}
}

// After failure.Unauthorized the cached transport is dropped, so credentials added later (docker login)
// are used by the next Check without a restart.
func TestUnauthorizedForgetsCredentials(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "private", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.RequireToken("alice", "s3cret")
	keys := &staticKeychain{}
	c := newChecker(Options{Keychain: keys})
	q := pulled(reg, "private", "v1", d)
	if r := c.Check(context.Background(), []Query{q})[0]; r.Reason != failure.Unauthorized {
		t.Fatalf("before login: Reason = %q (%s), want failure.Unauthorized", r.Reason, r.Message)
	}
	keys.set(reg.Host, &authn.Basic{Username: "alice", Password: "s3cret"})
	if r := c.Check(context.Background(), []Query{q})[0]; r.Reason != "" {
		t.Fatalf("after login: Reason = %q (%s), want success", r.Reason, r.Message)
	}
}

func TestPullAuth(t *testing.T) {
	c := newChecker(Options{Auth: map[string]authn.AuthConfig{
		"docker.io":      {Username: "hubuser", Password: "hubpass"},
		"127.0.0.1:5000": {Username: "local", Password: "pw"},
	}})
	tests := []struct {
		ref            string
		user, password string
		server         string
	}{
		{"nginx", "hubuser", "hubpass", "https://index.docker.io/v1/"},
		{"docker.io/library/nginx:1.27", "hubuser", "hubpass", "https://index.docker.io/v1/"},
		{"127.0.0.1:5000/app:v1", "local", "pw", "127.0.0.1:5000"},
		{"ghcr.io/acme/app:v1", "", "", ""},
	}
	for _, tt := range tests {
		enc, err := c.PullAuth(tt.ref)
		if err != nil {
			t.Fatalf("PullAuth(%s): %v", tt.ref, err)
		}
		if tt.user == "" {
			if enc != "" {
				t.Errorf("PullAuth(%s) = %q, want \"\" (anonymous)", tt.ref, enc)
			}
			continue
		}
		cfg, err := authconfig.Decode(enc)
		if err != nil {
			t.Fatalf("PullAuth(%s) = %q: %v", tt.ref, enc, err)
		}
		if cfg.Username != tt.user || cfg.Password != tt.password || cfg.ServerAddress != tt.server {
			t.Errorf("PullAuth(%s) = %+v, want %s/%s at %s", tt.ref, cfg, tt.user, tt.password, tt.server)
		}
	}
	if _, err := c.PullAuth("Bad Ref"); err == nil {
		t.Errorf("PullAuth(bad ref) = nil error")
	}
}

// pushRepos pushes one image under name:v1 for n repositories app00, app01, … and returns a
// Query per repository.
func pushRepos(t testing.TB, reg *testenv.Registry, n int) []Query {
	t.Helper()
	var qs []Query
	for i := range n {
		repo := fmt.Sprintf("app%02d", i)
		d := pushTags(t, reg, repo, testenv.ImageSpec{Version: "v1"}, "v1")
		qs = append(qs, pulled(reg, repo, "v1", d))
	}
	return qs
}

// tokenRequests are the registry's token requests, each as the scopes it asked for.
func tokenRequests(t testing.TB, reg *testenv.Registry) [][]string {
	t.Helper()
	var out [][]string
	for _, r := range reg.Requests() {
		if r.Path != "/token" {
			continue
		}
		q, err := url.ParseQuery(r.Query)
		if err != nil {
			t.Fatalf("token request query %q: %v", r.Query, err)
		}
		out = append(out, q["scope"])
	}
	return out
}

// A cold cycle over 40 repositories of one registry asks for one token carrying all 40 scopes;
// the next cycle asks for none, and tag listing rides on the same token.
func TestOneTokenPerRegistry(t *testing.T) {
	reg := testenv.NewRegistry(t)
	qs := pushRepos(t, reg, 40)
	for _, q := range slices.Clone(qs) {
		qs = append(qs, q, q, q, q) // 5 containers an image, as in the benchmark
	}
	reg.RequireToken("", "")
	reg.ResetRequests()

	c := newChecker(Options{Concurrency: 16, PerHost: 16})
	mustOK(t, c.Check(context.Background(), qs))
	toks := tokenRequests(t, reg)
	if len(toks) != 1 || len(toks[0]) != 40 {
		t.Fatalf("token requests of a cold cycle = %d (scopes %v), want 1 with 40 scopes", len(toks), toks)
	}
	for i := range 40 {
		if want := fmt.Sprintf("repository:app%02d:pull", i); !slices.Contains(toks[0], want) {
			t.Errorf("token request lacks scope %s", want)
		}
	}
	if h, g, p := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"), reg.Count("GET", "/v2/"); h != 40 || g != 0 {
		t.Errorf("cold cycle: %d HEADs, %d GETs, want 40 and 0 (%d requests to /v2/ in all)", h, g, p)
	}
	for _, r := range reg.Requests() {
		if strings.Contains(r.Path, "/manifests/") && (r.Auth != "Bearer" || r.Status != 200) {
			t.Errorf("%s %s: auth %q status %d, want the shared token accepted the first time", r.Method, r.Path, r.Auth, r.Status)
		}
	}

	reg.ResetRequests()
	mustOK(t, c.Check(context.Background(), qs))
	if n, h := reg.Count("GET", "/token"), manifestCalls(reg, "HEAD"); n != 0 || h != 40 || len(reg.Requests()) != 40 {
		t.Errorf("second cycle: %d tokens, %d HEADs, %d requests; want 0, 40, 40", n, h, len(reg.Requests()))
	}

	reg.ResetRequests()
	tags, err := c.Tags(context.Background(), reg.Ref("app07", "v1"))
	if err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("Tags with the shared token = %v, %v; want [v1]", tags, err)
	}
	for _, r := range reg.Requests() {
		if r.Path != "/v2/app07/tags/list" || r.Auth != "Bearer" || r.Status != 200 {
			t.Errorf("listing: %s %s auth %q status %d, want only the tag list, with the shared token", r.Method, r.Path, r.Auth, r.Status)
		}
	}
}

// A registry that refuses one repository with the shared token (it granted the others): that
// repository, and only it, asks for a token of its own, is refused again and is failure.Unauthorized.
func TestOneRepositoryRefused(t *testing.T) {
	reg := testenv.NewRegistry(t)
	qs := pushRepos(t, reg, 40)
	reg.RequireToken("", "")
	reg.AddFault(testenv.Fault{Path: "/v2/app07/manifests/", Status: 401, Code: "UNAUTHORIZED"})
	reg.ResetRequests()

	c := newChecker(Options{})
	for cycle := 1; cycle <= 2; cycle++ {
		rs := c.Check(context.Background(), qs)
		for i, r := range rs {
			switch {
			case i == 7 && (r.Reason != failure.Unauthorized || !strings.Contains(r.Message, "401")):
				t.Errorf("cycle %d: %s: Reason = %q (%s), want failure.Unauthorized naming 401", cycle, r.Ref, r.Reason, r.Message)
			case i != 7 && (r.Reason != "" || r.UpdateAvailable):
				t.Errorf("cycle %d: %s: Reason = %q (%s), update %t; want an unchanged image", cycle, r.Ref, r.Reason, r.Message, r.UpdateAvailable)
			}
		}
		// Cycle 1: the shared token, then app07's own. Cycle 2: the others keep the shared token;
		// app07 (whose refusal dropped its transport) asks for its own again.
		toks := tokenRequests(t, reg)
		want := [][]string{{"repository:app07:pull"}}
		if cycle == 1 && len(toks) == 2 {
			want = [][]string{toks[0], {"repository:app07:pull"}}
			if len(toks[0]) != 40 {
				t.Errorf("cycle 1: first token request has %d scopes, want 40", len(toks[0]))
			}
		}
		if fmt.Sprint(toks) != fmt.Sprint(want) {
			t.Errorf("cycle %d: token requests %v, want %v", cycle, toks, want)
		}
		wantHeads := map[int]int{1: 2, 2: 1}[cycle] // cycle 1: with the shared token and with its own
		if n := reg.Count("HEAD", "/v2/app07/manifests/"); n != wantHeads {
			t.Errorf("cycle %d: app07 HEADs = %d, want %d", cycle, n, wantHeads)
		}
		if n := manifestCalls(reg, "HEAD"); n != 39+wantHeads {
			t.Errorf("cycle %d: HEADs = %d, want %d", cycle, n, 39+wantHeads)
		}
		reg.ResetRequests()
	}
}

// tokenEndpoint stands between a Checker and the test registry's token endpoint: it counts token
// requests by their scopes, refuses every one asking for the deny scope (403 DENIED, as a token
// server does that refuses a whole request for one scope it will not grant) and can shorten the
// tokens' lives.
type tokenEndpoint struct {
	next      http.RoundTripper
	deny      string // scope refused
	expiresIn int    // > 0: rewrite expires_in to this

	mu       sync.Mutex
	requests [][]string // scopes of every token request, refused ones included
}

func (e *tokenEndpoint) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/token" {
		return e.next.RoundTrip(req)
	}
	scopes := req.URL.Query()["scope"]
	e.mu.Lock()
	e.requests = append(e.requests, scopes)
	e.mu.Unlock()
	if e.deny != "" && slices.Contains(scopes, e.deny) {
		return &http.Response{
			StatusCode: http.StatusForbidden,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)),
			Request:    req,
		}, nil
	}
	resp, err := e.next.RoundTrip(req)
	if err != nil || e.expiresIn == 0 || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	var tok map[string]any
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	tok["expires_in"] = e.expiresIn
	body, _ := json.Marshal(tok)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// take returns the token requests seen since the last call, their scopes sorted.
func (e *tokenEndpoint) take() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.requests
	e.requests = nil
	for _, s := range out {
		slices.Sort(s)
	}
	slices.SortFunc(out, func(a, b []string) int { return cmp.Compare(len(b), len(a)) })
	return out
}

// A token endpoint that refuses a whole request because of one repository: every repository of it
// asks for its own token; only the refused one is failure.Unauthorized. From then on it is asked for
// alone and the others together again (here when their short-lived tokens are renewed).
func TestBatchRefusedByTokenEndpoint(t *testing.T) {
	reg := testenv.NewRegistry(t)
	qs := pushRepos(t, reg, 40)
	reg.RequireToken("", "")
	te := &tokenEndpoint{next: http.DefaultTransport, deny: "repository:app07:pull", expiresIn: 2}
	c := newChecker(Options{Transport: te})

	check := func(cycle int) {
		t.Helper()
		for i, r := range c.Check(context.Background(), qs) {
			switch {
			case i == 7 && (r.Reason != failure.Unauthorized || !strings.Contains(r.Message, "403")):
				t.Errorf("cycle %d: %s: Reason = %q (%s), want failure.Unauthorized naming 403", cycle, r.Ref, r.Reason, r.Message)
			case i != 7 && r.Reason != "":
				t.Errorf("cycle %d: %s: Reason = %q (%s), want success", cycle, r.Ref, r.Reason, r.Message)
			}
		}
	}
	check(1)
	toks := te.take()
	if len(toks) != 41 || len(toks[0]) != 40 {
		t.Fatalf("cycle 1: %d token requests, the first with %d scopes; want 41: the 40 together, then each alone", len(toks), len(toks[0]))
	}
	for _, s := range toks[1:] {
		if len(s) != 1 {
			t.Errorf("cycle 1: a retry asked for %v, want one scope", s)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the tokens (2s) are renewed half-way through their life
	check(2)
	toks = te.take()
	if len(toks) != 2 || len(toks[0]) != 39 || fmt.Sprint(toks[1]) != "[repository:app07:pull]" {
		t.Errorf("cycle 2: token requests %v, want one for the 39 granted repositories and app07's alone", toks)
	}
}

// Tokens are renewed before they run out, one request for all the repositories sharing them.
func TestSharedTokenRenewedTogether(t *testing.T) {
	reg := testenv.NewRegistry(t)
	qs := pushRepos(t, reg, 40)
	reg.RequireToken("", "")
	te := &tokenEndpoint{next: http.DefaultTransport, expiresIn: 2}
	c := newChecker(Options{Transport: te})
	for _, step := range []struct {
		wait   time.Duration
		tokens int
	}{{0, 1}, {0, 0}, {1100 * time.Millisecond, 1}, {0, 0}} {
		time.Sleep(step.wait)
		reg.ResetRequests()
		mustOK(t, c.Check(context.Background(), qs))
		toks := te.take()
		if len(toks) != step.tokens || (step.tokens == 1 && len(toks[0]) != 40) {
			t.Errorf("after %s: token requests %v, want %d for all 40", step.wait, toks, step.tokens)
		}
		for _, r := range reg.Requests() {
			if strings.Contains(r.Path, "/manifests/") && r.Status != 200 {
				t.Errorf("after %s: %s %s: status %d, want the token renewed before it ran out", step.wait, r.Method, r.Path, r.Status)
			}
		}
	}
}

// More repositories than one token request carries: one request per maxScopesPerToken.
func TestTokenRequestsAreCapped(t *testing.T) {
	reg := testenv.NewRegistry(t)
	qs := pushRepos(t, reg, 2*maxScopesPerToken+20)
	reg.RequireToken("", "")
	reg.ResetRequests()
	mustOK(t, newChecker(Options{}).Check(context.Background(), qs))
	var sizes []int
	seen := map[string]bool{}
	for _, s := range tokenRequests(t, reg) {
		sizes = append(sizes, len(s))
		for _, sc := range s {
			if seen[sc] {
				t.Errorf("scope %s asked for twice", sc)
			}
			seen[sc] = true
		}
	}
	slices.Sort(sizes)
	if fmt.Sprint(sizes) != fmt.Sprint([]int{20, maxScopesPerToken, maxScopesPerToken}) {
		t.Errorf("token requests carried %v scopes, want [20 %d %d]", sizes, maxScopesPerToken, maxScopesPerToken)
	}
	if n := manifestCalls(reg, "HEAD"); n != len(qs) {
		t.Errorf("HEADs = %d, want %d", n, len(qs))
	}
}
