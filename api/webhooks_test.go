package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

const testSecret = "hook-secret-0123456789abcdef"

// envelope is a distribution notification of one push of app:v2 to 127.0.0.1:5000.
const envelope = `{"events":[{"id":"1","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","repository":"app","tag":"v2",
"url":"http://127.0.0.1:5000/v2/app/manifests/sha256:00"},"request":{"host":"127.0.0.1:5000","method":"PUT"}}]}`

// hook posts body to a webhook path from ip with extra headers ("Name: value").
func hook(t *testing.T, s *Server, path, ip, body string, headers ...string) result {
	t.Helper()
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = ip + ":40000"
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			r.Header.Add(k, v)
		}
		s.Handler().ServeHTTP(w, r)
	}), http.MethodPost, path, "", strings.NewReader(body))
}

func signature(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "X-Hub-Signature-256: sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestWebhookAuth: every way of giving the secret is accepted, a wrong or missing one is 401 and
// counts against the client's failure budget like a wrong token, and without a secret the
// webhooks are disabled. The secret of the path form never reaches the log.
func TestWebhookAuth(t *testing.T) {
	f := newFake("127.0.0.1:5000/app:v2")
	s, logs := newTestServer(f, Options{Token: testToken, WebhookSecret: testSecret})
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("registry:"+testSecret))
	accepted := []struct {
		name, path string
		headers    []string
	}{
		{"bearer", "/v1/webhooks/registry", []string{"Authorization: Bearer " + testSecret}},
		{"basic", "/v1/webhooks/registry", []string{basic}},
		{"path", "/v1/webhooks/registry/" + testSecret, nil},
		{"hmac", "/v1/webhooks/registry", []string{signature(testSecret, envelope)}},
	}
	for _, tt := range accepted {
		res := hook(t, s, tt.path, "192.0.2.1", envelope, tt.headers...)
		if res.code != http.StatusAccepted || !strings.Contains(res.body, `"run_id":"run-`) || !strings.Contains(res.body, `"pushed":["127.0.0.1:5000/app:v2"]`) {
			t.Errorf("%s: %d %s, want 202 with the run id and what was pushed", tt.name, res.code, res.body)
		}
	}
	refused := []struct {
		name, path string
		headers    []string
		why        string
	}{
		{"none", "/v1/webhooks/registry", nil, "missing webhook secret"},
		{"wrong bearer", "/v1/webhooks/registry", []string{"Authorization: Bearer wrong-wrong-wrong-wrong"}, "wrong webhook secret as the bearer token"},
		{"the API token", "/v1/webhooks/registry", []string{"Authorization: Bearer " + testToken}, "wrong webhook secret"},
		{"wrong path", "/v1/webhooks/registry/not-the-secret-at-all", nil, "wrong webhook secret in the path"},
		{"wrong hmac", "/v1/webhooks/github", []string{signature("another-secret-0123456789", envelope), "X-GitHub-Event: ping"}, "does not match"},
		{"hmac of another body", "/v1/webhooks/registry", []string{signature(testSecret, envelope+" ")}, "does not match"},
	}
	for _, tt := range refused {
		res := hook(t, s, tt.path, "192.0.2.2", envelope, tt.headers...)
		if res.code != http.StatusUnauthorized || res.err.Reason != ReasonUnauthorized || !strings.Contains(res.err.Error, tt.why) {
			t.Errorf("%s: %d %s, want 401 saying %q", tt.name, res.code, res.body, tt.why)
		}
	}
	for i := len(refused); i < authFailBurst; i++ {
		hook(t, s, "/v1/webhooks/registry/guess-"+strings.Repeat("x", i), "192.0.2.2", envelope)
	}
	if res := hook(t, s, "/v1/webhooks/native/one-more-guess-0123456789", "192.0.2.2", `{"name":"app"}`); res.code != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Errorf("a guess over the budget = %d %s, want 429 with Retry-After", res.code, res.body)
	}
	if res := hook(t, s, "/v1/webhooks/registry/"+testSecret, "192.0.2.2", envelope); res.code != http.StatusAccepted {
		t.Errorf("the right secret from the throttled client = %d, want 202", res.code)
	}
	if strings.Contains(logs.String(), testSecret) || strings.Contains(logs.String(), "not-the-secret-at-all") {
		t.Errorf("the log shows a secret from a path:\n%s", logs)
	}

	off, _ := newTestServer(f, Options{Token: testToken})
	if res := hook(t, off, "/v1/webhooks/registry/"+testSecret, "192.0.2.3", envelope); res.code != http.StatusForbidden || res.err.Reason != ReasonWebhooksDisabled {
		t.Errorf("webhooks without a secret = %d %s, want 403 %s", res.code, res.body, ReasonWebhooksDisabled)
	}
}

