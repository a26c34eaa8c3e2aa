package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/watcher-dev/watcher/failure"
)

// Tag listing limits. A page of 1000 tags is what go-containerregistry asks for and what most
// registries allow; 200 pages is 200,000 tags, more than any repository we know of and few enough
// that a registry sending Link headers in a circle stops being asked soon.
const (
	tagPageSize    = 1000
	maxTagPages    = 200
	maxTagListSize = 8 << 20 // one page's body; 1000 tags of 128 characters are ~130 KiB
)

// Tags returns every tag of the repository ref names ("nginx", "127.0.0.1:5000/app:1.2.3": the
// tag, if any, is ignored), in the registry's order, following the Link header page by page as
// the distribution spec describes.
//
// A listing goes through the same per-repository authenticated transport as Check (the pull
// scope covers it), takes one lookup slot for its host, respects and sets the host's 429
// back-off, retries failure.RegistryUnavailable answers like a HEAD, and gives each page Options.Timeout.
// A failure is an *Error carrying one of the Reasons Check uses. Tags does not cache: callers
// list once per cycle and share the answer among the containers of the repository.
func (c *Checker) Tags(ctx context.Context, ref string) ([]string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, &Error{Ref: ref, Reason: failure.InvalidReference, Message: fmt.Sprintf("cannot parse image reference %q: %v", ref, err)}
	}
	repo := r.Context()
	host := repo.RegistryStr()
	res := Result{Ref: ref, Repo: repo.Name()}
	tr := &trace{}
	if until, ok := c.limits.blocked(host, c.now()); ok {
		c.fail(ctx, repo, tr, &rateLimitedError{host: host, until: until}, &res)
		return nil, res.Err()
	}
	release, err := c.acquire(ctx, host)
	if err != nil {
		c.fail(ctx, repo, tr, err, &res)
		return nil, res.Err()
	}
	defer release()
	tags, err := c.listTags(withTrace(ctx, tr), repo)
	if err != nil {
		c.fail(ctx, repo, tr, err, &res)
		return nil, res.Err()
	}
	return tags, nil
}

// listTags reads the pages of repo's tag list.
func (c *Checker) listTags(ctx context.Context, repo name.Repository) ([]string, error) {
	host := repo.RegistryStr()
	u := &url.URL{Scheme: scheme(host), Host: host, Path: "/v2/" + repo.RepositoryStr() + "/tags/list", RawQuery: fmt.Sprintf("n=%d", tagPageSize)}
	seen := map[string]bool{} // pages asked for
	have := map[string]bool{} // tags returned so far
	tags := []string{}        // never nil: an empty repository lists no tags
	for page := 0; ; page++ {
		if page == maxTagPages {
			return nil, fmt.Errorf("GET %s%s: more than %d pages of tags; stopped listing", host, u.Path, maxTagPages)
		}
		seen[u.String()] = true
		var (
			body []byte
			next *url.URL
		)
		pctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
		err := c.attempt(pctx, host, func(ctx context.Context) error {
			_, err := c.authed(ctx, repo, nil, func(rt http.RoundTripper) error {
				resp, b, err := c.get(ctx, rt, u, "application/json", maxTagListSize)
				if err != nil {
					return err
				}
				body = b
				next, err = nextPage(u, resp.Header.Values("Link"))
				return err
			})
			return err
		})
		cancel()
		if err != nil {
			return nil, err
		}
		var list struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("GET %s%s: tag list is not JSON: %w", host, u.Path, err)
		}
		added := 0
		for _, t := range list.Tags {
			if !have[t] {
				have[t] = true
				tags = append(tags, t)
				added++
			}
		}
		// A page of tags all seen before ends the listing: some registries (go-containerregistry's
		// own among them) start over from the first tag when asked for the page after the last.
		if len(list.Tags) > 0 && added == 0 {
			return tags, nil
		}
		if next == nil {
			if len(list.Tags) < tagPageSize {
				return tags, nil
			}
			// A full page and no Link: a registry that pages without saying so (the spec's `last`
			// parameter asks for the tags after the one named). One more request, at worst an
			// empty page or a repeated one, both of which end the listing.
			next = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: url.Values{"n": {fmt.Sprint(tagPageSize)}, "last": {list.Tags[len(list.Tags)-1]}}.Encode()}
		}
		if seen[next.String()] {
			return nil, fmt.Errorf("GET %s%s: the Link header points back to a page already read (%s)", host, u.Path, next.RequestURI())
		}
		u = next
	}
}

// nextPage reads the rel="next" target of a response's Link headers, resolved against the page
// just read. It refuses a target on another host: the authenticated transport would otherwise be
// pointed wherever a registry (or whoever answers for it) says.
func nextPage(cur *url.URL, links []string) (*url.URL, error) {
	for _, h := range links {
		for _, link := range splitLinks(h) {
			link = strings.TrimSpace(link)
			end := strings.IndexByte(link, '>')
			if !strings.HasPrefix(link, "<") || end < 0 || !relNext(link[end+1:]) {
				continue
			}
			ref, err := url.Parse(link[1:end])
			if err != nil {
				return nil, fmt.Errorf("Link header %q: %w", h, err)
			}
			next := cur.ResolveReference(ref)
			if !strings.EqualFold(next.Host, cur.Host) {
				return nil, fmt.Errorf("Link header points the tag list to another host (%s); not following", next.Host)
			}
			next.Scheme = cur.Scheme // the meter decides http or https by host, not the registry
			return next, nil
		}
	}
	return nil, nil
}

// splitLinks splits one Link header value into its links: commas separate them, except inside
// the <...> of a URL or a quoted parameter value.
func splitLinks(h string) []string {
	var out []string
	inURL, inQuote := false, false
	start := 0
	for i, r := range h {
		switch {
		case r == '"' && !inURL:
			inQuote = !inQuote
		case r == '<' && !inQuote:
			inURL = true
		case r == '>' && !inQuote:
			inURL = false
		case r == ',' && !inURL && !inQuote:
			out = append(out, h[start:i])
			start = i + 1
		}
	}
	return append(out, h[start:])
}

// relNext reports whether a link's parameters (`; rel="next"; title=…`) include rel=next; a rel
// may list several space-separated relation types.
func relNext(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
			continue
		}
		for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
			if strings.EqualFold(rel, "next") {
				return true
			}
		}
	}
	return false
}

// get makes one GET through an authenticated transport and reads the body, up to limit bytes.
// Non-200 answers come back as *transport.Error.
func (c *Checker) get(ctx context.Context, rt http.RoundTripper, u *url.URL, accept string, limit int64) (*http.Response, []byte, error) {
	return c.do(ctx, rt, http.MethodGet, u, accept, limit)
}

// do makes one request through an authenticated transport. A GET's body is read, up to limit
// bytes; a HEAD has none. Non-200 answers come back as *transport.Error.
func (c *Checker) do(ctx context.Context, rt http.RoundTripper, method string, u *url.URL, accept string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, nil, err
	}
	if method == http.MethodHead {
		return resp, nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, u.Redacted(), limit)
	}
	return resp, body, nil
}
