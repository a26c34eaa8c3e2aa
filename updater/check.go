package updater

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/watcher-dev/watcher/failure"
	"github.com/watcher-dev/watcher/registry"
)

// check asks the registries about the targets: it returns one report line per target and the
// updates available. Lines start as failed and are raised only by what the check finds; an
// available update leaves its line failed until the plan holds it or apply carries it out.
// Tag policies (patch, minor, major) have their own file, policy.go.
func (u *Updater) check(ctx context.Context, targets []*Container) (map[string]*ContainerReport, []Candidate) {
	lines := make(map[string]*ContainerReport, len(targets))
	var queried, tagged []*Container
	for _, t := range targets {
		line := newLine(t)
		lines[t.key()] = line
		switch {
		case t.SettingsErr != nil:
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: failure.InvalidLabel, Message: t.SettingsErr.Error()}
		case t.image == nil || t.image.err != nil:
			line.Failure = &Failure{Stage: failure.StageCheck, Reason: failure.ImageInspectError, Message: fmt.Sprint("inspecting the container's image: ", t.image.errOrMissing())}
		case t.Settings.Policy != PolicyDigest:
			tagged = append(tagged, t)
		default:
			queried = append(queried, t)
		}
	}
	cands := u.checkDigests(ctx, queried, lines)
	return lines, append(cands, u.checkTagPolicies(ctx, tagged, lines)...)
}

// newLine is a target's report line before anything is known: failed until shown otherwise.
func newLine(t *Container) *ContainerReport {
	line := &ContainerReport{Host: t.Host, Name: t.Name, ID: t.ID, Image: t.Image, Policy: t.Settings.Policy, Mode: t.Settings.Mode, Outcome: OutcomeFailed}
	if t.isService() {
		line.Kind = KindService
		r := t.service.Replicas
		line.Replicas = &r
	}
	return line
}

// checkDigests checks the targets under the digest policy, one Check for all of them, and fills
// their lines.
func (u *Updater) checkDigests(ctx context.Context, ts []*Container, lines map[string]*ContainerReport) []Candidate {
	queries := make([]registry.Query, len(ts))
	for i, t := range ts {
		queries[i] = t.query(t.Image)
	}
	var cands []Candidate
	for i, res := range u.checker.Check(ctx, queries) {
		t := ts[i]
		line := lines[t.key()]
		line.OldDigest = res.LocalDigest
		if line.OldDigest == "" {
			line.OldDigest = localDigest(t)
		}
		line.NewDigest = res.Digest
		switch {
		case res.Reason != "":
			checkFailed(line, res.Reason, res.Message)
		case !res.UpdateAvailable:
			line.Outcome = OutcomeUpToDate
		case t.Settings.MinAge > 0 && u.tooNew(ctx, t, res, line):
			// line says why: skipped "too new (age …)", or failed reading the creation time
		default:
			cause := fmt.Sprintf("digest %s -> %s", shortDigest(line.OldDigest), shortDigest(res.Digest))
			cands = append(cands, Candidate{Container: t, NewDigest: res.Digest, Cause: cause, Kind: PolicyDigest})
		}
	}
	return cands
}

// query is the registry question for c running ref (its own reference, or another tag of its
// repository under a tag policy): the local facts that prove an image unchanged.
// A service's spec pins a digest (or none: then the tag is resolved, and the update pins it).
func (c *Container) query(ref string) registry.Query {
	return registry.Query{Ref: ref, Platform: c.image.platform(), RepoDigests: c.image.RepoDigests, ImageID: c.ImageID,
		ManifestDigest: c.ManifestDigest, Resolve: c.isService() && c.service.Pinned == ""}
}

// checkFailed records a check-stage failure; an InvalidReference is a skip (nothing to look up).
func checkFailed(line *ContainerReport, reason failure.Reason, msg string) {
	line.Failure = &Failure{Stage: failure.StageCheck, Reason: reason, Message: msg}
	line.Outcome = OutcomeFailed
	if reason == failure.InvalidReference {
		line.Outcome, line.Message = OutcomeSkipped, msg
	}
}

// localDigest is the digest the container's image was pulled as from its own repository.
func localDigest(t *Container) string {
	ref, err := name.ParseReference(t.Image)
	if err != nil || t.image == nil {
		return ""
	}
	for _, rd := range t.image.RepoDigests {
		if d, err := name.NewDigest(rd); err == nil && d.Context().Name() == ref.Context().Name() {
			return d.DigestStr()
		}
	}
	return ""
}

func (i *imageInfo) platform() v1.Platform {
	return v1.Platform{OS: i.OS, Architecture: i.Arch, Variant: i.Variant}
}

func (i *imageInfo) errOrMissing() error {
	if i == nil {
		return fmt.Errorf("image not found")
	}
	return i.err
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	if d == "" {
		return "none"
	}
	return d
}