// TestWebhookPayloads: what each kind of payload says was pushed; digests are never read.
func TestWebhookPayloads(t *testing.T) {
	tests := []struct {
		kind, body string
		headers    http.Header
		want       string // pushed refs joined by ",", "" = none
		ignored    string // a substring of the note when nothing was pushed
		bad        string // a substring of the 400 message
	}{
		{kind: "registry", body: envelope, want: "127.0.0.1:5000/app:v2"},
		{kind: "registry", body: `{"events":[{"action":"push","target":{"repository":"team/app","tag":"1.2","url":"https://reg.example.com/v2/team/app/manifests/sha256:00"},"request":{}},
			{"action":"pull","target":{"repository":"other","tag":"x"},"request":{"host":"reg.example.com"}},
			{"action":"push","target":{"repository":"team/app","digest":"sha256:00"},"request":{"host":"reg.example.com"}},
			{"action":"push","target":{"repository":"team/app","tag":"1.2"},"request":{"host":"reg.example.com"}}]}`, want: "reg.example.com/team/app:1.2"},
		{kind: "registry", body: `{"events":[{"action":"pull","target":{"repository":"app","tag":"1"},"request":{"host":"r"}}]}`, ignored: "no pushed tag"},
		{kind: "registry", body: `{"events":[{"action":"push","target":{"repository":"app","tag":"1"}}]}`, bad: "no registry host"},
		{kind: "registry", body: `{"events":[{"action":"push","target":{"repository":"App/UPPER","tag":"1"},"request":{"host":"r:5000"}}]}`, bad: "not a repository name"},
		{kind: "registry", body: `{"events":[{"action":"push","target":{"repository":"app","tag":"bad tag"},"request":{"host":"r:5000"}}]}`, bad: "not a valid tag"},
		{kind: "registry", body: `{}`, bad: `no "events"`},
		{kind: "registry", body: `[1,2]`, bad: "not a registry notification envelope"},
		{kind: "dockerhub", body: `{"push_data":{"pushed_at":1417566161,"pusher":"trustedbuilder","tag":"latest"},"repository":{"repo_name":"svendowideit/testhook","name":"testhook"}}`,
			want: "docker.io/svendowideit/testhook:latest"},
		{kind: "dockerhub", body: `{"push_data":{},"repository":{"repo_name":"a/b"}}`, bad: "push_data.tag missing"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"package"}},
			body: `{"action":"published","package":{"name":"App","namespace":"Acme","package_type":"CONTAINER","owner":{"login":"Acme"},
			"package_version":{"container_metadata":{"tag":{"name":"v1.2.3","digest":"sha256:ff"}}},"registry":{"url":"https://ghcr.io/acme"}}}`,
			want: "ghcr.io/acme/app:v1.2.3"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"registry_package"}},
			body: `{"action":"published","registry_package":{"name":"api","package_type":"container","owner":{"login":"o"},"package_version":{"container_metadata":{"tag":{"name":"latest"}}}}}`,
			want: "ghcr.io/o/api:latest"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"package"}, "Content-Type": {"application/x-www-form-urlencoded"}},
			body: "payload=" + `%7B%22action%22%3A%22published%22%2C%22package%22%3A%7B%22name%22%3A%22x%22%2C%22package_type%22%3A%22container%22%2C%22owner%22%3A%7B%22login%22%3A%22o%22%7D%2C%22package_version%22%3A%7B%22container_metadata%22%3A%7B%22tag%22%3A%7B%22name%22%3A%221%22%7D%7D%7D%7D%7D`,
			want: "ghcr.io/o/x:1"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"ping"}}, body: `{"zen":"hi"}`, ignored: "ping"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"push"}}, body: `{}`, ignored: "not a package event"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"package"}}, body: `{"action":"published","package":{"name":"x","package_type":"npm"}}`, ignored: "not a container"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"package"}}, body: `{"action":"published","package":{"name":"x","package_type":"container","owner":{"login":"o"}}}`, ignored: "untagged"},
		{kind: "github", headers: http.Header{"X-Github-Event": {"package"}}, body: `{"action":"published"}`, bad: "no package name"},
		{kind: "native", body: `{"name":"127.0.0.1:5000/app","tag":"v2"}`, want: "127.0.0.1:5000/app:v2"},
		{kind: "native", body: `{"name":"nginx"}`, want: "docker.io/library/nginx"},
		{kind: "native", body: `{"name":"nginx:1.27"}`, bad: "not a repository name"},
		{kind: "native", body: `{"tag":"v2"}`, bad: `no "name"`},
		{kind: "native", body: `not json`, bad: "payload is not"},
	}
	for _, tt := range tests {
		refs, ignored, err := pushedRefs(tt.kind, tt.headers, []byte(tt.body))
		got := strings.Join(refs, ",")
		switch {
		case tt.bad != "":
			if bi, ok := err.(*badInput); !ok || !strings.Contains(bi.msg, tt.bad) {
				t.Errorf("%s %.60s: err %v, want 400 saying %q", tt.kind, tt.body, err, tt.bad)
			}
		case err != nil || got != tt.want || (tt.want == "" && !strings.Contains(ignored, tt.ignored)):
			t.Errorf("%s %.60s = %q (%q), %v; want %q (%q)", tt.kind, tt.body, got, ignored, err, tt.want, tt.ignored)
		}
	}
}

