package registry

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/internal/testenv"
)

func TestUnchangedIsOneHeadPerReference(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "latest", "v1")
	reg.ResetRequests()

	// 50 containers, three spellings of app:latest and one of app:v1.
	var qs []Query
	for i := range 50 {
		q := pulled(reg, "app", "latest", d)
		switch i % 4 {
		case 1:
			q.Ref = reg.Host + "/app"
		case 2:
			q.Ref = reg.Host + "/app:v1"
		}
		qs = append(qs, q)
	}
	var local []string
	for _, q := range qs {
		local = append(local, q.RepoDigests...)
	}
	c := newChecker(Options{})
	rs := c.Check(context.Background(), qs)
	mustOK(t, rs)
	if len(rs) != len(qs) {
		t.Fatalf("len(Check) = %d, want %d", len(rs), len(qs))
	}
	for i, r := range rs {
		if r.UpdateAvailable || r.Digest != d.String() || r.LocalDigest != d.String() || r.Ref != qs[i].Ref || r.Repo != reg.Host+"/app" {
			t.Fatalf("result %d = %+v, want up to date at %s", i, r, d)
		}
		// The daemon keeps its last runs' reports: an up-to-date answer is the text of a local
		// RepoDigest (equal ones are parsed once a Check), not a copy per container and run.
		if !within(r.Digest, local) || !within(r.LocalDigest, local) {
			t.Fatalf("result %d: the digests are copies, not the queries' RepoDigest text", i)
		}
	}
	if got := manifestCalls(reg, "HEAD"); got != 2 {
		t.Errorf("HEADs = %d, want 2 (app:latest and app:v1)", got)
	}
	if got := manifestCalls(reg, "GET"); got != 0 {
		t.Errorf("manifest GETs = %d, want 0", got)
	}
}

// within reports whether s's bytes lie inside one of texts' (a substring, not a copy).
func within(s string, texts []string) bool {
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	for _, t := range texts {
		q := uintptr(unsafe.Pointer(unsafe.StringData(t)))
		if p >= q && p+uintptr(len(s)) <= q+uintptr(len(t)) {
			return true
		}
	}
	return false
}

func TestPlainManifestMovedIsUpdate(t *testing.T) {
	reg := testenv.NewRegistry(t)
	old := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "stable")
	cur := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v2"}, "stable")
	reg.ResetRequests()

	rs := newChecker(Options{}).Check(context.Background(), []Query{pulled(reg, "app", "stable", old)})
	mustOK(t, rs)
	r := rs[0]
	if !r.UpdateAvailable || r.Digest != cur.String() || r.LocalDigest != old.String() || r.PlatformDigest != "" {
		t.Fatalf("Check = %+v, want update %s -> %s", r, old, cur)
	}
	if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 0 {
		t.Errorf("HEAD, GET = %d, %d, want 1, 0", h, g)
	}
	if r.Requests != len(reg.Requests()) {
		t.Errorf("Requests = %d, registry saw %d", r.Requests, len(reg.Requests()))
	}
}

func TestNothingToCompareIsInvalidReferenceWithoutRequest(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	reg.ResetRequests()

	tests := []struct {
		name string
		q    Query
		want string // in the message
	}{
		{"locally built", Query{Ref: reg.Ref("app", "v1")}, "no RepoDigests"},
		{"other repository", Query{Ref: reg.Ref("app", "v1"), RepoDigests: []string{reg.Host + "/other@" + d.String()}}, "no RepoDigest for"},
		{"digest pinned", Query{Ref: reg.Host + "/app@" + d.String(), RepoDigests: []string{reg.Host + "/app@" + d.String()}}, "pinned by digest"},
		{"tag and digest", Query{Ref: reg.Host + "/app:v1@" + d.String(), RepoDigests: []string{reg.Host + "/app@" + d.String()}}, "pinned by digest"},
		{"unparseable", Query{Ref: "Not A Reference!"}, "cannot parse"},
		{"empty", Query{}, "empty"},
	}
	qs := make([]Query, len(tests))
	for i, tt := range tests {
		qs[i] = tt.q
	}
	rs := newChecker(Options{}).Check(context.Background(), qs)
	for i, tt := range tests {
		r := rs[i]
		if r.Reason != failure.InvalidReference || r.UpdateAvailable || !strings.Contains(r.Message, tt.want) {
			t.Errorf("%s: Check = %s %q (update %t), want failure.InvalidReference mentioning %q", tt.name, r.Reason, r.Message, r.UpdateAvailable, tt.want)
		}
		var e *Error
		if err := r.Err(); !errors.As(err, &e) || e.Reason != failure.InvalidReference {
			t.Errorf("%s: Err() = %v, want *Error with failure.InvalidReference", tt.name, err)
		}
	}
	if n := len(reg.Requests()); n != 0 {
		t.Errorf("registry saw %d requests, want 0", n)
	}
}

