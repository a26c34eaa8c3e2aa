package notify

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// scheme is what may precede "://" in a notification URL (shoutrrr's "generic+https" included).
var scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]{0,31}$`)

// anyURL finds URLs inside error text (Go's HTTP client quotes the URL it failed to reach).
var anyURL = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^\s"'<>]*`)

// redact shows which URL is meant without any of its secrets: shoutrrr URLs carry tokens in the
// userinfo, the host (slack, pushbullet, ifttt), the path (webhooks) or the query, so only the
// scheme is kept.
func redact(raw string) string {
	s, _, ok := strings.Cut(raw, "://")
	if !ok || !scheme.MatchString(s) {
		return "(unparseable URL)"
	}
	return s + "://…"
}

// secretParts are the pieces of a configured URL that may be secret, longest first, to be masked
// wherever they turn up in error text. Short pieces ("api", "v1") are left alone: masking
// them would garble messages and they are no secret.
func secretParts(raw string) []string {
	parts := []string{raw}
	u, err := url.Parse(raw)
	if err == nil {
		if u.User != nil {
			parts = append(parts, u.User.Username(), u.User.String())
			if p, ok := u.User.Password(); ok {
				parts = append(parts, p)
			}
		}
		parts = append(parts, u.Host, u.Hostname(), u.Opaque, u.RawQuery, u.Path)
		parts = append(parts, strings.Split(u.Path, "/")...)
		for k, vs := range u.Query() {
			parts = append(parts, k)
			parts = append(parts, vs...)
		}
	}
	var out []string
	for _, p := range parts {
		if len(p) >= 6 && !slices.Contains(out, p) {
			out = append(out, p)
			if e := url.PathEscape(p); e != p {
				out = append(out, e)
			}
			if e := url.QueryEscape(p); e != p {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// scrub removes URLs and the configured URL's secret parts from an error text.
func scrub(text string, secrets []string) string {
	text = anyURL.ReplaceAllStringFunc(text, redact)
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "***")
	}
	return text
}
