package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/watcher-dev/watcher/updater"
)

// TriggerHTTP is the updater.Request.Trigger of runs asked for over HTTP.
const TriggerHTTP = updater.TriggerHTTP

// triggerResponse is the 202 answer of POST /v1/update.
type triggerResponse struct {
	RunID string `json:"run_id"`
}

type containersResponse struct {
	Containers []updater.ContainerStatus `json:"containers"`
}

type runsResponse struct {
	Runs []updater.Report `json:"runs"`
}

type statusResponse struct {
	Status string `json:"status"`
}

// readyResponse is GET /readyz with hosts configured: "ready" (every host answers) or "degraded"
// (some do), and each host's state.
type readyResponse struct {
	Status string               `json:"status"`
	Hosts  []updater.HostStatus `json:"hosts"`
}

// notReadyResponse is the 503 of GET /readyz with hosts configured: no host answers.
type notReadyResponse struct {
	errorBody
	Hosts []updater.HostStatus `json:"hosts"`
}

// hosts is the Service's HostsService when hosts are configured, else nil.
func (s *Server) hosts() HostsService {
	if h, ok := s.svc.(HostsService); ok && h.Named() {
		return h
	}
	return nil
}

// queryNames are the parameters an endpoint takes, plus host when hosts are configured.
func (s *Server) queryNames(names ...string) []string {
	if s.hosts() != nil {
		names = append(names, "host")
	}
	return names
}

// hostParams are the ?host= values, each checked.
func hostParams(q url.Values) ([]string, error) {
	var out []string
	for _, h := range q["host"] {
		if !hostName.MatchString(h) {
			return nil, badf("host must be a host name from the configuration (letters, digits, '.', '_', '-')")
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// handleUpdate is POST /v1/update[?container=NAME…|?image=REF…][&wait=true].
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	req, wait, err := s.parseUpdate(r)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	id, done, err := s.svc.Trigger(ctx, req)
	if err != nil {
		var nw *updater.NotWatchedError
		var uh *updater.UnknownHostError
		switch {
		case errors.As(err, &nw):
			writeError(w, http.StatusNotFound, ReasonNotWatched, nw.Error())
		case errors.As(err, &uh):
			writeError(w, http.StatusNotFound, ReasonUnknownHost, uh.Error())
		case errors.Is(err, updater.ErrHandedOver):
			s.shuttingDown(w) // a self-update's successor takes the triggers from now on
		default:
			s.serviceError(w, r, "could not start a run", err)
		}
		return
	}
	s.log.Info("http: run triggered", "run_id", id, "remote", remoteIP(r),
		"hosts", req.Hosts, "containers", req.Containers, "images", req.Images, "force", req.Force, "wait", wait)
	s.answerRun(w, r, id, done, wait)
}

// answerRun answers a request that started (or joined) run id: 202 with the id, or with wait
// the run's report when it ends.
func (s *Server) answerRun(w http.ResponseWriter, r *http.Request, id string, done <-chan struct{}, wait bool) {
	w.Header().Set("Location", "/v1/runs/"+url.PathEscape(id))
	if !wait {
		writeJSON(w, http.StatusAccepted, triggerResponse{RunID: id})
		return
	}
	// A run can take minutes (pulls, verify windows), so this request alone may outlive the
	// server's timeouts: lift its deadlines (the write one would cut the answer off; the read one
	// is per stream in HTTP/2). The wait ends when the run does, the client goes away, or the
	// daemon stops.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	select {
	case <-done:
	case <-r.Context().Done():
		// Gone, or only half-closed (it may still read): either way the run goes on, and the
		// answer is the one without wait.
		s.log.Debug("http: client stopped waiting", "run_id", id)
		writeJSON(w, http.StatusAccepted, triggerResponse{RunID: id})
		return
	case <-s.stopping:
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "daemon is shutting down; the run may not finish",
			Reason: ReasonShuttingDown, RunID: id})
		return
	}
	rep, err := s.svc.Run(id)
	if err != nil || rep == nil {
		s.log.Error("http: finished run has no report", "run_id", id, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "run finished but its report is missing",
			Reason: ReasonInternal, RunID: id})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// parseUpdate turns the trigger's request into an updater.Request, refusing junk.