// platformImages builds amd64 and arm64 images for an index; version changes the arm64 one only
// when armVersion differs.
func platformImage(t *testing.T, arch, version string) testenv.PlatformImage {
	p := v1.Platform{OS: "linux", Architecture: arch}
	return testenv.PlatformImage{Platform: p, Image: cachedImage(t, testenv.ImageSpec{Version: version, Platform: &p})}
}

func TestIndexOnlyOtherPlatformChanged(t *testing.T) {
	reg := testenv.NewRegistry(t)
	amd1, arm1 := platformImage(t, "amd64", "v1"), platformImage(t, "arm64", "v1")
	arm2 := platformImage(t, "arm64", "v2")
	_, idx1 := reg.PushIndex(t, "multi", "latest", amd1, arm1)
	_, idx2 := reg.PushIndex(t, "multi", "latest", amd1, arm2) // arm64 rebuilt, amd64 untouched
	reg.ResetRequests()

	local := []string{reg.Host + "/multi@" + idx1.String()}
	ref := reg.Ref("multi", "latest")
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	qs := []Query{
		// classic store: image ID = config digest
		{Ref: ref, Platform: amd64, RepoDigests: local, ImageID: configDigest(t, amd1.Image)},
		{Ref: ref, Platform: amd64, RepoDigests: local, ImageID: configDigest(t, amd1.Image)}, // same answer, cached GET
		{Ref: ref, Platform: arm64, RepoDigests: local, ImageID: configDigest(t, arm1.Image)},
		// platform manifest digest among RepoDigests: no manifest GET needed
		{Ref: ref, Platform: amd64, RepoDigests: append([]string{reg.Host + "/multi@" + manifestDigest(t, amd1.Image).String()}, local...)},
		// containerd store: the engine reports the container's manifest digest
		{Ref: ref, Platform: amd64, RepoDigests: local, ImageID: idx1.String(), ManifestDigest: manifestDigest(t, amd1.Image).String()},
		// nothing proves the platform unchanged: conservative
		{Ref: ref, Platform: amd64, RepoDigests: local},
		// the tag has no image for this platform any more
		{Ref: ref, Platform: v1.Platform{OS: "linux", Architecture: "s390x"}, RepoDigests: local, ImageID: "sha256:x"},
		// default platform is linux/GOARCH
		{Ref: ref, RepoDigests: local, ImageID: nativeConfig(t, amd1, arm2)},
	}
	c := newChecker(Options{})
	rs := c.Check(context.Background(), qs)

	want := []struct {
		update   bool
		reason   failure.Reason
		platform v1.Hash
	}{
		{false, "", manifestDigest(t, amd1.Image)},
		{false, "", manifestDigest(t, amd1.Image)},
		{true, "", manifestDigest(t, arm2.Image)},
		{false, "", manifestDigest(t, amd1.Image)},
		{false, "", manifestDigest(t, amd1.Image)},
		{true, "", manifestDigest(t, amd1.Image)},
		{false, failure.ManifestUnknown, v1.Hash{}},
	}
	for i, w := range want {
		r := rs[i]
		wp := ""
		if w.platform != (v1.Hash{}) {
			wp = w.platform.String()
		}
		if r.UpdateAvailable != w.update || r.Reason != w.reason || r.PlatformDigest != wp || r.Digest != idx2.String() && w.reason == "" {
			t.Errorf("query %d: update %t reason %q platform %s digest %s (%s), want update %t reason %q platform %s digest %s",
				i, r.UpdateAvailable, r.Reason, r.PlatformDigest, r.Digest, r.Message, w.update, w.reason, wp, idx2)
		}
	}
	if native, ok := map[string]testenv.PlatformImage{"amd64": amd1, "arm64": arm2}[runtime.GOARCH]; ok {
		if r := rs[7]; r.Reason != "" || r.UpdateAvailable || r.PlatformDigest != manifestDigest(t, native.Image).String() {
			t.Errorf("default platform: update %t reason %q platform %s, want linux/%s's %s unchanged", r.UpdateAvailable, r.Reason, r.PlatformDigest, runtime.GOARCH, manifestDigest(t, native.Image))
		}
	}
	if r := rs[6]; !strings.Contains(r.Message, "linux/s390x") {
		t.Errorf("missing platform message = %q, want it to name linux/s390x", r.Message)
	}

	if got := manifestCalls(reg, "HEAD"); got != 1 {
		t.Errorf("HEADs = %d, want 1 for all queries", got)
	}
	if got := reg.Count("GET", "/manifests/"+idx2.String()); got != 1 {
		t.Errorf("index GETs = %d, want 1", got)
	}
	if got := reg.Count("GET", "/manifests/"+manifestDigest(t, amd1.Image).String()); got != 1 {
		t.Errorf("amd64 manifest GETs = %d, want 1 (shared by the queries)", got)
	}
	if got := reg.Count("GET", "/manifests/"+manifestDigest(t, arm2.Image).String()); got != 1 {
		t.Errorf("arm64 manifest GETs = %d, want 1", got)
	}
	if got := reg.Count("GET", "/manifests/latest"); got != 0 {
		t.Errorf("GETs by tag = %d, want 0 (the index is fetched by digest)", got)
	}

	// The next cycle asks the same questions: what was fetched by digest is still known.
	reg.ResetRequests()
	again := c.Check(context.Background(), qs)
	for i := range again {
		if again[i].UpdateAvailable != rs[i].UpdateAvailable || again[i].Reason != rs[i].Reason || again[i].PlatformDigest != rs[i].PlatformDigest {
			t.Errorf("second Check, query %d = %+v, want as the first: %+v", i, again[i], rs[i])
		}
	}
	if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 0 {
		t.Errorf("second Check: HEAD, GET = %d, %d, want 1, 0", h, g)
	}
}

