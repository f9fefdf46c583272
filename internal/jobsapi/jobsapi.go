// Package jobsapi is the HTTP API for jobs: clients create, read, list and
// cancel their jobs, read and stream their events and fetch signed result
// URLs; workers in any language claim jobs and report heartbeats,
// progress, results, failures and their own events. Every route needs an
// API key with the route's scope.
package jobsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/storage"
)

// Deps are what the API needs. Auth and storage are passed in so that the
// daemon wires its own and tests can wire theirs.
type Deps struct {
	DB database.DB
	// Auth admits a request only with an API key holding a route's
	// scopes (admin holds them all), as for every other API.
	Auth   *auth.Authenticator
	Signer storage.Signer
	// Hub wakes event streams on NOTIFY; run it with Hub.Run.
	Hub    *Hub
	Logger *slog.Logger

	JobRetention time.Duration     // expires_at of finished jobs
	URLPolicy    storage.TTLPolicy // lifetimes of signed URLs: default and cap

	// Shutdown ends every event stream when it is done, so that the
	// server's graceful shutdown need not wait for them; clients
	// reconnect (to another replica) with Last-Event-ID.
	Shutdown context.Context

	Stream StreamOptions

	// Creates and Appends, if set, gather concurrent single job creates
	// and event appends into shared commits (group commit); the daemon
	// closes them after the server has drained.
	Creates *jobs.GroupCommit
	Appends *events.GroupCommit
}

// StreamOptions tune event streams. Zero values take the defaults.
type StreamOptions struct {
	// Heartbeat is how often an idle stream sends a comment, so that
	// proxies and clients keep the connection (default 15 s).
	Heartbeat time.Duration
	// Reread is how often a stream re-reads the database even without a
	// notification, in case one was lost (default 5 s).
	Reread time.Duration
	// WriteTimeout bounds each write to a stream's client; a client that
	// stops reading is dropped after it (default 30 s).
	WriteTimeout time.Duration
}

func (o *StreamOptions) defaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Reread <= 0 {
		o.Reread = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
}

type api struct {
	Deps
	jobs   *jobs.Repo
	events *events.Repo
}

// Register adds the routes to e.
func Register(e *echo.Echo, d Deps) error {
	switch {
	case d.DB == nil, d.Auth == nil, d.Signer == nil, d.Hub == nil, d.Shutdown == nil:
		return errors.New("jobsapi: DB, Auth, Signer, Hub and Shutdown are required")
	case d.JobRetention <= 0:
		return errors.New("jobsapi: JobRetention must be positive")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.Stream.defaults()
	a := &api{Deps: d, jobs: jobs.New(d.DB), events: events.New(d.DB)}

	read := d.Auth.Require(apikeys.ScopeJobsRead)
	write := d.Auth.Require(apikeys.ScopeJobsWrite)
	worker := d.Auth.Require(apikeys.ScopeWorker)

	v1 := e.Group("/v1")
	v1.POST("/jobs", a.create, write)
	v1.GET("/jobs", a.list, read)
	v1.GET("/jobs/:id", a.get, read)
	v1.POST("/jobs/:id/cancel", a.cancel, write)
	v1.GET("/jobs/:id/events", a.listEvents, read)
	v1.GET("/jobs/:id/result", a.result, read)
	v1.POST("/uploads", a.sourceUpload, write)

	v1.POST("/worker/claim", a.claim, worker)
	v1.POST("/jobs/:id/heartbeat", a.heartbeat, worker)
	v1.POST("/jobs/:id/progress", a.progress, worker)
	v1.POST("/jobs/:id/complete", a.complete, worker)
	v1.POST("/jobs/:id/fail", a.fail, worker)
	v1.POST("/jobs/:id/events", a.appendEvent, worker)
	v1.POST("/jobs/:id/source-url", a.sourceURL, worker)
	v1.POST("/jobs/:id/upload-urls", a.uploadURLs, worker)
	return nil
}

// jobID reads the :id path parameter.
func jobID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.InvalidInput, "job id must be a UUID")
	}
	return id, nil
}

// key returns the request's API key. Every route is behind Require, so a
// missing key is a wiring mistake, never the caller's.
func (a *api) key(c echo.Context) (apikeys.Key, error) {
	key, ok := auth.KeyFrom(c)
	if !ok {
		return apikeys.Key{}, apperr.New(apperr.Internal, "route has no API key check")
	}
	return key, nil
}

// canSee says whether key may see job: an admin key sees every job, a key
// with an owner the owner's jobs (whichever key made them), a key without
// an owner the jobs it made itself.
func canSee(key apikeys.Key, job jobs.Job) bool {
	switch {
	case key.HasScope(apikeys.ScopeAdmin):
		return true
	case key.OwnerID != nil:
		return job.OwnerID.Valid && job.OwnerID.UUID == *key.OwnerID
	default:
		return job.APIKeyID.Valid && job.APIKeyID.UUID == key.ID
	}
}

// visibleJob returns the job of the path's :id if the request's key may
// see it. A job it may not see is not_found, exactly like a missing one,
// so ids of other owners' jobs cannot be probed.
func (a *api) visibleJob(c echo.Context) (jobs.Job, error) {
	id, err := jobID(c)
	if err != nil {
		return jobs.Job{}, err
	}
	key, err := a.key(c)
	if err != nil {
		return jobs.Job{}, err
	}
	job, err := a.jobs.Get(c.Request().Context(), id)
	if err != nil {
		return jobs.Job{}, err
	}
	if !canSee(key, job) {
		return jobs.Job{}, apperr.New(apperr.NotFound, "job not found")
	}
	return job, nil
}
