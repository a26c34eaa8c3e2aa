package updater

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/failure"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/internal/testenv"
	"github.com/watcher-dev/watcher/registry"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		tag     string
		prefix  string
		nums    []uint64
		pre     string
		variant string
		err     string // in the error; "" = parses
	}{
		{tag: "1.2.3", nums: []uint64{1, 2, 3}},
		{tag: "v1.2.3", prefix: "v", nums: []uint64{1, 2, 3}},
		{tag: "release-2.0", prefix: "release-", nums: []uint64{2, 0}},
		{tag: "16", nums: []uint64{16}},
		{tag: "1.2", nums: []uint64{1, 2}},
		{tag: "1.2.3.4", nums: []uint64{1, 2, 3, 4}},
		{tag: "2024.01.05", nums: []uint64{2024, 1, 5}},
		{tag: "1.2.3-alpine", nums: []uint64{1, 2, 3}, variant: "-alpine"},
		{tag: "1.2.3-alpine3.19", nums: []uint64{1, 2, 3}, variant: "-alpine3.19"},
		{tag: "8.2-fpm-bookworm", nums: []uint64{8, 2}, variant: "-fpm-bookworm"},
		{tag: "1.2.3-rc1", nums: []uint64{1, 2, 3}, pre: "rc1"},
		{tag: "1.2.3-RC.2", nums: []uint64{1, 2, 3}, pre: "RC.2"},
		{tag: "1.2.3rc1", nums: []uint64{1, 2, 3}, pre: "rc1"},
		{tag: "1.2.3-beta.2-alpine", nums: []uint64{1, 2, 3}, pre: "beta.2", variant: "-alpine"},
		{tag: "1.2.3-alpine-rc1", nums: []uint64{1, 2, 3}, pre: "rc1", variant: "-alpine"},
		{tag: "3.12.0a4", nums: []uint64{3, 12, 0}, pre: "a4"},
		{tag: "1.0.0-dev", nums: []uint64{1, 0, 0}, pre: "dev"},
		{tag: "1.0.0-debian", nums: []uint64{1, 0, 0}, variant: "-debian"},
		{tag: "5.3.1.RELEASE", nums: []uint64{5, 3, 1}, variant: ".RELEASE"},
		{tag: "latest", err: "no version number"},
		{tag: "main", err: "no version number"},
		{tag: "1.2.3.4.5", err: "5 numbers"},
		{tag: "1234567890123456789012", err: "too long"},
	}
	for _, tt := range tests {
		v, err := parseVersion(tt.tag)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseVersion(%q) = %+v, %v; want an error about %q", tt.tag, v, err, tt.err)
			}
			continue
		}
		if err != nil || v.prefix != tt.prefix || !slices.Equal(v.nums, tt.nums) || v.pre != tt.pre || v.variant != tt.variant {
			t.Errorf("parseVersion(%q) = prefix %q nums %v pre %q variant %q, %v; want %q %v %q %q",
				tt.tag, v.prefix, v.nums, v.pre, v.variant, err, tt.prefix, tt.nums, tt.pre, tt.variant)
		}
	}
}

func TestSemverPre(t *testing.T) {
	for in, want := range map[string]string{"rc1": "rc.1", "RC.2": "rc.2", "rc01": "rc.1", "a4": "a.4", "dev": "dev", "rc_3": "rc.3", "rc.0": "rc.0"} {
		if got := semverPre(in); got != want {
			t.Errorf("semverPre(%q) = %q, want %q", in, got, want)
		}
	}
	// rc10 is after rc9, as people mean (semver alone would order "rc10" < "rc9").
	a, _ := parseVersion("1.0.0-rc9")
	b, _ := parseVersion("1.0.0-rc10")
	if a.compare(b) >= 0 {
		t.Errorf("compare(1.0.0-rc9, 1.0.0-rc10) = %d, want < 0", a.compare(b))
	}
}

