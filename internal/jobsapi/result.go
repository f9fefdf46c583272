package jobsapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/storage"
)

// signConcurrency bounds signing calls in flight for one request (the
// Supabase backend makes one HTTP call per object).
const signConcurrency = 8

type resultResponse struct {
	JobID   uuid.UUID           `json:"job_id"`
	Status  jobs.Status         `json:"status"`
	Results []storage.SignedURL `json:"results"`
}

// result signs a download URL for each of a done job's result objects in
// the results bucket, in result_keys order. A job that is not done has no
// results yet (or never will): invalid_transition, distinct from the
// not_found of a job the key cannot see.
func (a *api) result(c echo.Context) error {
	var seconds int64
	if s := c.QueryParam("ttl_seconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return apperr.New(apperr.InvalidInput, "ttl_seconds must be a whole number of seconds, at least 1")
		}
		seconds = n
	}
	ttl, err := a.ttl(seconds)
	if err != nil {
		return err
	}
	job, err := a.visibleJob(c)
	if err != nil {
		return err
	}
	if job.Status != jobs.StatusDone {
		return apperr.New(apperr.InvalidTransition, "job is %s; results exist only once it is done", job.Status)
	}
	urls, err := signAll(c.Request().Context(), job.ResultKeys, func(ctx context.Context, key string) (storage.SignedURL, error) {
		return a.Signer.SignDownload(ctx, storage.BucketResults, key, ttl)
	})
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, resultResponse{JobID: job.ID, Status: job.Status, Results: urls})
}

// ttl resolves a requested lifetime in seconds (0: the default) against
// the policy's cap.
func (a *api) ttl(seconds int64) (time.Duration, error) {
	maxSeconds := int64(a.URLPolicy.Max / time.Second)
	if a.URLPolicy.Max <= 0 {
		maxSeconds = int64(storage.DefaultMaxTTL / time.Second)
	}
	if seconds < 0 || seconds > maxSeconds {
		return 0, apperr.New(apperr.InvalidInput, "ttl_seconds must be from 1 to %d", maxSeconds)
	}
	return a.URLPolicy.Resolve(time.Duration(seconds) * time.Second)
}

// signAll signs keys concurrently and returns the URLs in keys' order.
func signAll(ctx context.Context, keys []string, sign func(context.Context, string) (storage.SignedURL, error)) ([]storage.SignedURL, error) {
	urls := make([]storage.SignedURL, len(keys))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(signConcurrency)
	for i, key := range keys {
		g.Go(func() error {
			u, err := sign(ctx, key)
			urls[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return urls, nil
}

// heldJob returns the path's job if workerID holds it (processing, claimed
// by workerID), else invalid_transition as the worker's other reports say.
// It only reads: the URLs it leads to grant access to objects, not to
// the job.
func (a *api) heldJob(c echo.Context, workerID string) (jobs.Job, error) {
	id, err := jobID(c)
	if err != nil {
		return jobs.Job{}, err
	}
	if workerID == "" {
		return jobs.Job{}, apperr.New(apperr.InvalidInput, "worker_id is required")
	}
	job, err := a.jobs.Get(c.Request().Context(), id)
	if err != nil {
		return jobs.Job{}, err
	}
	if job.Status != jobs.StatusProcessing {
		return jobs.Job{}, apperr.New(apperr.InvalidTransition, "job %s is %s, not processing", id, job.Status)
	}
	if job.WorkerID == nil || *job.WorkerID != workerID {
		return jobs.Job{}, apperr.New(apperr.InvalidTransition, "job %s is held by another worker", id)
	}
	return job, nil
}

type sourceURLRequest struct {
	WorkerID   string `json:"worker_id"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// sourceURL signs a download URL for the source object of an uploaded
// job (in the sources bucket), for the worker that holds the job.
func (a *api) sourceURL(c echo.Context) error {
	var req sourceURLRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	ttl, err := a.ttl(req.TTLSeconds)
	if err != nil {
		return err
	}
	job, err := a.heldJob(c, req.WorkerID)
	if err != nil {
		return err
	}
	if job.SourceObject == nil {
		return apperr.New(apperr.InvalidInput, "job %s has no source object: its source is source_url", job.ID)
	}
	u, err := a.Signer.SignDownload(c.Request().Context(), storage.BucketSources, *job.SourceObject, ttl)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, u)
}

type uploadURLsRequest struct {
	WorkerID   string   `json:"worker_id"`
	Keys       []string `json:"keys"`
	TTLSeconds int64    `json:"ttl_seconds"`
}

type uploadURLsResponse struct {
	Uploads []storage.SignedURL `json:"uploads"`
}

// uploadURLs signs upload URLs for result objects in the results bucket,
// for the worker that holds the job, only under the job's prefix
// ("<job id>/"); it then completes the job with the same keys as
// result_keys.
func (a *api) uploadURLs(c echo.Context) error {
	var req uploadURLsRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if len(req.Keys) == 0 || len(req.Keys) > jobs.MaxResultKeys {
		return apperr.New(apperr.InvalidInput, "keys must name 1 to %d objects", jobs.MaxResultKeys)
	}
	ttl, err := a.ttl(req.TTLSeconds)
	if err != nil {
		return err
	}
	job, err := a.heldJob(c, req.WorkerID)
	if err != nil {
		return err
	}
	// Results live under the job's own prefix: a worker cannot point a
	// job at an object of another job, and complete accepts only these.
	if err := jobs.CheckResultKeys(job.ID, req.Keys); err != nil {
		return err
	}
	urls, err := signAll(c.Request().Context(), req.Keys, func(ctx context.Context, key string) (storage.SignedURL, error) {
		return a.Signer.SignUpload(ctx, storage.BucketResults, key, ttl)
	})
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, uploadURLsResponse{Uploads: urls})
}
