package updater

// Tag policies. Under patch, minor and major a container moves to a newer tag of its repository,
// not only to a new digest of its own tag. Per cycle:
//
//  1. list the tags of each repository once, shared by every container that runs it;
//  2. read the container's tag as a version (version, below) and pick the tags of the same
//     shape the policy allows, newest first (candidates);
//  3. ask the registry about the newest one with the same Check the digest policy uses (one HEAD,
//     shared by the containers that picked that tag): if it is the image the container runs,
//     it is up to date; otherwise the container is recreated on repo:newtag, pulled by digest;
//  4. with no newer tag, check the container's own tag for a re-push, exactly as the digest
//     policy does, so a semver policy never leaves a container worse off than digest;
//  5. with watcher.min-age, read the chosen image's creation time and pass over images younger
//     than that (see walk for the fallback).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/watcher-dev/watcher/failure"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/registry"
)

// TagChecker is what semver policies need from a Checker besides Check: a repository's tags and
// an image's creation time. It is found on the Checker by type assertion; registry.Checker has
// it. With a Checker that lacks it, containers under semver policies are reported skipped.
type TagChecker interface {
	// Tags lists every tag of ref's repository (following pagination).
	Tags(ctx context.Context, ref string) ([]string, error)
	// Created is the creation time in the image config of ref (a tag or repo@digest) for platform.
	Created(ctx context.Context, ref string, platform v1.Platform) (time.Time, error)
}

var _ TagChecker = (*registry.Checker)(nil)

// minAgeSteps is how many older candidates min-age may fall back to when the newest allowed tag
// is too new, before trying the current tag itself (see walk).
const minAgeSteps = 3

// version is a tag read as a version: a prefix (anything before the first digit), one to four
// dot-separated numbers, an optional pre-release and a variant (what else follows the numbers).
//
//	v1.2.3             prefix "v", numbers 1 2 3
//	1.2.3-alpine       numbers 1 2 3, variant "-alpine"
//	1.2.3-rc.1-alpine  numbers 1 2 3, pre-release "rc.1", variant "-alpine"
//	16                 numbers 16
//
// A pre-release is a '-'-separated part of the rest that looks like one (rc1, beta.2, alpha,
// dev, preview, a1, ... see preRelease); everything else there is the variant. Tags compare only
// with tags of the same shape: same prefix, as many numbers, same variant. So 1.2 never moves to
// 1.2.4, 1.2.3 never to 1.2.4-alpine or v1.2.4, and 1.2.3-alpine3.19 not to 1.2.4-alpine3.20.
type version struct {
	tag     string
	prefix  string
	nums    []uint64
	pre     string
	variant string
	sv      *semver.Version // the first three numbers and the pre-release, as Masterminds reads them
}

// preRelease matches one '-'-separated part of a tag's rest that marks a pre-release.
var preRelease = regexp.MustCompile(`(?i)^((alpha|beta|rc|pre|preview|dev|snapshot|nightly|canary|next|milestone)(\.?\d+)*|(a|b|m)\d+(\.\d+)*)$`)

// parseVersion reads a tag as a version; the error says why it is not one.
func parseVersion(tag string) (version, error) {
	i := strings.IndexFunc(tag, isDigit)
	if i < 0 {
		return version{}, errors.New("it has no version number")
	}
	v := version{tag: tag, prefix: tag[:i]}
	rest := tag[i:]
	for {
		j := strings.IndexFunc(rest, func(r rune) bool { return !isDigit(r) })
		if j < 0 {
			j = len(rest)
		}
		if j > 18 {
			return version{}, fmt.Errorf("%q is too long a number for a version", rest[:j])
		}
		n, err := strconv.ParseUint(rest[:j], 10, 64)
		if err != nil {
			return version{}, err
		}
		v.nums = append(v.nums, n)
		rest = rest[j:]
		if len(rest) < 2 || rest[0] != '.' || !isDigit(rune(rest[1])) {
			break
		}
		rest = rest[1:]
	}
	if len(v.nums) > 4 {
		return version{}, fmt.Errorf("it has %d numbers; at most four are read as a version", len(v.nums))
	}
	lead, body := "", rest
	if body != "" && strings.ContainsRune("-._", rune(body[0])) {
		lead, body = body[:1], body[1:]
	}
	var keep []string
	if body != "" {
		for _, part := range strings.Split(body, "-") {
			if v.pre == "" && preRelease.MatchString(part) {
				v.pre = part
				continue
			}
			keep = append(keep, part)
		}
	}
	if len(keep) > 0 {
		v.variant = lead + strings.Join(keep, "-")
	}
	core := make([]uint64, 3)
	copy(core, v.nums)
	s := fmt.Sprintf("%d.%d.%d", core[0], core[1], core[2])
	if v.pre != "" {
		s += "-" + semverPre(v.pre)
	}
	sv, err := semver.StrictNewVersion(s)
	if err != nil {
		return version{}, fmt.Errorf("pre-release %q: %v", v.pre, err)
	}
	v.sv = sv
	return v, nil
}

