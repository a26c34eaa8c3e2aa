package api

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// Input limits. Anything beyond them is junk and answered 400, before the daemon sees it.
const (
	maxNameLen   = 255  // a container name (Docker itself has no lower limit we could rely on)
	maxRefLen    = 512  // an image reference: 255 for the name, a tag, a digest
	maxRunIDLen  = 128  // a run id
	maxValues    = 256  // values of one repeatable parameter
	maxBodyBytes = 1024 // a POST body is not used; a small one (curl -d '{}') is tolerated
	maxRunsLimit = 1000 // GET /v1/runs?limit=
	defaultRuns  = 50
)

// containerName is Docker's charset for container names (a leading "/" is accepted and dropped).
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// hostName is what a configured host may be called (config checks the same rule).
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// runID is what a run id may look like: the updater chooses it, we only refuse junk.
var runID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:-]*$`)

// badInput is a 400 with a message safe to show (it quotes the input only after checking it is short).
type badInput struct{ msg string }

func (e *badInput) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badInput{msg: fmt.Sprintf(format, args...)} }

// parseQuery parses the raw query strictly: bad escapes, NUL or other control bytes and
// parameters not in allowed are errors. Parameter names are quoted only when short and printable.
func parseQuery(raw string, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badf("malformed query string")
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return nil, badf("unknown query parameter %s (allowed: %s)", quote(k), strings.Join(allowed, ", "))
		}
		if len(vs) > maxValues {
			return nil, badf("too many values for %s (at most %d)", k, maxValues)
		}
		for _, v := range vs {
			if hasControl(v) {
				return nil, badf("query parameter %s holds a control character", k)
			}
		}
	}
	return q, nil
}

// single returns the only value of k, or "" if absent; a repeated k is an error.
func single(q url.Values, k string) (string, bool, error) {
	vs, ok := q[k]
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", true, badf("query parameter %s given %d times", k, len(vs))
	}
	return vs[0], true, nil
}

// boolParam parses ?k=true|false|1|0; a bare ?k (empty value) means true.
func boolParam(q url.Values, k string) (bool, error) {
	v, ok, err := single(q, k)
	if err != nil || !ok {
		return false, err
	}
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badf("query parameter %s must be true or false, not %s", k, quote(v))
	}
	return b, nil
}

// checkContainerName accepts Docker's name charset up to maxNameLen and returns the name without
// a leading slash.
func checkContainerName(n string) (string, error) {
	n = strings.TrimPrefix(n, "/")
	switch {
	case n == "":
		return "", badf("empty container name")
	case len(n) > maxNameLen:
		return "", badf("container name longer than %d characters", maxNameLen)
	case !containerName.MatchString(n):
		return "", badf("container name %s is not a valid Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", quote(n))
	}
	return n, nil
}

// checkImageRef accepts what a container can name as its image: a reference (nginx,
// nginx:1.27, ghcr.io/o/r@sha256:…) or an image ID.
func checkImageRef(ref string) (string, error) {
	switch {
	case ref == "":
		return "", badf("empty image reference")
	case len(ref) > maxRefLen:
		return "", badf("image reference longer than %d characters", maxRefLen)
	}
	if _, err := reference.ParseAnyReference(ref); err != nil {
		return "", badf("image reference %s is not valid", quote(ref))
	}
	return ref, nil
}

// checkRunID refuses ids that no run can have, so junk never reaches the store.
func checkRunID(id string) error {
	if len(id) > maxRunIDLen || !runID.MatchString(id) {
		return badf("malformed run id")
	}
	return nil
}

// hasControl reports NUL and other control characters, and invalid UTF-8.
func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// quote shows user input in a message only when short and printable.
func quote(s string) string {
	if len(s) > 64 || hasControl(s) {
		return "(not shown)"
	}
	return strconv.Quote(s)
}