func TestCandidates(t *testing.T) {
	tags := strings.Fields(`
		latest stable main 1 1.0 1.1 2.0 sha-3f2a1b 20240105
		1.0.0 1.0.1 1.0.2 1.0.10 1.1.0 1.2.0 2.0.0 2.1.0 3.0.0-rc1 1.0.11-rc1 1.1.0-beta.1
		v1.0.3 v1.5.0 v2.0.0
		1.0.1-alpine 1.0.5-alpine 1.3.0-alpine 1.0.6-rc1-alpine 1.0.4-alpine3.19
		1.0.0.1 1.0.0.9 1.0.1.0 1.1.0.0 1.0.0.10-rc1
		1.0.0-rc1 1.0.0-rc2 1.0.0-rc10
		1.2.3.4.5 v 1.0.x`)
	re := regexp.MustCompile
	tests := []struct {
		cur, policy      string
		include, exclude *regexp.Regexp
		want             string // newest first
	}{
		{cur: "1.0.0", policy: PolicyPatch, want: "1.0.10 1.0.2 1.0.1"},
		{cur: "1.0.0", policy: PolicyMinor, want: "1.2.0 1.1.0 1.0.10 1.0.2 1.0.1"},
		{cur: "1.0.0", policy: PolicyMajor, want: "2.1.0 2.0.0 1.2.0 1.1.0 1.0.10 1.0.2 1.0.1"},
		{cur: "1.0.10", policy: PolicyPatch, want: ""},
		{cur: "2.1.0", policy: PolicyMajor, want: ""},
		// pre-releases only from a pre-release
		{cur: "1.0.0-rc1", policy: PolicyPatch, want: "1.0.11-rc1 1.0.10 1.0.2 1.0.1 1.0.0 1.0.0-rc10 1.0.0-rc2"},
		{cur: "1.0.0-rc1", policy: PolicyMajor, want: "3.0.0-rc1 2.1.0 2.0.0 1.2.0 1.1.0 1.1.0-beta.1 1.0.11-rc1 1.0.10 1.0.2 1.0.1 1.0.0 1.0.0-rc10 1.0.0-rc2"},
		// prefix
		{cur: "v1.0.0", policy: PolicyMinor, want: "v1.5.0 v1.0.3"},
		{cur: "v1.0.0", policy: PolicyMajor, want: "v2.0.0 v1.5.0 v1.0.3"},
		// suffix: the same variant only (alpine3.19 is another)
		{cur: "1.0.1-alpine", policy: PolicyPatch, want: "1.0.5-alpine"},
		{cur: "1.0.1-alpine", policy: PolicyMinor, want: "1.3.0-alpine 1.0.5-alpine"},
		{cur: "1.0.5-rc1-alpine", policy: PolicyPatch, want: "1.0.6-rc1-alpine 1.0.5-alpine"},
		// two parts: patch has nothing to move within 1.0; minor and major do
		{cur: "1.0", policy: PolicyPatch, want: ""},
		{cur: "1.0", policy: PolicyMinor, want: "1.1"},
		{cur: "1.0", policy: PolicyMajor, want: "2.0 1.1"},
		// one part
		{cur: "1", policy: PolicyMinor, want: ""},
		{cur: "1", policy: PolicyMajor, want: "20240105"},
		// four parts: patch keeps the first two
		{cur: "1.0.0.1", policy: PolicyPatch, want: "1.0.1.0 1.0.0.9"},
		{cur: "1.0.0.1", policy: PolicyMinor, want: "1.1.0.0 1.0.1.0 1.0.0.9"},
		// include / exclude
		{cur: "1.0.0", policy: PolicyMinor, include: re(`^1\.0\.`), want: "1.0.10 1.0.2 1.0.1"},
		{cur: "1.0.0", policy: PolicyMinor, exclude: re(`^1\.0\.1`), want: "1.2.0 1.1.0 1.0.2"},
		{cur: "1.0.0", policy: PolicyMajor, include: re(`^1\.`), exclude: re(`\.0$`), want: "1.0.10 1.0.2 1.0.1"},
		{cur: "1.0.0", policy: PolicyMajor, include: re(`^9`), want: ""},
	}
	for _, tt := range tests {
		cur, err := parseVersion(tt.cur)
		if err != nil {
			t.Fatalf("parseVersion(%q): %v", tt.cur, err)
		}
		var got []string
		for _, v := range candidates(cur, tags, tt.policy, tt.include, tt.exclude) {
			got = append(got, v.tag)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("candidates(%s, %s, include %v, exclude %v) = %q, want %q", tt.cur, tt.policy, tt.include, tt.exclude, strings.Join(got, " "), tt.want)
		}
	}
}