// semverPre spells a tag's pre-release the way semver orders it: identifiers split at dots and
// at letter/digit boundaries, so rc10 > rc9 (rc.10 > rc.9) as people mean, and numbers without
// leading zeros.
func semverPre(pre string) string {
	var ids []string
	var cur []rune
	flush := func() {
		if len(cur) == 0 {
			return
		}
		id := string(cur)
		if isDigit(cur[0]) {
			if id = strings.TrimLeft(id, "0"); id == "" {
				id = "0"
			}
		}
		ids = append(ids, id)
		cur = cur[:0]
	}
	for _, r := range strings.ToLower(pre) {
		switch {
		case r == '.' || r == '_':
			flush()
		case len(cur) > 0 && isDigit(r) != isDigit(cur[len(cur)-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return strings.Join(ids, ".")
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// sameShape reports whether o is spelled like v: prefix, count of numbers, variant.
func (v version) sameShape(o version) bool {
	return v.prefix == o.prefix && len(v.nums) == len(o.nums) && v.variant == o.variant
}

// compare orders two versions of the same shape: by their numbers, then as semver orders
// pre-releases (a release above its pre-releases, rc.2 above rc.1).
func (v version) compare(o version) int {
	for i := range v.nums {
		if c := cmp.Compare(v.nums[i], o.nums[i]); c != 0 {
			return c
		}
	}
	return v.sv.Compare(o.sv)
}

// fixed is how many leading numbers a policy keeps: patch the first two (1.2.x, 1.2.x.y), minor
// the first one (1.x.y), major none. A tag with fewer numbers keeps them all: under patch, 1.2
// has nowhere to go but its own re-pushes.
func fixed(policy string) int {
	switch policy {
	case PolicyPatch:
		return 2
	case PolicyMinor:
		return 1
	}
	return 0
}

// candidates returns the tags cur may move to under policy, newest first: the same shape as
// cur, above it, the first fixed(policy) numbers unchanged, no pre-releases unless cur is one,
// matching include (when set) and not matching exclude (when set). Tags that are not versions are
// ignored. Equal versions spelled differently (1.02 and 1.2) keep a stable order by tag.
func candidates(cur version, tags []string, policy string, include, exclude *regexp.Regexp) []version {
	keep := min(fixed(policy), len(cur.nums))
	var out []version
	for _, tag := range tags {
		if tag == cur.tag {
			continue
		}
		v, err := parseVersion(tag)
		if err != nil || !cur.sameShape(v) || v.compare(cur) <= 0 {
			continue
		}
		if v.pre != "" && cur.pre == "" {
			continue
		}
		if !slices.Equal(v.nums[:keep], cur.nums[:keep]) {
			continue
		}
		if (include != nil && !include.MatchString(tag)) || (exclude != nil && exclude.MatchString(tag)) {
			continue
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b version) int {
		if c := b.compare(a); c != 0 {
			return c
		}
		return strings.Compare(b.tag, a.tag)
	})
	return out
}

// retag replaces the tag of an image reference as the container spells it ("app:1.0.0",
// "127.0.0.1:5000/app:1.0.0", "nginx"), keeping the rest of its spelling.
func retag(image, tag string) string {
	base := image
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		base = image[:i]
	}
	return base + ":" + tag
}

// tagWork is one container under a semver policy, through this cycle.
type tagWork struct {
	t        *Container
	line     *ContainerReport
	repo     string // normalised repository: the listing is shared by this key
	cur      version
	platform v1.Platform
	chain    []string // tags to try, newest first; the last is the container's own tag
}

func newTagWork(t *Container, line *ContainerReport) (*tagWork, error) {
	policy := t.Settings.Policy
	ref, err := name.ParseReference(t.Image, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("policy %s: cannot parse image reference %q: %v", policy, t.Image, err)
	}
	tag, ok := ref.(name.Tag)
	if !ok {
		return nil, fmt.Errorf("policy %s: %s is pinned by digest, so there is no tag to move", policy, t.Image)
	}
	cur, err := parseVersion(tag.TagStr())
	if err != nil {
		return nil, fmt.Errorf("policy %s: tag %q is not a version (%v); use watcher.policy=digest to follow it by digest", policy, tag.TagStr(), err)
	}
	return &tagWork{t: t, line: line, repo: ref.Context().Name(), cur: cur, platform: t.image.platform()}, nil
}

// ref is the reference for one of the repository's tags, spelled as the container spells its own.
func (w *tagWork) ref(tag string) string {
	if tag == w.cur.tag {
		return w.t.Image
	}
	return retag(w.t.Image, tag)
}

func (w *tagWork) query(tag string) registry.Query { return w.t.query(w.ref(tag)) }

// checkTagPolicies checks the targets under patch, minor and major, fills their report lines and
// returns the updates available. cycle has inspected their images; their lines start as failed.
func (u *Updater) checkTagPolicies(ctx context.Context, ts []*Container, lines map[string]*ContainerReport) []Candidate {
	tc, _ := u.checker.(TagChecker)
	var work []*tagWork
	for _, t := range ts {
		line := lines[t.key()]
		line.OldDigest = localDigest(t)
		if tc == nil {
			line.Outcome, line.Message = OutcomeSkipped, "policy "+t.Settings.Policy+" needs the registry's tag list, which this checker cannot give"
			continue
		}
		w, err := newTagWork(t, line)
		if err != nil {
			checkFailed(line, failure.InvalidReference, err.Error())
			continue
		}
		work = append(work, w)
	}
	if len(work) == 0 {
		return nil
	}

	lists := listTags(ctx, tc, work)
	var queries []registry.Query
	var queued []*tagWork
	for _, w := range work {
		l := lists[w.repo]
		if l.err != nil {
			reason, msg := registry.ReasonOf(l.err)
			checkFailed(w.line, reason, "listing tags: "+msg)
			continue
		}
		w.plotChain(l.tags)
		queries = append(queries, w.query(w.chain[0]))
		queued = append(queued, w)
	}

	// The first tag of every chain in one Check: containers that picked the same tag share a HEAD.
	results := u.checker.Check(ctx, queries)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		cands []Candidate
	)
	for i, w := range queued {
		wg.Go(func() {
			if c := u.walk(ctx, tc, w, results[i]); c != nil {
				mu.Lock()
				cands = append(cands, *c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(cands, func(a, b Candidate) int { return strings.Compare(a.Container.key(), b.Container.key()) })
	return cands
}

// listing is one repository's tags, listed once per cycle for all of its containers.
type listing struct {
	ref  string // a reference in the repository, to list it by
	tags []string
	err  error
}

// listTags lists the tags of every repository the work runs, concurrently, once each.
func listTags(ctx context.Context, tc TagChecker, work []*tagWork) map[string]*listing {
	lists := map[string]*listing{}
	for _, w := range work {
		if lists[w.repo] == nil {
			lists[w.repo] = &listing{ref: w.t.Image}
		}
	}
	var wg sync.WaitGroup
	for _, l := range lists {
		wg.Go(func() { l.tags, l.err = tc.Tags(ctx, l.ref) })
	}
	wg.Wait()
	return lists
}

// plotChain picks the tags w tries, newest first: the newest its policy allows (and, under
// min-age, up to minAgeSteps older ones to fall back to), then its own tag.
func (w *tagWork) plotChain(tags []string) {
	s := w.t.Settings
	n := 1
	if s.MinAge > 0 {
		n += minAgeSteps
	}
	for _, c := range candidates(w.cur, tags, s.Policy, s.TagInclude, s.TagExclude) {
		if len(w.chain) == n {
			break
		}
		w.chain = append(w.chain, c.tag)
	}
	w.chain = append(w.chain, w.cur.tag)
}

// walk goes down w.chain (res answers its first tag) and takes the first tag that is an update
// and, under min-age, old enough.
//
// min-age falls back: when the newest allowed tag is too new, the next older allowed ones are
// tried (at most minAgeSteps of them), then the container's own tag (a re-push). We chose this
// over skipping the container until the newest is old enough because a project that releases
// more often than min-age would otherwise never be followed at all; the cost is bounded (each
// step is a HEAD plus, the first time, a manifest and a config GET, cached by digest after that)
// and only paid while the newest tag is too new. The walk stops at the first tag that is the
// image the container runs: nothing older can be an update. When every tag tried is too new,
// the container is skipped with "too new (age …)" naming the newest; a later cycle takes it
// once it is old enough. A failure stops the walk: the container is reported failed, not moved
// to something older than the registry would have given.
func (u *Updater) walk(ctx context.Context, tc TagChecker, w *tagWork, res registry.Result) *Candidate {
	line, minAge := w.line, w.t.Settings.MinAge
	var tooNew, tooNewTag string // why the newest tag tried was passed over, and which it was
	for i, tag := range w.chain {
		if i > 0 {
			res = u.checker.Check(ctx, []registry.Query{w.query(tag)})[0]
		}
		if res.LocalDigest != "" {
			line.OldDigest = res.LocalDigest
		}
		if res.Reason != "" {
			checkFailed(line, res.Reason, res.Message)
			return nil
		}
		if !res.UpdateAvailable {
			if tooNew != "" {
				line.Outcome, line.Message = OutcomeSkipped, fmt.Sprintf("too new (%s): %s", tooNew, tooNewTag)
				return nil
			}
			line.Outcome, line.NewDigest = OutcomeUpToDate, res.Digest
			if tag != w.cur.tag {
				line.Message = "the newest tag allowed, " + tag + ", is the image this container runs"
			}
			return nil
		}
		if minAge > 0 {
			created, err := tc.Created(ctx, w.repo+"@"+res.Digest, w.platform)
			if err != nil {
				reason, msg := registry.ReasonOf(err)
				checkFailed(line, reason, "reading the creation time of "+tag+": "+msg)
				return nil
			}
			if why := tooYoung(created, minAge, time.Now()); why != "" {
				if tooNew == "" {
					tooNew, tooNewTag = why, tag
				}
				continue
			}
		}
		return take(w, tag, res, tooNew, tooNewTag)
	}
	line.Outcome, line.Message = OutcomeSkipped, fmt.Sprintf("too new (%s): %s", tooNew, tooNewTag)
	return nil
}

// tooYoung says why an image created at created is not yet min-age old at now ("" when it is).
// An image whose config records no time, or the Unix epoch (reproducible builds), has no known
// age and never passes: min-age promises an image at least that old, and that cannot be shown.
func tooYoung(created time.Time, minAge time.Duration, now time.Time) string {
	if created.IsZero() || created.Unix() <= 0 {
		return fmt.Sprintf("age unknown: the image config records no creation time; min-age %s", minAge)
	}
	age := max(now.Sub(created), 0)
	if age >= minAge {
		return ""
	}
	return fmt.Sprintf("age %s, min-age %s", age.Round(time.Second), minAge)
}

// take records the chosen tag on the line and returns the update.
func take(w *tagWork, tag string, res registry.Result, tooNew, tooNewTag string) *Candidate {
	line := w.line
	line.NewDigest = res.Digest
	cause := fmt.Sprintf("digest %s -> %s", shortDigest(line.OldDigest), shortDigest(res.Digest))
	newImage, kind := "", PolicyDigest
	if tag != w.cur.tag {
		newImage = w.ref(tag)
		line.NewImage = newImage
		cause = fmt.Sprintf("tag %s -> %s", w.cur.tag, tag)
		if v, err := parseVersion(tag); err == nil {
			kind = versionStep(w.cur, v)
		}
	}
	if tooNew != "" {
		cause += fmt.Sprintf("; %s is too new (%s)", tooNewTag, tooNew)
		line.Message = cause
	}
	return &Candidate{Container: w.t, NewDigest: res.Digest, NewImage: newImage, Cause: cause, Kind: kind}
}

// tooNew applies watcher.min-age to a digest-policy update: it reports whether the new image is
// younger than min-age (or its age cannot be read), filling line with why. The next cycle takes
// the image once it is old enough.
func (u *Updater) tooNew(ctx context.Context, t *Container, res registry.Result, line *ContainerReport) bool {
	tc, ok := u.checker.(TagChecker)
	if !ok {
		line.Outcome, line.Message = OutcomeSkipped, "min-age is set but image ages cannot be read with this registry client"
		return true
	}
	ref, err := name.ParseReference(t.Image)
	if err != nil {
		checkFailed(line, failure.InvalidReference, err.Error())
		return true
	}
	created, err := tc.Created(ctx, ref.Context().Name()+"@"+res.Digest, t.image.platform())
	if err != nil {
		reason, msg := registry.ReasonOf(err)
		checkFailed(line, reason, "reading the creation time of the new image: "+msg)
		return true
	}
	if why := tooYoung(created, t.Settings.MinAge, time.Now()); why != "" {
		line.Outcome, line.Message = OutcomeSkipped, fmt.Sprintf("too new (%s)", why)
		return true
	}
	return false
}
