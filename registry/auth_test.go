package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/pkg/authconfig"
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
		want Reason
	}{
		{"anonymous", Options{}, Unauthorized},
		{"keychain", Options{Keychain: &staticKeychain{auth: map[string]authn.Authenticator{reg.Host: authn.FromConfig(good)}}}, ""},
		{"wrong keychain", Options{Keychain: &staticKeychain{auth: map[string]authn.Authenticator{reg.Host: bad}}}, Unauthorized},
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
			if tt.want == Unauthorized && (!strings.Contains(r.Message, reg.Host) || !strings.Contains(r.Message, "401")) {
				t.Errorf("Message = %q, want host and status", r.Message)
			}
			if tt.want == "" && r.UpdateAvailable {
				t.Errorf("UpdateAvailable for an unchanged image")
			}
		})
	}
}

// After Unauthorized the cached transport is dropped, so credentials added later (docker login)
// are used by the next Check without a restart.
func TestUnauthorizedForgetsCredentials(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "private", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.RequireToken("alice", "s3cret")
	keys := &staticKeychain{}
	c := newChecker(Options{Keychain: keys})
	q := pulled(reg, "private", "v1", d)
	if r := c.Check(context.Background(), []Query{q})[0]; r.Reason != Unauthorized {
		t.Fatalf("before login: Reason = %q (%s), want Unauthorized", r.Reason, r.Message)
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
