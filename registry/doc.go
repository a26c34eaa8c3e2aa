// Package registry reports the digest an image reference points to now, and whether that is an
// update for a given platform.
//
// A Checker asks each registry once per distinct reference with a HEAD request, compares the
// answer with the local image's RepoDigests, and only when the digest moved and the tag is a
// multi-platform index does it GET the index (and at most one platform manifest) to tell a
// rebuild for another architecture from a real update. Tokens are kept per repository across
// calls, concurrency is bounded overall and per host, a 429 keeps the host quiet until the time it
// names, and every failure carries one of the check-stage reasons of package failure (listed in
// docs/api.md, "Failure stages and reasons").
package registry
