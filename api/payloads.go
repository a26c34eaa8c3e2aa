package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// What each kind of webhook payload says was pushed, as references "repository:tag" (or a bare
// repository: every tag). Only the fields needed are read; digests are ignored. A payload that
// is understood but tells of no pushed tag (a pull, a blob, a ping) gives no reference and a
// note saying why; one that cannot be read is an error the sender sees (400).

// tagPattern is a tag as the distribution spec allows it.
var tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// pushedRefs reads a payload of kind (webhookKinds).
func pushedRefs(kind string, h http.Header, body []byte) (refs []string, ignored string, err error) {
	switch kind {
	case "registry":
		refs, err = distributionPushes(body)
	case "dockerhub":
		refs, err = dockerHubPush(body)
	case "github":
		refs, ignored, err = gitHubPush(h, body)
	default:
		refs, err = nativePush(body)
	}
	if err == nil && len(refs) == 0 && ignored == "" {
		ignored = "the payload tells of no pushed tag; no run started"
	}
	if len(refs) > maxPushed {
		return nil, "", badf("the payload names more than %d repositories", maxPushed)
	}
	return refs, ignored, err
}

// decode reads body as JSON into v; the message never quotes the payload.
func decode(body []byte, v any, what string) error {
	if err := json.Unmarshal(body, v); err != nil {
		return badf("payload is not %s (JSON)", what)
	}
	return nil
}

// pushedRef checks and joins a repository (with its registry host) and tag.
func pushedRef(repo, tag string) (string, error) {
	named, err := reference.ParseNormalizedNamed(repo)
	if err != nil || !reference.IsNameOnly(named) || len(repo) > maxRefLen {
		return "", badf("repository %s in the payload is not a repository name", quote(repo))
	}
	if tag == "" {
		return named.Name(), nil
	}
	if !tagPattern.MatchString(tag) {
		return "", badf("tag %s in the payload is not a valid tag", quote(tag))
	}
	return named.Name() + ":" + tag, nil
}

// distributionPushes reads a distribution (CNCF registry) notification envelope: every "push"
// event of a manifest by tag. The registry's host is the one the push was sent to.
func distributionPushes(body []byte) ([]string, error) {
	var env struct {
		Events *[]struct {
			Action string `json:"action"`
			Target struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
				URL        string `json:"url"`
			} `json:"target"`
			Request struct {
				Host string `json:"host"`
			} `json:"request"`
		} `json:"events"`
	}
	if err := decode(body, &env, "a registry notification envelope"); err != nil {
		return nil, err
	}
	if env.Events == nil {
		return nil, badf(`payload is not a registry notification envelope: no "events"`)
	}
	var refs []string
	for _, e := range *env.Events {
		if e.Action != "push" || e.Target.Tag == "" {
			continue // pulls, deletes, blobs and pushes by digest move no tag
		}
		host := e.Request.Host
		if u, err := url.Parse(e.Target.URL); host == "" && err == nil {
			host = u.Host
		}
		if host == "" {
			return nil, badf("a push event names no registry host (request.host or target.url)")
		}
		ref, err := pushedRef(host+"/"+e.Target.Repository, e.Target.Tag)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return compact(refs), nil
}

// dockerHubPush reads Docker Hub's repository webhook.
func dockerHubPush(body []byte) ([]string, error) {
	var p struct {
		PushData struct {
			Tag string `json:"tag"`
		} `json:"push_data"`
		Repository struct {
			RepoName string `json:"repo_name"`
		} `json:"repository"`
	}
	if err := decode(body, &p, "a Docker Hub webhook"); err != nil {
		return nil, err
	}
	if p.Repository.RepoName == "" || p.PushData.Tag == "" {
		return nil, badf("payload is not a Docker Hub webhook: repository.repo_name or push_data.tag missing")
	}
	ref, err := pushedRef("docker.io/"+p.Repository.RepoName, p.PushData.Tag)
	if err != nil {
		return nil, err
	}
	return []string{ref}, nil
}

// gitHubPush reads GitHub's package (or registry_package) event for a container published to
// ghcr.io; other events are acknowledged and ignored. GitHub may send the JSON form-encoded.
func gitHubPush(h http.Header, body []byte) ([]string, string, error) {
	event := h.Get("X-GitHub-Event")
	switch event {
	case "ping":
		return nil, "ping received; webhook set up", nil
	case "package", "registry_package":
	default:
		return nil, "GitHub event " + quote(event) + " is not a package event; ignored", nil
	}
	if strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("payload") == "" {
			return nil, "", badf("form-encoded GitHub payload without a payload field")
		}
		body = []byte(form.Get("payload"))
	}
	type pkg struct {
		Name        string `json:"name"`
		Namespace   string `json:"namespace"`
		PackageType string `json:"package_type"`
		Owner       struct {
			Login string `json:"login"`
		} `json:"owner"`
		Registry struct {
			URL string `json:"url"` // https://ghcr.io/OWNER
		} `json:"registry"`
		Version struct {
			Container struct {
				Tag struct {
					Name string `json:"name"`
				} `json:"tag"`
			} `json:"container_metadata"`
		} `json:"package_version"`
	}
	var p struct {
		Action   string `json:"action"`
		Package  *pkg   `json:"package"`
		Registry *pkg   `json:"registry_package"`
	}
	if err := decode(body, &p, "a GitHub package event"); err != nil {
		return nil, "", err
	}
	k := p.Package
	if event == "registry_package" {
		k = p.Registry
	}
	switch {
	case k == nil || k.Name == "":
		return nil, "", badf("payload is not a GitHub %s event: no package name", event)
	case !strings.EqualFold(k.PackageType, "container") && !strings.EqualFold(k.PackageType, "docker"):
		return nil, "package type " + quote(k.PackageType) + " is not a container; ignored", nil
	case p.Action != "published" && p.Action != "updated":
		return nil, "package action " + quote(p.Action) + " pushes nothing; ignored", nil
	case k.Version.Container.Tag.Name == "":
		return nil, "an untagged package version moves no tag; ignored", nil
	}
	owner, host := k.Owner.Login, "ghcr.io"
	if owner == "" {
		owner = k.Namespace
	}
	if u, err := url.Parse(k.Registry.URL); err == nil && u.Host != "" {
		host = u.Host // GitHub Enterprise Server has a registry of its own
	}
	ref, err := pushedRef(host+"/"+strings.ToLower(owner)+"/"+strings.ToLower(k.Name), k.Version.Container.Tag.Name)
	if err != nil {
		return nil, "", err
	}
	return []string{ref}, "", nil
}

// nativePush reads watcher's own payload: {"name": repository, "tag": tag}, the tag optional
// (every tag of the repository).
func nativePush(body []byte) ([]string, error) {
	var p struct {
		Name string `json:"name"`
		Tag  string `json:"tag"`
	}
	if err := decode(body, &p, `{"name": repository, "tag": tag}`); err != nil {
		return nil, err
	}
	if p.Name == "" {
		return nil, badf(`payload has no "name" (the repository, e.g. ghcr.io/acme/app)`)
	}
	ref, err := pushedRef(p.Name, p.Tag)
	if err != nil {
		return nil, err
	}
	return []string{ref}, nil
}

func compact(refs []string) []string {
	slices.Sort(refs)
	return slices.Compact(refs)
}
