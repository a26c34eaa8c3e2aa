package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Reasons are the machine-readable "reason" of an error response. They never change meaning.
const (
	ReasonBadRequest         = "BadRequest"         // junk query, path or body
	ReasonUnauthorized       = "Unauthorized"       // token missing, malformed or wrong
	ReasonTokenNotConfigured = "TokenNotConfigured" // http.token is empty: the endpoint is disabled
	ReasonNotFound           = "NotFound"           // no such endpoint
	ReasonNotWatched         = "NotWatched"         // a trigger named containers the daemon does not watch
	ReasonUnknownHost        = "UnknownHost"        // ?host= names a host that is not configured
	ReasonRunNotFound        = "RunNotFound"        // no run with that id in memory or history
	ReasonMethodNotAllowed   = "MethodNotAllowed"   // the path exists, the method does not
	ReasonRateLimited        = "RateLimited"        // too many triggers from this client; see Retry-After
	ReasonNotReady           = "NotReady"           // the Docker engine is not reachable
	ReasonShuttingDown       = "ShuttingDown"       // the daemon is stopping
	ReasonInternal           = "Internal"           // our fault; details are in the daemon's log only
	ReasonNoPreviousUpdate   = "NoPreviousUpdate"   // a rollback of a container with no committed update to undo
	ReasonNoPendingApproval  = "NoPendingApproval"  // an approve or reject of a container with no update waiting
	// ReasonWebhooksDisabled: http.webhook_secret is empty, so the webhooks are disabled.
	ReasonWebhooksDisabled = "WebhookSecretNotConfigured"
)

// errorBody is every error response: a sentence for people and a reason for programs.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	RunID  string `json:"run_id,omitempty"` // set when the run goes on although this request ends
}

// writeJSON writes v as the whole response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled here; fall back to a fixed body rather than a 200.
		status = http.StatusInternalServerError
		b = []byte(`{"error":"could not encode the response","reason":"Internal"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes the JSON error body. msg must hold no secret: it is shown to the client.
func writeError(w http.ResponseWriter, status int, reason, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Reason: reason})
}