func TestRetag(t *testing.T) {
	for _, tt := range [][3]string{
		{"app:1.0.0", "1.0.1", "app:1.0.1"},
		{"127.0.0.1:5000/app:1.0.0", "1.0.1", "127.0.0.1:5000/app:1.0.1"},
		{"127.0.0.1:5000/app", "1.0.1", "127.0.0.1:5000/app:1.0.1"},
		{"docker.io/library/nginx:1.25-alpine", "1.26-alpine", "docker.io/library/nginx:1.26-alpine"},
	} {
		if got := retag(tt[0], tt[1]); got != tt[2] {
			t.Errorf("retag(%q, %q) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
}

func TestTooYoung(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		created time.Time
		want    string
	}{
		{now.Add(-48 * time.Hour), ""},
		{now.Add(-24 * time.Hour), ""},
		{now.Add(-2 * time.Hour), "age 2h0m0s, min-age 24h0m0s"},
		{now.Add(time.Hour), "age 0s, min-age 24h0m0s"}, // clock skew: not yet old at all
		{time.Time{}, "age unknown"},
		{time.Unix(0, 0), "age unknown"},
	}
	for _, tt := range tests {
		if got := tooYoung(tt.created, 24*time.Hour, now); (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
			t.Errorf("tooYoung(%v) = %q, want %q", tt.created, got, tt.want)
		}
	}
}

// policyRig is the registry half of a cycle: a real registry.Checker against the in-process
// registry, and targets built as observe would build them. No engine is needed.
type policyRig struct {
	t   *testing.T
	reg *testenv.Registry
	u   *Updater
}

func newPolicyRig(t *testing.T) *policyRig {
	reg := testenv.NewRegistry(t)
	c := registry.New(registry.Options{Keychain: authn.NewMultiKeychain(), Backoff: time.Millisecond})
	u := New(nil, c, nil, nil, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &policyRig{t: t, reg: reg, u: u}
}

var policyImages = map[string]v1.Image{}

// image builds a test image once per test binary (building is the slow part of these tests, so
// tests share images "a" to "d"); created zero means now.
func (r *policyRig) image(version string, created time.Time) v1.Image {
	r.t.Helper()
	key := version + "@" + created.String()
	if img, ok := policyImages[key]; ok {
		return img
	}
	img := testenv.Image(r.t, testenv.ImageSpec{Version: version, Created: created})
	policyImages[key] = img
	return img
}

// tag points tags of repo at img.
func (r *policyRig) tag(repo string, img v1.Image, tags ...string) {
	r.t.Helper()
	r.reg.PushTags(r.t, repo, img, tags...)
}

// target is a container named name running img as repo:tag, with labels.
func (r *policyRig) target(name, repo, tag string, img v1.Image, labels map[string]string) *Container {
	r.t.Helper()
	d, _ := img.Digest()
	cfg, _ := img.ConfigName()
	s, err := ParseSettings(labels, Defaults{Mode: ModeUpdate})
	if err != nil {
		r.t.Fatal(err)
	}
	return &Container{Name: name, ID: name + "-id", Image: r.reg.Ref(repo, tag), ImageID: cfg.String(), State: "running", Settings: s, Watched: true,
		image: &imageInfo{RepoDigests: []string{r.reg.Host + "/" + repo + "@" + d.String()}}}
}

// check runs the tag-policy half of a cycle over ts, and plans what it found as a cycle would:
// it returns the report lines with the plan's holds (and, in a dry run, what would be done) and
// the candidates the plan updates.
func (r *policyRig) check(o planOptions, ts ...*Container) (map[string]*ContainerReport, []Candidate) {
	lines := map[string]*ContainerReport{}
	for _, t := range ts {
		lines[t.Name] = newLine(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cands := r.u.checkTagPolicies(ctx, ts, lines)
	plan := buildPlan(observed(ts...), cands, o)
	notePlan(plan, lines)
	if o.DryRun {
		reportDryRun(plan, lines)
	}
	var planned []Candidate
	for _, c := range cands {
		for _, g := range plan.Groups {
			if slices.ContainsFunc(g, func(s *Step) bool { return s.c == c.Container }) {
				planned = append(planned, c)
			}
		}
	}
	return lines, planned
}

func policy(p string, more ...string) map[string]string {
	l := map[string]string{LabelEnable: "true", LabelPolicy: p}
	for i := 0; i+1 < len(more); i += 2 {
		l[more[i]] = more[i+1]
	}
	return l
}

func candidateFor(cands []Candidate, name string) *Candidate {
	for i := range cands {
		if cands[i].Container.Name == name {
			return &cands[i]
		}
	}
	return nil
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Each policy against one repository's tags, with junk, prefixes, suffixes and pre-releases in
// it; containers sharing the repository share one listing and the HEADs of the tags they pick.
func TestTagPoliciesAgainstRegistry(t *testing.T) {
	r := newPolicyRig(t)
	v100, v101, v110, v200 := r.image("a", time.Time{}), r.image("b", time.Time{}), r.image("c", time.Time{}), r.image("d", time.Time{})
	r.tag("app", v100, "1.0.0", "latest", "v1.0.0", "1.0.0-alpine")
	r.tag("app", v101, "1.0.1", "v9.9.9", "1.0.9-alpine", "1.0.2-rc1", "sha-1234", "1.0.0.5", "1.0")
	r.tag("app", v110, "1.1.0")
	r.tag("app", v200, "2.0.0", "3.0.0-beta1")
	ref := func(tag string) string { return r.reg.Ref("app", tag) }

	targets := []*Container{
		r.target("patch", "app", "1.0.0", v100, policy(PolicyPatch)),
		r.target("minor", "app", "1.0.0", v100, policy(PolicyMinor)),
		r.target("major", "app", "1.0.0", v100, policy(PolicyMajor)),
		r.target("monitor", "app", "1.0.0", v100, policy(PolicyMinor, LabelMode, ModeMonitor)),
		r.target("excluded", "app", "1.0.0", v100, policy(PolicyMinor, LabelTagExclude, `^1\.`)),
		r.target("included", "app", "1.0.0", v100, policy(PolicyMajor, LabelTagInclude, `^1\.0\.`)),
		r.target("newest", "app", "1.1.0", v110, policy(PolicyMinor)),
		r.target("alpine", "app", "1.0.0-alpine", v100, policy(PolicyPatch)),
		r.target("prefixed", "app", "v1.0.0", v100, policy(PolicyMinor)),
		r.target("junk", "app", "latest", v100, policy(PolicyPatch)),
	}
	r.reg.ResetRequests()
	lines, cands := r.check(planOptions{}, targets...)

	want := map[string]struct {
		outcome  Outcome
		newImage string // on the candidate ("" = none, or a re-push)
		digest   string
	}{
		"patch":    {"", ref("1.0.1"), digestOf(t, v101)},
		"minor":    {"", ref("1.1.0"), digestOf(t, v110)},
		"major":    {"", ref("2.0.0"), digestOf(t, v200)},
		"included": {"", ref("1.0.1"), digestOf(t, v101)},
		"alpine":   {"", ref("1.0.9-alpine"), digestOf(t, v101)},
		"prefixed": {OutcomeUpToDate, "", ""}, // minor keeps v1: v9.9.9 is another major
		"monitor":  {OutcomeUpdateAvailable, "", ""},
		"excluded": {OutcomeUpToDate, "", ""},
		"newest":   {OutcomeUpToDate, "", ""},
		"junk":     {OutcomeSkipped, "", ""},
	}
	for _, tg := range targets {
		w := want[tg.Name]
		line, c := lines[tg.Name], candidateFor(cands, tg.Name)
		if w.newImage != "" {
			if c == nil || c.NewImage != w.newImage || c.NewDigest != w.digest || line.NewImage != w.newImage || line.NewDigest != w.digest {
				t.Errorf("%s: candidate %+v line %+v; want a move to %s (%s)", tg.Name, c, line, w.newImage, w.digest)
			}
			continue
		}
		if c != nil || line.Outcome != w.outcome {
			t.Errorf("%s: outcome %s (%s, %+v), candidate %+v; want %s and no candidate", tg.Name, line.Outcome, line.Message, line.Failure, c, w.outcome)
		}
	}
	if l := lines["monitor"]; l.NewImage != ref("1.1.0") || l.NewDigest != digestOf(t, v110) || !strings.Contains(l.Message, "tag 1.0.0 -> 1.1.0") {
		t.Errorf("monitor: %+v; want update_available to 1.1.0 naming both tags", l)
	}
	if l := lines["junk"]; l.Failure == nil || l.Failure.Reason != failure.InvalidReference || !strings.Contains(l.Message, `tag "latest" is not a version`) {
		t.Errorf("junk: %+v %+v; want skipped, InvalidReference, naming the tag", l, l.Failure)
	}
	if c := candidateFor(cands, "patch"); c == nil || c.Cause != "tag 1.0.0 -> 1.0.1" {
		t.Errorf("patch cause = %+v, want \"tag 1.0.0 -> 1.0.1\"", c)
	}
	if n := r.reg.Count("GET", "/tags/list"); n != 1 {
		t.Errorf("tag list GETs = %d, want 1 shared by %d containers", n, len(targets)-1)
	}
	// Distinct first tags: 1.0.1 (patch, included), 1.1.0 (minor, monitor), 2.0.0, 1.0.9-alpine,
	// and the containers' own tags where nothing newer is allowed (1.0.0, 1.1.0 already counted, v1.0.0).
	if n := r.reg.Count("HEAD", "/manifests/"); n != 6 {
		t.Errorf("manifest HEADs = %d, want 6 (one per distinct tag asked about)", n)
	}

	// A dry run plans the same update and reports it as what it would do.
	lines, cands = r.check(planOptions{DryRun: true}, r.target("dry", "app", "1.0.0", v100, policy(PolicyPatch)))
	if l := lines["dry"]; len(cands) != 1 || l.Outcome != OutcomeUpdateAvailable || l.NewImage != ref("1.0.1") || !strings.Contains(l.Message, "would update: tag 1.0.0 -> 1.0.1") {
		t.Errorf("dry run: %+v, %d candidates; want update_available to 1.0.1, planned", l, len(cands))
	}
}

// With no newer tag allowed, the container's own tag is still checked: a re-push is an update on
// the same reference, as under the digest policy. Two-part tags have no patch to move to.
func TestTagPolicyCatchesRepush(t *testing.T) {
	r := newPolicyRig(t)
	old, cur, next := r.image("a", time.Time{}), r.image("b", time.Time{}), r.image("c", time.Time{})
	r.tag("rep", old, "2.0")
	r.tag("rep", next, "2.1")
	tgPatch := r.target("patch", "rep", "2.0", old, policy(PolicyPatch))
	tgMinor := r.target("minor", "rep", "2.0", old, policy(PolicyMinor))
	r.tag("rep", cur, "2.0") // re-pushed
	lines, cands := r.check(planOptions{}, tgPatch, tgMinor)
	c := candidateFor(cands, "patch")
	if c == nil || c.NewImage != "" || c.NewDigest != digestOf(t, cur) || !strings.HasPrefix(c.Cause, "digest ") {
		t.Errorf("patch on re-pushed 2.0: %+v (line %+v); want an update of the same tag to %s", c, lines["patch"], digestOf(t, cur))
	}
	if c := candidateFor(cands, "minor"); c == nil || c.NewImage != r.reg.Ref("rep", "2.1") {
		t.Errorf("minor on 2.0: %+v; want a move to 2.1", c)
	}
}

// 1000+ tags over Link-paginated pages; one listing for the repository per cycle.
func TestTagPolicyPaginatedListing(t *testing.T) {
	r := newPolicyRig(t)
	run, other := r.image("a", time.Time{}), r.image("b", time.Time{})
	var tags []string
	for i := range 1050 {
		if tag := fmt.Sprintf("3.%d.%d", i/100, i%100); tag != "3.0.0" {
			tags = append(tags, tag)
		}
	}
	r.tag("big", run, "3.0.0")
	r.tag("big", other, tags...)
	r.reg.PageSize(100)
	r.reg.ResetRequests()
	lines, cands := r.check(planOptions{},
		r.target("patch", "big", "3.0.0", run, policy(PolicyPatch)),
		r.target("minor", "big", "3.0.0", run, policy(PolicyMinor)))
	if c := candidateFor(cands, "patch"); c == nil || c.NewImage != r.reg.Ref("big", "3.0.99") {
		t.Errorf("patch: %+v (%+v); want 3.0.99", c, lines["patch"])
	}
	if c := candidateFor(cands, "minor"); c == nil || c.NewImage != r.reg.Ref("big", "3.10.49") {
		t.Errorf("minor: %+v (%+v); want 3.10.49", c, lines["minor"])
	}
	if n := r.reg.Count("GET", "/tags/list"); n != 11 {
		t.Errorf("tag list GETs = %d, want 11 (1050 tags, 100 a page, one listing)", n)
	}
}

// min-age: the newest allowed tag too young falls back to the next older one old enough; with
// none old enough the container is skipped "too new (age …)".
func TestTagPolicyMinAge(t *testing.T) {
	r := newPolicyRig(t)
	now := time.Now()
	run := r.image("aged-1.0.0", now.Add(-30*24*time.Hour))
	mid := r.image("aged-1.0.1", now.Add(-48*time.Hour))
	young := r.image("aged-1.0.2", now.Add(-time.Hour))
	r.tag("aged", run, "1.0.0")
	r.tag("aged", mid, "1.0.1")
	r.tag("aged", young, "1.0.2")
	r.reg.ResetRequests()
	lines, cands := r.check(planOptions{},
		r.target("day", "aged", "1.0.0", run, policy(PolicyPatch, LabelMinAge, "24h")),
		r.target("week", "aged", "1.0.0", run, policy(PolicyPatch, LabelMinAge, "168h")),
		r.target("none", "aged", "1.0.0", run, policy(PolicyPatch)),
		r.target("hour", "aged", "1.0.0", run, policy(PolicyPatch, LabelMinAge, "30m")),
		r.target("monitor", "aged", "1.0.0", run, policy(PolicyPatch, LabelMinAge, "24h", LabelMode, ModeMonitor)))

	if c := candidateFor(cands, "day"); c == nil || c.NewImage != r.reg.Ref("aged", "1.0.1") || !strings.Contains(c.Cause, "1.0.2 is too new (age 1h") {
		t.Errorf("min-age 24h: %+v (%+v); want 1.0.1, saying 1.0.2 is too new", c, lines["day"])
	}
	if l := lines["week"]; candidateFor(cands, "week") != nil || l.Outcome != OutcomeSkipped || !strings.HasPrefix(l.Message, "too new (age 1h") || !strings.Contains(l.Message, "min-age 168h") || !strings.HasSuffix(l.Message, ": 1.0.2") {
		t.Errorf("min-age 168h: %+v; want skipped \"too new (age 1h…, min-age 168h…): 1.0.2\"", l)
	}
	if c := candidateFor(cands, "none"); c == nil || c.NewImage != r.reg.Ref("aged", "1.0.2") {
		t.Errorf("no min-age: %+v; want 1.0.2", c)
	}
	if c := candidateFor(cands, "hour"); c == nil || c.NewImage != r.reg.Ref("aged", "1.0.2") {
		t.Errorf("min-age 30m: %+v (%+v); want 1.0.2 (an hour old)", c, lines["hour"])
	}
	if l := lines["monitor"]; l.Outcome != OutcomeUpdateAvailable || l.NewImage != r.reg.Ref("aged", "1.0.1") {
		t.Errorf("monitor with min-age 24h: %+v; want update_available to 1.0.1", l)
	}
	// Config blobs are fetched for the tags min-age looked at, once each, however many asked.
	if n := r.reg.Count("GET", "/blobs/"); n != 2 {
		t.Errorf("config GETs = %d, want 2 (1.0.2 and 1.0.1)", n)
	}
}

// Registry failures land on the containers of the repository, classified; other repositories go on.
func TestTagPolicyListingFailure(t *testing.T) {
	r := newPolicyRig(t)
	img, next := r.image("a", time.Time{}), r.image("b", time.Time{})
	r.tag("denied", img, "1.0.0")
	r.tag("fine", img, "1.0.0")
	r.tag("fine", next, "1.0.1")
	r.reg.AddFault(testenv.Fault{Path: "/v2/denied/tags/list", Status: 403, Code: "DENIED"})
	lines, cands := r.check(planOptions{},
		r.target("denied", "denied", "1.0.0", img, policy(PolicyPatch)),
		r.target("fine", "fine", "1.0.0", img, policy(PolicyPatch)))
	if l := lines["denied"]; l.Outcome != OutcomeFailed || l.Failure == nil || l.Failure.Reason != failure.Unauthorized || !strings.Contains(l.Failure.Message, "listing tags") {
		t.Errorf("denied: %+v %+v; want failed Unauthorized while listing tags", l, l.Failure)
	}
	if len(cands) != 1 || cands[0].Container.Name != "fine" {
		t.Errorf("candidates = %+v, want only fine's", cands)
	}
}