// TestWebhookAnswers: a push nobody watches, an ignored event, a bad payload, an oversized one,
// an unknown kind and a query are each answered as documented; none starts a run.
func TestWebhookAnswers(t *testing.T) {
	f := newFake("127.0.0.1:5000/app:v2")
	s, _ := newTestServer(f, Options{Token: testToken, WebhookSecret: testSecret})
	path := "/v1/webhooks/native/" + testSecret
	tests := []struct {
		name, path, body string
		code             int
		has              string
	}{
		{"not watched", path, `{"name":"127.0.0.1:5000/other","tag":"1"}`, 200, "no watched container runs what was pushed"},
		{"ignored", "/v1/webhooks/github/" + testSecret, `{}`, 200, `"pushed":[]`},
		{"bad json", path, `{"name":`, 400, "payload is not"},
		{"empty", path, ``, 400, "empty payload"},
		{"too large", path, `{"name":"app","x":"` + strings.Repeat("a", maxWebhookBytes) + `"}`, 400, "payload larger than 1048576 bytes"},
		{"unknown kind", "/v1/webhooks/gitlab/" + testSecret, `{}`, 404, "no such webhook kind"},
		{"query", path + "?force=true", `{"name":"app"}`, 400, "unknown query parameter"},
	}
	for _, tt := range tests {
		res := hook(t, s, tt.path, "192.0.2.9", tt.body)
		if res.code != tt.code || !strings.Contains(res.body, tt.has) {
			t.Errorf("%s: %d %.200s, want %d with %q", tt.name, res.code, res.body, tt.code, tt.has)
		}
	}
	if n := f.triggerCount(); n != 0 {
		t.Errorf("%d runs started, want none", n)
	}
}

// TestWebhookFlood: pushes arriving while a run is in progress all join the one queued run.
func TestWebhookFlood(t *testing.T) {
	f := newFake("127.0.0.1:5000/app:v2")
	release := f.holdRuns()
	defer release()
	s, _ := newTestServer(f, Options{Token: testToken, WebhookSecret: testSecret})
	ids := map[string]int{}
	for range 50 {
		res := hook(t, s, "/v1/webhooks/registry/"+testSecret, "192.0.2.10", envelope)
		if res.code != http.StatusAccepted {
			t.Fatalf("push = %d %s, want 202", res.code, res.body)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(res.body, `{"run_id":"`), `"`)
		ids[id]++
	}
	if len(ids) != 2 || ids["run-1"] != 1 || ids["run-2"] != 49 {
		t.Errorf("50 pushes made runs %v, want run-1 (the first) and one queued run-2 for the other 49", ids)
	}
}

