package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/watcher-dev/watcher/failure"
)

func TestClassify(t *testing.T) {
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "r.example", Path: "/v2/a/manifests/b"}}
	te := func(status int, codes ...transport.ErrorCode) error {
		e := &transport.Error{StatusCode: status, Request: req}
		for _, c := range codes {
			e.Errors = append(e.Errors, transport.Diagnostic{Code: c})
		}
		return fmt.Errorf("wrapped: %w", e)
	}
	tests := []struct {
		err   error
		want  failure.Reason
		retry bool
	}{
		{te(404), failure.ManifestUnknown, false},
		{te(404, transport.ManifestUnknownErrorCode), failure.ManifestUnknown, false},
		{te(400, transport.ManifestUnknownErrorCode), failure.ManifestUnknown, false},
		{te(400, transport.NameUnknownErrorCode), failure.ManifestUnknown, false},
		{te(401), failure.Unauthorized, false},
		{te(403), failure.Unauthorized, false},
		{te(400, transport.DeniedErrorCode), failure.Unauthorized, false},
		{te(400, transport.UnauthorizedErrorCode), failure.Unauthorized, false},
		{te(429), failure.RateLimited, false},
		{te(400, transport.TooManyRequestsErrorCode), failure.RateLimited, false},
		{te(400, transport.NameInvalidErrorCode), failure.InvalidReference, false},
		{te(408), failure.RegistryUnavailable, true},
		{te(500), failure.RegistryUnavailable, true},
		{te(503, transport.UnavailableErrorCode), failure.RegistryUnavailable, true},
		{te(599), failure.RegistryUnavailable, true},
		{te(418), failure.RegistryUnavailable, false},
		{&url.Error{Op: "Head", URL: "https://r.example", Err: io.EOF}, failure.RegistryUnavailable, true},
		{&url.Error{Op: "Head", URL: "https://r.example", Err: io.ErrUnexpectedEOF}, failure.RegistryUnavailable, true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, failure.RegistryUnavailable, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, failure.RegistryUnavailable, true},
		{&net.DNSError{Err: "no such host", Name: "r.example", IsNotFound: true}, failure.RegistryUnavailable, false},
		{&net.DNSError{Err: "timeout", Name: "r.example", IsTimeout: true}, failure.RegistryUnavailable, true},
		{context.DeadlineExceeded, failure.RegistryUnavailable, false},
		{&rateLimitedError{host: "r.example", until: time.Now()}, failure.RateLimited, false},
		{&credentialError{host: "r.example", err: errors.New("docker-credential-x: not found")}, failure.Unauthorized, false},
		{&insecureError{url: "http://10.0.0.1/v2/"}, failure.RegistryUnavailable, false},
		{&noDigestError{host: "index.docker.io", hub: true}, failure.RegistryUnavailable, false},
		{&attemptsError{err: te(503), n: 4}, failure.RegistryUnavailable, true},
	}
	for _, tt := range tests {
		got := classify(tt.err)
		if got.reason != tt.want || got.retry != tt.retry {
			t.Errorf("classify(%v) = %s retry %t, want %s retry %t", tt.err, got.reason, got.retry, tt.want, tt.retry)
		}
	}
}

func TestRetryAt(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const fallback = time.Minute
	tests := []struct {
		name   string
		header http.Header
		want   time.Time
	}{
		{"seconds", http.Header{"Retry-After": {"30"}}, now.Add(30 * time.Second)},
		{"zero", http.Header{"Retry-After": {"0"}}, now},
		{"date", http.Header{"Retry-After": {now.Add(2 * time.Hour).Format(http.TimeFormat)}}, now.Add(2 * time.Hour)},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, now},
		{"garbage falls through", http.Header{"Retry-After": {"soon"}}, now.Add(fallback)},
		{"Retry-After wins", http.Header{"Retry-After": {"10"}, "Ratelimit-Reset": {"99"}}, now.Add(10 * time.Second)},
		{"reset delta", http.Header{"Ratelimit-Reset": {"45"}}, now.Add(45 * time.Second)},
		{"reset unix time", http.Header{"Ratelimit-Reset": {fmt.Sprint(now.Add(5 * time.Minute).Unix())}}, now.Add(5 * time.Minute)},
		{"hub window", http.Header{"Ratelimit-Limit": {"100;w=21600"}, "Ratelimit-Remaining": {"0;w=21600"}}, now.Add(6 * time.Hour)},
		{"hub quota left", http.Header{"Ratelimit-Remaining": {"12;w=21600"}}, now.Add(fallback)},
		{"capped", http.Header{"Retry-After": {"999999999"}}, now.Add(maxRateLimitWait)},
		{"nothing", http.Header{}, now.Add(fallback)},
	}
	for _, tt := range tests {
		got, source := retryAt(tt.header, now, fallback)
		if !got.Equal(tt.want) || source == "" {
			t.Errorf("%s: retryAt(%v) = %v (%q), want %v", tt.name, tt.header, got, source, tt.want)
		}
	}
}

