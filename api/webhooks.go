package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// Registry webhooks: POST /v1/webhooks/{kind} tells the daemon that a registry got a push. The
// payload only says which repository and tag; its digest is never used (the run asks the
// registry like any run does), so a forged or replayed push can at worst cause a check. This is
// the one endpoint that reads a request body: bounded in size (maxWebhookBytes) and in time
// (timeouts.body), so a payload that never arrives does not hold a handler.

const (
	maxWebhookBytes    = 1 << 20          // a payload; GitHub's package events are tens of KiB
	webhookBodyTimeout = 10 * time.Second // the payload must arrive within this
	maxPushed          = maxValues        // repositories one payload may name
)

// webhookKinds are the {kind}s: who sends the payload and so how it is read.
var webhookKinds = []string{"registry", "dockerhub", "github", "native"}

// webhookAuth is http.webhook_secret: compared like the token (in constant time, by digest), and
// the key of GitHub's HMAC.
type webhookAuth struct {
	tokenChecker
	key []byte
}

// webhookResponse answers a webhook: the repositories the payload says were pushed, the run they
// started (202), or why none was started (200: a registry must not retry what was understood).
type webhookResponse struct {
	RunID   string   `json:"run_id,omitempty"`
	Pushed  []string `json:"pushed"`
	Message string   `json:"message,omitempty"`
}

// bodyLimit is how much of a request's body may be read: a webhook's payload, or the little
// other endpoints tolerate (and never read).
func bodyLimit(path string) int64 {
	if strings.HasPrefix(path, "/v1/webhooks/") {
		return maxWebhookBytes
	}
	return maxBodyBytes
}

// logPath is a request path as logs show it: the secret of /v1/webhooks/{kind}/{secret} is not.
func logPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/webhooks/")
	if kind, _, hasSecret := strings.Cut(rest, "/"); ok && hasSecret {
		return "/v1/webhooks/" + kind + "/REDACTED"
	}
	return p
}

// handleWebhook is POST /v1/webhooks/{kind} and /v1/webhooks/{kind}/{secret}.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	if !slices.Contains(webhookKinds, kind) {
		writeError(w, http.StatusNotFound, ReasonNotFound, "no such webhook kind "+quote(kind)+"; want one of "+strings.Join(webhookKinds, ", "))
		return
	}
	if !s.hook.set {
		writeError(w, http.StatusForbidden, ReasonWebhooksDisabled, "http.webhook_secret is not set: webhooks are disabled")
		return
	}
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	// A credential in the path or the Authorization header is checked before the body is read;
	// only GitHub's signature needs the body first.
	authed, err := s.webhookCredential(w, r)
	if err != nil {
		return // answered
	}
	body, err := s.readPayload(w, r)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	if !authed && !s.webhookSignature(w, r, body) {
		return // answered
	}
	pushed, ignored, err := pushedRefs(kind, r.Header, body)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	s.triggerPushed(w, r, kind, pushed, ignored)
}

// webhookCredential checks a secret given in the path or the Authorization header (Bearer, or
// the password of basic auth). It returns true when one was given and is right, false when none
// was given (GitHub's signature may follow), and an error when the answer was written.
func (s *Server) webhookCredential(w http.ResponseWriter, r *http.Request) (bool, error) {
	var cred, problem string
	switch _, pass, basic := r.BasicAuth(); {
	case r.PathValue("secret") != "":
		cred, problem = r.PathValue("secret"), "wrong webhook secret in the path"
	case basic:
		cred, problem = pass, "wrong webhook secret as the basic-auth password"
	case len(r.Header.Values("Authorization")) > 0:
		if cred, problem = bearer(r); problem == "" {
			problem = "wrong webhook secret as the bearer token"
		}
	default:
		return false, nil
	}
	if cred != "" && s.hook.match(cred) {
		return true, nil
	}
	s.unauthorized(w, r, problem, cred != "")
	return false, errAnswered
}

// webhookSignature checks GitHub's X-Hub-Signature-256 (HMAC-SHA256 of the body with the
// secret), answering 401 when it is missing or wrong.
func (s *Server) webhookSignature(w http.ResponseWriter, r *http.Request, body []byte) bool {
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		s.unauthorized(w, r, "missing webhook secret: give it as a bearer token, a basic-auth password, "+
			"in the path (/v1/webhooks/{kind}/{secret}) or, from GitHub, as X-Hub-Signature-256", false)
		return false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	mac := hmac.New(sha256.New, s.hook.key)
	mac.Write(body)
	if err != nil || !strings.HasPrefix(sig, "sha256=") || !hmac.Equal(got, mac.Sum(nil)) {
		s.unauthorized(w, r, "X-Hub-Signature-256 does not match the payload and webhook secret", true)
		return false
	}
	return true
}

var errAnswered = errors.New("answered")

// readPayload reads the whole body within timeouts.body and maxWebhookBytes (wrap's limit).
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.timeouts.body))
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil && len(body) == 0:
		return nil, badf("empty payload")
	case err == nil:
		return body, nil
	case errors.As(err, &tooBig):
		return nil, badf("payload larger than %d bytes", maxWebhookBytes)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, badf("the payload did not arrive within %s", s.timeouts.body)
	}
	return nil, badf("payload incomplete: the connection ended before its end")
}

// triggerPushed asks for a run of the watched containers running what was pushed.
func (s *Server) triggerPushed(w http.ResponseWriter, r *http.Request, kind string, pushed []string, ignored string) {
	if len(pushed) == 0 {
		writeJSON(w, http.StatusOK, webhookResponse{Pushed: []string{}, Message: ignored})
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	id, _, err := s.svc.Trigger(ctx, updater.Request{Trigger: updater.TriggerWebhook, Pushed: pushed})
	var nw *updater.NotWatchedError
	switch {
	case errors.As(err, &nw):
		writeJSON(w, http.StatusOK, webhookResponse{Pushed: pushed, Message: "no watched container runs what was pushed; no run started"})
	case errors.Is(err, updater.ErrHandedOver):
		s.shuttingDown(w)
	case err != nil:
		s.serviceError(w, r, "could not start a run", err)
	default:
		s.log.Info("http: webhook triggered a run", "kind", kind, "run_id", id, "remote", remoteIP(r), "pushed", pushed)
		w.Header().Set("Location", "/v1/runs/"+url.PathEscape(id))
		writeJSON(w, http.StatusAccepted, webhookResponse{RunID: id, Pushed: pushed})
	}
}
