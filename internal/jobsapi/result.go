package jobsapi

import (
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
	ttl := a.SignedURLTTL
	if s := c.QueryParam("ttl_seconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		maxSeconds := int64(a.SignedURLMaxTTL / time.Second)
		if err != nil || n < 1 || n > maxSeconds {
			return apperr.New(apperr.InvalidInput, "ttl_seconds must be a whole number from 1 to %d", maxSeconds)
		}
		ttl = time.Duration(n) * time.Second
	}
	job, err := a.visibleJob(c)
	if err != nil {
		return err
	}
	if job.Status != jobs.StatusDone {
		return apperr.New(apperr.InvalidTransition, "job is %s; results exist only once it is done", job.Status)
	}
	urls := make([]storage.SignedURL, len(job.ResultKeys))
	g, ctx := errgroup.WithContext(c.Request().Context())
	g.SetLimit(signConcurrency)
	for i, key := range job.ResultKeys {
		g.Go(func() error {
			u, err := a.Signer.SignDownload(ctx, storage.BucketResults, key, ttl)
			urls[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, resultResponse{JobID: job.ID, Status: job.Status, Results: urls})
}
