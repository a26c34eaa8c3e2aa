package api

import (
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
		switch {
		case errors.As(err, &nw):
			writeError(w, http.StatusNotFound, ReasonNotWatched, nw.Error())
		case errors.Is(err, updater.ErrHandedOver):
			s.shuttingDown(w) // a self-update's successor takes the triggers from now on
		default:
			s.serviceError(w, r, "could not start a run", err)
		}
		return
	}
	s.log.Info("http: run triggered", "run_id", id, "remote", remoteIP(r),
		"containers", req.Containers, "images", req.Images, "wait", wait)
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
	// The body carries nothing and is never read (waiting for it would let a client that never
	// sends it hold the answer): a small one (curl -d '{}') is ignored, its size is checked by
	// its Content-Length, and one without a length is refused.
	switch {
	case r.ContentLength > maxBodyBytes:
		return req, false, badf("request body larger than %d bytes", maxBodyBytes)
	case r.ContentLength < 0:
		return req, false, badf("request body of unknown length (chunked); send none")
	}
	q, err := parseQuery(r.URL.RawQuery, "container", "image", "wait")
	if err != nil {
		return req, false, err
	}
	wait, err := boolParam(q, "wait")
	if err != nil {
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

// handleContainers is GET /v1/containers.
func (s *Server) handleContainers(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.badRequest(w, r, err)
		return
	}
	ctx, cancel := s.detach(serviceTimeout)
	defer cancel()
	cs, err := s.svc.Containers(ctx)
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

// handleReadyz is GET /readyz: the Docker engine answers within readyTimeout.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.detach(readyTimeout)
	defer cancel()
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

// badRequest answers 400 with the validation message (built to be safe to show).
func (s *Server) badRequest(w http.ResponseWriter, r *http.Request, err error) {
	msg := "bad request"
	if bi, ok := errors.AsType[*badInput](err); ok {
		msg = bi.msg
	}
	s.log.Debug("http: bad request", "method", r.Method, "path", r.URL.Path, "remote", remoteIP(r), "why", msg)
	writeError(w, http.StatusBadRequest, ReasonBadRequest, msg)
}

// serviceError answers a failure of the daemon: the detail goes to the log only.
func (s *Server) serviceError(w http.ResponseWriter, r *http.Request, msg string, err error) {
	if s.base.Err() != nil {
		s.shuttingDown(w)
		return
	}
	s.log.Error("http: "+msg, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, ReasonInternal, msg)
}

// shuttingDown answers a request that the daemon's shutdown interrupted.
func (s *Server) shuttingDown(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, ReasonShuttingDown, "daemon is shutting down")
}
