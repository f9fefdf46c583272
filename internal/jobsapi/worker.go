package jobsapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/jobs"
)

// The worker endpoints serve the whole queue: a worker key claims any
// runnable job, whoever owns it, and may then act only on the jobs its
// worker_id holds. Give the worker scope to the operator's own service keys.

// maxRetryDelay bounds retry_delay_seconds (30 days).
const maxRetryDelay = 30 * 24 * time.Hour

// Event types a stream reserves for itself; workers cannot append them.
var reservedEventTypes = map[string]bool{eventEnd: true, "error": true}

type claimRequest struct {
	WorkerID string `json:"worker_id"`
	Limit    *int   `json:"limit"`
}

type claimResponse struct {
	Jobs []jobs.Job `json:"jobs"`
}

func (a *api) claim(c echo.Context) error {
	var req claimRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	n := 1
	if req.Limit != nil {
		n = *req.Limit
	}
	claimed, err := a.jobs.Claim(c.Request().Context(), req.WorkerID, n)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, claimResponse{Jobs: claimed})
}

type heartbeatRequest struct {
	WorkerID string `json:"worker_id"`
}

func (a *api) heartbeat(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var req heartbeatRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	job, err := a.jobs.Heartbeat(c.Request().Context(), id, req.WorkerID)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

type progressRequest struct {
	WorkerID string `json:"worker_id"`
	Progress *int   `json:"progress"`
}

func (a *api) progress(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var req progressRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if req.Progress == nil {
		return apperr.New(apperr.InvalidInput, "progress is required (0 to 100)")
	}
	job, err := a.jobs.Progress(c.Request().Context(), id, req.WorkerID, *req.Progress)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

type completeRequest struct {
	WorkerID   string   `json:"worker_id"`
	ResultKeys []string `json:"result_keys"`
}

// complete marks the job done with its result objects. Retrying it is
// safe: see below.
func (a *api) complete(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	job, err := a.jobs.Complete(ctx, id, req.WorkerID, req.ResultKeys, a.JobRetention)
	if apperr.Is(err, apperr.InvalidTransition) {
		// A worker that lost the answer to its complete retries it: the
		// same worker with the same results gets the done job again.
		if cur, gerr := a.jobs.Get(ctx, id); gerr == nil && cur.Status == jobs.StatusDone &&
			cur.WorkerID != nil && *cur.WorkerID == req.WorkerID && slices.Equal(cur.ResultKeys, nonNil(req.ResultKeys)) {
			return httpapi.OK(c, http.StatusOK, cur)
		}
	}
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type failRequest struct {
	WorkerID          string `json:"worker_id"`
	ErrorCode         string `json:"error_code"`
	ErrorMessage      string `json:"error_message"`
	Retryable         bool   `json:"retryable"`
	RetryDelaySeconds int64  `json:"retry_delay_seconds"`
}

// fail records a failure; the returned job's status says whether it went
// back to the queue (queued) or failed for good (failed).
func (a *api) fail(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var req failRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if req.RetryDelaySeconds < 0 || req.RetryDelaySeconds > int64(maxRetryDelay/time.Second) {
		return apperr.New(apperr.InvalidInput, "retry_delay_seconds must be from 0 to %d", int64(maxRetryDelay/time.Second))
	}
	job, err := a.jobs.Fail(c.Request().Context(), id, req.WorkerID, req.ErrorCode, req.ErrorMessage,
		req.Retryable, time.Duration(req.RetryDelaySeconds)*time.Second, a.JobRetention)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

type appendEventRequest struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// appendEvent adds a worker's own event (a log line, a stage, a metric)
// to the job's stream; status and progress events come only from the
// database.
func (a *api) appendEvent(c echo.Context) error {
	id, err := jobID(c)
	if err != nil {
		return err
	}
	var req appendEventRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if reservedEventTypes[req.Type] {
		return apperr.New(apperr.InvalidInput, "event type %q is reserved for event streams", req.Type)
	}
	ev, err := a.addEvent(c.Request().Context(), id, req.Type, req.Data)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusCreated, ev)
}