// nativeConfig is the config digest of the image for this machine's architecture, if any.
func nativeConfig(t *testing.T, imgs ...testenv.PlatformImage) string {
	for _, pi := range imgs {
		if pi.Platform.Architecture == runtime.GOARCH {
			return configDigest(t, pi.Image)
		}
	}
	return ""
}

func TestIndexUnchangedMakesNoGet(t *testing.T) {
	reg := testenv.NewRegistry(t)
	_, idx := reg.PushIndex(t, "multi", "latest", platformImage(t, "amd64", "v1"), platformImage(t, "arm64", "v1"))
	reg.ResetRequests()
	rs := newChecker(Options{}).Check(context.Background(), []Query{
		pulled(reg, "multi", "latest", idx),
		{Ref: reg.Ref("multi", "latest"), Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, RepoDigests: []string{reg.Host + "/multi@" + idx.String()}},
	})
	mustOK(t, rs)
	for _, r := range rs {
		if r.UpdateAvailable || r.Digest != idx.String() {
			t.Errorf("Check = %+v, want up to date at %s", r, idx)
		}
	}
	if h, g := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"); h != 1 || g != 0 {
		t.Errorf("HEAD, GET = %d, %d, want 1, 0", h, g)
	}
}

func TestLocalhostRegistryIsPlainHTTP(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "v1")
	port := reg.Host[strings.LastIndexByte(reg.Host, ':'):]
	ref := "localhost" + port + "/app:v1"
	rs := newChecker(Options{}).Check(context.Background(), []Query{{Ref: ref, RepoDigests: []string{"localhost" + port + "/app@" + d.String()}}})
	mustOK(t, rs)
	if rs[0].UpdateAvailable || rs[0].Repo != "localhost"+port+"/app" {
		t.Fatalf("Check = %+v", rs[0])
	}
}

// TestResolve: a query with nothing local to compare (Query.Resolve: a Swarm service whose spec
// pins no digest) is an update to the tag's digest, with one HEAD shared with the queries that
// name the same reference.
func TestResolve(t *testing.T) {
	reg := testenv.NewRegistry(t)
	d := pushTags(t, reg, "app", testenv.ImageSpec{Version: "v1"}, "latest")
	reg.ResetRequests()
	rs := newChecker(Options{}).Check(context.Background(), []Query{
		{Ref: reg.Host + "/app:latest", Resolve: true},
		pulled(reg, "app", "latest", d),
		{Ref: reg.Host + "/app:latest"},
	})
	if r := rs[0]; r.Reason != "" || !r.UpdateAvailable || r.Digest != d.String() || r.LocalDigest != "" {
		t.Errorf("Resolve = %+v, want an update to %s", r, d)
	}
	if r := rs[1]; r.Reason != "" || r.UpdateAvailable {
		t.Errorf("pulled = %+v, want up to date", r)
	}
	if r := rs[2]; r.Reason != failure.InvalidReference {
		t.Errorf("no RepoDigests, no Resolve = %+v, want InvalidReference", r)
	}
	if got := manifestCalls(reg, "HEAD"); got != 1 {
		t.Errorf("HEADs = %d, want 1", got)
	}
}