func (s *Server) parseUpdate(r *http.Request) (updater.Request, bool, error) {
	req := updater.Request{Trigger: TriggerHTTP}
	if err := unreadBody(r); err != nil {
		return req, false, err
	}
	q, err := parseQuery(r.URL.RawQuery, s.queryNames("container", "image", "wait", "force")...)
	if err != nil {
		return req, false, err
	}
	if req.Hosts, err = hostParams(q); err != nil {
		return req, false, err
	}
	wait, err := boolParam(q, "wait")
	if err != nil {
		return req, false, err
	}
	if req.Force, err = boolParam(q, "force"); err != nil {
		return req, false, err
	}
	for _, n := range q["container"] {
		name, err := checkContainerName(n)
		if err != nil {
			return req, false, err
		}
		if !slices.Contains(req.Containers, name) {
			req.Containers = append(req.Containers, name)
		}
	}
	images, err := splitImages(q["image"])
	if err != nil {
		return req, false, err
	}
	for _, ref := range images {
		ref, err := checkImageRef(ref)
		if err != nil {
			return req, false, err
		}
		if !slices.Contains(req.Images, ref) {
			req.Images = append(req.Images, ref)
		}
	}
	if len(req.Containers) > 0 && len(req.Images) > 0 {
		return req, false, badf("give container or image, not both")
	}
	return req, wait, nil
}

// unreadBody refuses the body of a request that carries nothing in it. The body is never read
// (waiting for it would let a client that never sends it hold the answer): a small one (curl -d
// '{}') is ignored, its size is checked by its Content-Length, and one without a length is refused.
func unreadBody(r *http.Request) error {
	switch {
	case r.ContentLength > maxBodyBytes:
		return badf("request body larger than %d bytes", maxBodyBytes)
	case r.ContentLength < 0:
		return badf("request body of unknown length (chunked); send none")
	}
	return nil
}

// Rollbacker is the part of the daemon POST /v1/rollback needs (the updater implements it): a run
// that puts a container (on host, "" = whichever has it) back on the image it ran before its last
// committed update. It fails with *updater.UnknownHostError, *updater.NotWatchedError or
// *updater.NoRollbackError before anything is queued.
type Rollbacker interface {
	Rollback(ctx context.Context, host, name string) (runID string, done <-chan struct{}, err error)
}

var _ Rollbacker = (*updater.Updater)(nil)

// handleRollback is POST /v1/rollback?container=NAME[&host=H][&wait=true].
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	host, name, wait, err := s.parseRollback(r)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	rb, ok := s.svc.(Rollbacker)
	if !ok {
		writeError(w, http.StatusNotFound, ReasonNotFound, "this daemon cannot roll containers back")
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	id, done, err := rb.Rollback(ctx, host, name)
	if err != nil {
		s.actionError(w, r, err, "could not start the rollback")
		return
	}
	s.log.Info("http: rollback asked for", "run_id", id, "remote", remoteIP(r), "host", host, "container", name, "wait", wait)
	s.answerRun(w, r, id, done, wait)
}

// parseRollback reads ?container=NAME (exactly one), ?host=H (at most one, with hosts) and ?wait.
func (s *Server) parseRollback(r *http.Request) (host, name string, wait bool, err error) {
	return s.parseContainerAction(r, "rollback")
}

// handleContainers is GET /v1/containers[?host=NAME…].
func (s *Server) handleContainers(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, s.queryNames()...)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	hosts, err := hostParams(q)
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	cs, err := s.svc.Containers(ctx, hosts...)
	if uh, ok := errors.AsType[*updater.UnknownHostError](err); ok {
		writeError(w, http.StatusNotFound, ReasonUnknownHost, uh.Error())
		return
	}
	if err != nil {
		s.serviceError(w, r, "could not list containers", err)
		return
	}
	if cs == nil {
		cs = []updater.ContainerStatus{}
	}
	writeJSON(w, http.StatusOK, containersResponse{Containers: cs})
}

// handleRuns is GET /v1/runs[?limit=N]: newest first, defaultRuns unless limit says otherwise.
func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, "limit")
	if err != nil {
		s.badRequest(w, r, err)
		return
	}
	limit := defaultRuns
	if v, ok, err := single(q, "limit"); err != nil {
		s.badRequest(w, r, err)
		return
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRunsLimit {
			s.badRequest(w, r, badf("limit must be a number from 1 to %d", maxRunsLimit))
			return
		}
		limit = n
	}
	runs, err := s.svc.Runs(limit)
	if err != nil {
		s.serviceError(w, r, "could not read run history", err)
		return
	}
	if runs == nil {
		runs = []updater.Report{}
	}
	writeJSON(w, http.StatusOK, runsResponse{Runs: runs})
}