// TestWebhookStalledBody: a payload that never arrives is answered 400 once timeouts.body has
// passed (the server's own read timeout is far longer), and the connection is closed.
func TestWebhookStalledBody(t *testing.T) {
	s, _ := newTestServer(newFake("web"), Options{Listen: "127.0.0.1:0", Token: testToken, WebhookSecret: testSecret})
	s.timeouts.read, s.timeouts.readHeader, s.timeouts.body = time.Hour, time.Hour, 200*time.Millisecond
	startServer(t, s)
	for _, length := range []string{"Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"} {
		req := "POST /v1/webhooks/registry/" + testSecret + " HTTP/1.1\r\nHost: x\r\n" + length + "\r\n{\"ev"
		res := rawRequest(t, s.Addr().String(), req, false)
		if res.code != http.StatusBadRequest || !strings.Contains(res.body, "did not arrive within 200ms") || !res.close {
			t.Errorf("stalled payload (%s) = %d %q close=%v, want 400 saying it did not arrive, connection closed", strings.TrimSpace(length), res.code, res.body, res.close)
		}
		checkJSON(t, "stalled payload", res)
	}
	// A payload cut short by the client is incomplete, not a timeout.
	res := rawRequest(t, s.Addr().String(), "POST /v1/webhooks/native/"+testSecret+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"name\"", true)
	if res.code != http.StatusBadRequest || !strings.Contains(res.body, "payload incomplete") {
		t.Errorf("payload cut short = %d %q, want 400 payload incomplete", res.code, res.body)
	}
}

// TestRollbackEndpoint: POST /v1/rollback takes the token, one container, and answers 202 (or the
// report with wait), 404 for a container not watched and 409 for one with nothing to undo.
func TestRollbackEndpoint(t *testing.T) {
	s, _ := newTestServer(newFake("web", "fresh"), Options{Token: testToken})
	auth := "Bearer " + testToken
	tests := []struct {
		target, auth string
		code         int
		reason, has  string
	}{
		{"/v1/rollback?container=web", auth, 202, "", `"run_id":"run-1"`},
		{"/v1/rollback?container=web&wait=true", auth, 200, "", `"name":"web"`},
		{"/v1/rollback?container=fresh", auth, 409, ReasonNoPreviousUpdate, "nothing to roll back"},
		{"/v1/rollback?container=gone", auth, 404, ReasonNotWatched, "not watched: gone"},
		{"/v1/rollback", auth, 400, ReasonBadRequest, "container is required"},
		{"/v1/rollback?container=a&container=b", auth, 400, ReasonBadRequest, "given 2 times"},
		{"/v1/rollback?container=web", "", 401, ReasonUnauthorized, ""},
	}
	for _, tt := range tests {
		res := serve(t, s.Handler(), http.MethodPost, tt.target, tt.auth, nil)
		if res.code != tt.code || res.err.Reason != tt.reason || !strings.Contains(res.body, tt.has) {
			t.Errorf("POST %s = %d %s, want %d %s with %q", tt.target, res.code, res.body, tt.code, tt.reason, tt.has)
		}
	}
	if res := serve(t, s.Handler(), http.MethodGet, "/v1/rollback", auth, nil); res.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/rollback = %d, want 405", res.code)
	}
}

// TestUpdateForce: ?force=true reaches the daemon as Request.Force.
func TestUpdateForce(t *testing.T) {
	f := newFake("web")
	s, _ := newTestServer(f, Options{Token: testToken})
	for q, want := range map[string]bool{"?force=true": true, "?container=web&force": true, "": false, "?force=0": false} {
		if res := serve(t, s.Handler(), http.MethodPost, "/v1/update"+q, "Bearer "+testToken, nil); res.code != http.StatusAccepted {
			t.Fatalf("POST /v1/update%s = %d %s", q, res.code, res.body)
		}
		if got := f.lastRequest(t).Force; got != want {
			t.Errorf("POST /v1/update%s: Force = %v, want %v", q, got, want)
		}
	}
	if res := serve(t, s.Handler(), http.MethodPost, "/v1/update?force=maybe", "Bearer "+testToken, nil); res.code != http.StatusBadRequest {
		t.Errorf("?force=maybe = %d, want 400", res.code)
	}
}