func TestPickManifest(t *testing.T) {
	d := func(os, arch, variant string) v1.Descriptor {
		h, _, _ := v1.SHA256(strings.NewReader(os + arch + variant))
		return v1.Descriptor{Digest: h, Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	attestation := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: "00"}, Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}
	noPlatform := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: "01"}}
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{noPlatform, attestation, d("linux", "amd64", ""), d("linux", "arm", "v6"), d("linux", "arm", "v7"), d("linux", "arm64", "v8"), d("windows", "amd64", "")}}
	tests := []struct {
		p    v1.Platform
		want v1.Descriptor
		ok   bool
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, d("linux", "amd64", ""), true},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, d("linux", "arm64", "v8"), true},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, d("linux", "arm64", "v8"), true},
		{v1.Platform{OS: "linux", Architecture: "arm"}, d("linux", "arm", "v7"), true},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, d("linux", "arm", "v6"), true},
		{v1.Platform{OS: "windows", Architecture: "amd64"}, d("windows", "amd64", ""), true},
		{v1.Platform{OS: "linux", Architecture: "s390x"}, v1.Descriptor{}, false},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}, v1.Descriptor{}, false},
	}
	for _, tt := range tests {
		got, ok := pickManifest(idx, tt.p)
		if ok != tt.ok || got.Digest != tt.want.Digest {
			t.Errorf("pickManifest(%s) = %s %t, want %s %t", tt.p.String(), got.Digest, ok, tt.want.Digest, tt.ok)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true}, {"127.3.2.1", true}, {"localhost", true}, {"localhost:5000", true},
		{"reg.localhost:443", true}, {"[::1]:5000", true}, {"10.0.0.1:5000", false}, {"192.168.1.2", false},
		{"registry.example.com", false}, {"localhost.example.com", false}, {"index.docker.io", false},
	} {
		if got := isLoopback(tt.host); got != tt.want {
			t.Errorf("isLoopback(%s) = %t, want %t", tt.host, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		"docker.io": "index.docker.io", "https://index.docker.io/v1/": "index.docker.io", "registry-1.docker.io": "index.docker.io",
		"GHCR.io": "ghcr.io", "http://127.0.0.1:5000/": "127.0.0.1:5000", " quay.io ": "quay.io",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	repo := func(s string) name.Repository {
		r, err := name.NewRepository(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const h = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	const h2 = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
	digests := []string{"nginx@" + h, "docker.io/library/nginx@" + h2, "ghcr.io/x/nginx@" + h, "garbage", "localhost:5000/app@" + h}
	for _, tt := range []struct {
		repo string
		want []string
	}{
		{"index.docker.io/library/nginx", []string{h, h2}},
		{"ghcr.io/x/nginx", []string{h}},
		{"localhost:5000/app", []string{h}},
		{"quay.io/nginx", nil},
	} {
		if got := localDigests(digests, repo(tt.repo)); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("localDigests(%s) = %v, want %v", tt.repo, got, tt.want)
		}
	}
}

// A Check parses each distinct reference and RepoDigest once, however many containers share it,
// and prepares every query as parsing it alone would.
func TestParserParsesEachStringOnce(t *testing.T) {
	const h = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	ps := newParser()
	for i := range 200 {
		q := Query{Ref: fmt.Sprintf("127.0.0.1:5000/app%02d:v1", i%40), RepoDigests: []string{fmt.Sprintf("127.0.0.1:5000/app%02d@%s", i%40, h), "garbage"}}
		pr, p, f := ps.prepare(q)
		if f != nil || pr.key != q.Ref || pr.repo != fmt.Sprintf("127.0.0.1:5000/app%02d", i%40) || fmt.Sprint(p.local) != "["+h+"]" {
			t.Fatalf("prepare(%+v) = %+v, %+v, %v", q, pr, p, f)
		}
	}
	if len(ps.refs) != 40 || len(ps.digests) != 41 {
		t.Errorf("parsed %d references and %d RepoDigests, want 40 and 41 (40 + garbage)", len(ps.refs), len(ps.digests))
	}
	for _, tt := range []struct {
		q    Query
		want string
	}{
		{Query{Ref: " "}, "empty"},
		{Query{Ref: "Bad Ref"}, "cannot parse"},
		{Query{Ref: "nginx@" + h}, "pinned by digest"},
		{Query{Ref: "nginx"}, "no RepoDigests"},
		{Query{Ref: "nginx", RepoDigests: []string{"ghcr.io/x/nginx@" + h}}, "no RepoDigest for index.docker.io/library/nginx"},
	} {
		for range 2 { // the second time from the parser's memory
			if _, _, f := ps.prepare(tt.q); f == nil || f.reason != failure.InvalidReference || !strings.Contains(f.msg, tt.want) {
				t.Errorf("prepare(%q) = %+v, want failure.InvalidReference %q", tt.q.Ref, f, tt.want)
			}
		}
	}
}

// The bearer transport sends its token to its registry only (not to blob storage a redirect
// points at), and leaves the caller's request as it was.
func TestBearerOnlyToItsRegistry(t *testing.T) {
	var got []string
	b := &bearer{host: "registry.example.com", token: "tok", next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.URL.String()+" "+r.Header.Get("Authorization"))
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})}
	for _, u := range []string{"https://registry.example.com/v2/", "https://Registry.Example.com:443/v2/", "https://storage.example.com/blob", "https://registry.example.com:5000/v2/", "http://127.0.0.1:80/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := b.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Errorf("%s: the caller's request was changed", u)
		}
	}
	want := []string{
		"https://registry.example.com/v2/ Bearer tok",
		"https://Registry.Example.com:443/v2/ Bearer tok",
		"https://storage.example.com/blob ",
		"https://registry.example.com:5000/v2/ ",
		"http://127.0.0.1:80/v2/ ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The meter fixes schemes: loopback registries are spoken to over plain HTTP, all others only
// over https, whatever go-containerregistry's ping or a redirect asks for.
func TestMeterSchemes(t *testing.T) {
	var sent []string
	m := &meter{
		next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = append(sent, r.URL.String())
			return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
		}),
		limits: &hostLimits{until: map[string]time.Time{}},
		now:    time.Now,
	}
	tests := []struct {
		url, sent string
		refused   bool
	}{
		{"https://127.0.0.5:5000/v2/", "http://127.0.0.5:5000/v2/", false},
		{"https://localhost:5000/v2/", "http://localhost:5000/v2/", false},
		{"http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/", false},
		{"https://10.0.0.1:5000/v2/", "https://10.0.0.1:5000/v2/", false},
		{"http://10.0.0.1:5000/v2/", "", true},
		{"http://registry.example.com/v2/", "", true},
	}
	for _, tt := range tests {
		sent = nil
		req, _ := http.NewRequest("GET", tt.url, nil)
		_, err := m.RoundTrip(req)
		var ie *insecureError
		if tt.refused != errors.As(err, &ie) || (!tt.refused && (len(sent) != 1 || sent[0] != tt.sent)) || (tt.refused && len(sent) != 0) {
			t.Errorf("RoundTrip(%s): err %v, sent %v; want refused %t, sent %q", tt.url, err, sent, tt.refused, tt.sent)
		}
	}
}

func TestOptionDefaults(t *testing.T) {
	c := New(Options{Retries: -1})
	o := c.o
	if o.Concurrency != 16 || o.PerHost != 8 || o.Timeout != 15*time.Second || o.Retries != 0 || o.Backoff != 250*time.Millisecond || o.Keychain == nil || o.Transport == nil || o.Now == nil {
		t.Errorf("defaults = %+v", o)
	}
	if New(Options{}).o.Retries != 3 {
		t.Errorf("default Retries = %d, want 3", New(Options{}).o.Retries)
	}
	if tr, ok := o.Transport.(*http.Transport); !ok || tr == http.DefaultTransport || tr.MaxIdleConnsPerHost != 8 {
		t.Errorf("default Transport = %T, want a clone of http.DefaultTransport keeping PerHost idle connections", o.Transport)
	}
}