// handleRun is GET /v1/runs/{id}.
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkRunID(id); err != nil {
		s.badRequest(w, r, err)
		return
	}
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	rep, err := s.svc.Run(id)
	switch {
	case errors.Is(err, updater.ErrRunNotFound) || (err == nil && rep == nil):
		writeError(w, http.StatusNotFound, ReasonRunNotFound, "run "+strconv.Quote(id)+" not found")
	case err != nil:
		s.serviceError(w, r, "could not read the run", err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// handleHealthz is GET /healthz: the process serves HTTP, nothing more.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

// handleReadyz is GET /readyz: the Docker engine answers within readyTimeout. With hosts
// configured it lists each host's state, and is ready while any host answers.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.detach(readyTimeout)
	defer cancel()
	if hs := s.hosts(); hs != nil {
		s.readyHosts(ctx, w, hs)
		return
	}
	if err := s.svc.Ready(ctx); err != nil {
		if s.base.Err() != nil {
			s.shuttingDown(w)
			return
		}
		s.log.Warn("http: not ready", "err", err)
		writeError(w, http.StatusServiceUnavailable, ReasonNotReady, "docker engine not reachable")
		return
	}
	writeJSON(w, http.StatusOK, statusResponse{Status: "ready"})
}

// readyHosts answers GET /readyz with each host's state: 200 "ready" when every host answers,
// 200 "degraded" when some do (the watcher serves those), 503 when none does.
func (s *Server) readyHosts(ctx context.Context, w http.ResponseWriter, hs HostsService) {
	states := hs.Hosts(ctx)
	up := 0
	for _, st := range states {
		if st.Reachable {
			up++
		} else {
			s.log.Warn("http: host not ready", "host", st.Name, "err", st.Error)
		}
	}
	switch {
	case s.base.Err() != nil && up < len(states):
		s.shuttingDown(w)
	case up == len(states):
		writeJSON(w, http.StatusOK, readyResponse{Status: "ready", Hosts: states})
	case up > 0:
		writeJSON(w, http.StatusOK, readyResponse{Status: "degraded", Hosts: states})
	default:
		writeJSON(w, http.StatusServiceUnavailable, notReadyResponse{errorBody{Error: "no docker engine reachable", Reason: ReasonNotReady}, states})
	}
}

// badRequest answers 400 with the validation message (built to be safe to show).
func (s *Server) badRequest(w http.ResponseWriter, r *http.Request, err error) {
	msg := "bad request"
	if bi, ok := errors.AsType[*badInput](err); ok {
		msg = bi.msg
	}
	s.log.Debug("http: bad request", "method", r.Method, "path", logPath(r.URL.Path), "remote", remoteIP(r), "why", msg)
	writeError(w, http.StatusBadRequest, ReasonBadRequest, msg)
}

// serviceError answers a failure of the daemon: the detail goes to the log only.
func (s *Server) serviceError(w http.ResponseWriter, r *http.Request, msg string, err error) {
	if s.base.Err() != nil {
		s.shuttingDown(w)
		return
	}
	s.log.Error("http: "+msg, "path", logPath(r.URL.Path), "err", err)
	writeError(w, http.StatusInternalServerError, ReasonInternal, msg)
}

// shuttingDown answers a request that the daemon's shutdown interrupted.
func (s *Server) shuttingDown(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, ReasonShuttingDown, "daemon is shutting down")
}

// Approver is the part of the daemon POST /v1/approve and /v1/reject need (the updater
// implements it): a decision on the update container name (on host, "" = whichever has it)
// waits for. Both fail with *updater.UnknownHostError, *updater.NotWatchedError or
// *updater.NoApprovalError before anything is recorded.
type Approver interface {
	Approve(ctx context.Context, host, name string) (updater.Approval, string, <-chan struct{}, error)
	Reject(ctx context.Context, host, name string) (updater.Approval, error)
}

var _ Approver = (*updater.Updater)(nil)

// approvalResponse is the answer of POST /v1/reject.
type approvalResponse struct {
	Container string           `json:"container"`
	Approval  updater.Approval `json:"approval"`
}

// handleApprove is POST /v1/approve?container=NAME[&host=H][&wait=true]: the update NAME waits for is
// approved (its exact digest) and a run of NAME applies it.
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	ap, host, name, wait, ok := s.decision(w, r, "approve")
	if !ok {
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	a, id, done, err := ap.Approve(ctx, host, name)
	if err != nil {
		s.actionError(w, r, err, "could not record the decision")
		return
	}
	s.log.Info("http: update approved", "run_id", id, "remote", remoteIP(r), "container", name, "digest", a.Digest, "wait", wait)
	s.answerRun(w, r, id, done, wait)
}

// handleReject is POST /v1/reject?container=NAME[&host=H]: the update NAME waits for is not applied;
// runs hold it until the registry has a newer digest, which waits for approval again.
func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	ap, host, name, _, ok := s.decision(w, r, "reject")
	if !ok {
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	a, err := ap.Reject(ctx, host, name)
	if err != nil {
		s.actionError(w, r, err, "could not record the decision")
		return
	}
	s.log.Info("http: update rejected", "remote", remoteIP(r), "container", name, "digest", a.Digest)
	writeJSON(w, http.StatusOK, approvalResponse{Container: name, Approval: a})
}

// decision reads POST /v1/{approve|reject}?container=NAME and finds the daemon's approvals; it
// answers the request itself (ok false) when it cannot go on. A rejection starts no run, so it
// takes no wait.
func (s *Server) decision(w http.ResponseWriter, r *http.Request, action string) (ap Approver, host, name string, wait, ok bool) {
	host, name, wait, err := s.parseContainerAction(r, action)
	if err == nil && wait && action == "reject" {
		err = badf("wait is not a parameter of /v1/reject: a rejection starts no run")
	}
	if err != nil {
		s.badRequest(w, r, err)
		return nil, "", "", false, false
	}
	if ap, ok = s.svc.(Approver); !ok {
		writeError(w, http.StatusNotFound, ReasonNotFound, "this daemon keeps no approvals")
	}
	return ap, host, name, wait, ok
}

// actionError answers a failed rollback, approve or reject: what the daemon refused (not
// watched, nothing to undo or decide), or msg for a failure of its own.
func (s *Server) actionError(w http.ResponseWriter, r *http.Request, err error, msg string) {
	var nw *updater.NotWatchedError
	var nr *updater.NoRollbackError
	var na *updater.NoApprovalError
	var uh *updater.UnknownHostError
	switch {
	case errors.As(err, &nw):
		writeError(w, http.StatusNotFound, ReasonNotWatched, nw.Error())
	case errors.As(err, &uh):
		writeError(w, http.StatusNotFound, ReasonUnknownHost, uh.Error())
	case errors.As(err, &nr):
		writeError(w, http.StatusConflict, ReasonNoPreviousUpdate, nr.Error())
	case errors.As(err, &na):
		writeError(w, http.StatusConflict, ReasonNoPendingApproval, na.Error())
	case errors.Is(err, updater.ErrHandedOver):
		s.shuttingDown(w)
	default:
		s.serviceError(w, r, msg, err)
	}
}

// parseContainerAction reads ?container=NAME (exactly one), ?host=H (at most one, with hosts)
// and ?wait of POST /v1/{action}.
func (s *Server) parseContainerAction(r *http.Request, action string) (host, name string, wait bool, err error) {
	if err := unreadBody(r); err != nil {
		return "", "", false, err
	}
	q, err := parseQuery(r.URL.RawQuery, s.queryNames("container", "wait")...)
	if err != nil {
		return "", "", false, err
	}
	if wait, err = boolParam(q, "wait"); err != nil {
		return "", "", false, err
	}
	if _, _, err := single(q, "host"); err != nil {
		return "", "", false, err
	}
	hosts, err := hostParams(q)
	if err != nil {
		return "", "", false, err
	}
	if len(hosts) == 1 {
		host = hosts[0]
	}
	n, ok, err := single(q, "container")
	switch {
	case err != nil:
		return "", "", false, err
	case !ok:
		return "", "", false, badf("container is required: POST /v1/%s?container=NAME", action)
	}
	name, err = checkContainerName(n)
	return host, name, wait, err
}

// StatusReporter is the part of the daemon GET /v1/status asks (the updater implements it).
type StatusReporter interface {
	Status() updater.Status
}

var _ StatusReporter = (*updater.Updater)(nil)

// statusAnswer is GET /v1/status: what the daemon does now and next, and what a client may do.
type statusAnswer struct {
	Version string `json:"version,omitempty"`
	updater.Status
	// TokenConfigured: http.token is set, so the actions (update, rollback, approve) are enabled.
	TokenConfigured bool `json:"token_configured"`
	PublicRead      bool `json:"public_read"`
}

// handleStatus is GET /v1/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	ans := statusAnswer{Version: s.opts.Version, TokenConfigured: s.token.set, PublicRead: s.publicRead}
	if sr, ok := s.svc.(StatusReporter); ok {
		ans.Status = sr.Status()
	}
	writeJSON(w, http.StatusOK, ans)
}
