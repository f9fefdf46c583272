package jobsapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/storage"
)

// HeaderIdempotencyKey makes POST /v1/jobs replayable.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderReplayed is set on a create that returned an existing job.
const HeaderReplayed = "Idempotent-Replayed"

// maxExpiresIn bounds expires_in_seconds (ten years).
const maxExpiresIn = 10 * 365 * 24 * 3600

type createRequest struct {
	SourceURL        string          `json:"source_url"`
	SourceObject     string          `json:"source_object"`
	Params           json.RawMessage `json:"params"`
	MaxAttempts      int             `json:"max_attempts"`
	ExpiresInSeconds *int64          `json:"expires_in_seconds"`
}

// create makes a job owned by the key's owner and attributed to the key.
// With an Idempotency-Key, a replay returns the first job with 200 (the
// first create answers 201); a replay whose body asks for a different job
// is a conflict, so a reused key cannot silently return the wrong job.
func (a *api) create(c echo.Context) error {
	var req createRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	key, err := a.key(c)
	if err != nil {
		return err
	}
	p := jobs.CreateParams{
		APIKeyID:       uuid.NullUUID{UUID: key.ID, Valid: true},
		SourceURL:      req.SourceURL,
		SourceObject:   req.SourceObject,
		Params:         req.Params,
		MaxAttempts:    req.MaxAttempts,
		IdempotencyKey: c.Request().Header.Get(HeaderIdempotencyKey),
	}
	if key.OwnerID != nil {
		p.OwnerID = uuid.NullUUID{UUID: *key.OwnerID, Valid: true}
	}
	if s := req.ExpiresInSeconds; s != nil {
		if *s < 1 || *s > maxExpiresIn {
			return apperr.New(apperr.InvalidInput, "expires_in_seconds must be between 1 and %d", maxExpiresIn)
		}
		at := time.Now().Add(time.Duration(*s) * time.Second)
		p.ExpiresAt = &at
	}
	job, created, err := a.createJob(c.Request().Context(), p)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+job.ID.String())
	if created {
		return httpapi.OK(c, http.StatusCreated, job)
	}
	if !sameRequest(job, req) {
		return apperr.New(apperr.Conflict, "Idempotency-Key was already used for a different job")
	}
	c.Response().Header().Set(HeaderReplayed, "true")
	return httpapi.OK(c, http.StatusOK, job)
}

// sameRequest reports whether req asks for job. Params are compared as
// JSON values: the database normalizes their spacing and key order.
func sameRequest(job jobs.Job, req createRequest) bool {
	if deref(job.SourceURL) != req.SourceURL || deref(job.SourceObject) != req.SourceObject {
		return false
	}
	maxAttempts := req.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = jobs.DefaultMaxAttempts
	}
	if job.MaxAttempts != maxAttempts {
		return false
	}
	params := req.Params
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage("{}")
	}
	var want, got any
	if json.Unmarshal(params, &want) != nil || json.Unmarshal(job.Params, &got) != nil {
		return false
	}
	return reflect.DeepEqual(want, got)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (a *api) get(c echo.Context) error {
	job, err := a.visibleJob(c)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

// listResponse always carries next_cursor: null on the last page.
type listResponse struct {
	Jobs       []jobs.Job `json:"jobs"`
	NextCursor *string    `json:"next_cursor"`
}

// list pages through the key's jobs, newest first, optionally in one
// status. An admin key lists every job, one status at a time: only the
// (status, created_at) index serves a listing across owners.
func (a *api) list(c echo.Context) error {
	q := c.QueryParams()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > jobs.MaxListLimit {
			return apperr.New(apperr.InvalidInput, "limit must be a whole number from 1 to %d", jobs.MaxListLimit)
		}
		limit = n
	}
	cursor, err := jobs.ParseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	status := jobs.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		return apperr.New(apperr.InvalidInput, "status must be one of queued, processing, done, failed, canceled")
	}

	ctx := c.Request().Context()
	key, err := a.key(c)
	if err != nil {
		return err
	}
	var page jobs.Page
	switch {
	case key.HasScope(apikeys.ScopeAdmin):
		if status == "" {
			return apperr.New(apperr.InvalidInput, "an admin key lists every owner's jobs and must give a status")
		}
		page, err = a.jobs.ListByStatus(ctx, status, cursor, limit)
	case key.OwnerID != nil && status == "":
		page, err = a.jobs.ListByOwner(ctx, *key.OwnerID, cursor, limit)
	case key.OwnerID != nil:
		page, err = a.jobs.ListByOwnerAndStatus(ctx, *key.OwnerID, status, cursor, limit)
	case status == "":
		page, err = a.jobs.ListByAPIKey(ctx, key.ID, cursor, limit)
	default:
		page, err = a.jobs.ListByAPIKeyAndStatus(ctx, key.ID, status, cursor, limit)
	}
	if err != nil {
		return err
	}
	resp := listResponse{Jobs: page.Jobs}
	if page.Next != "" {
		next := string(page.Next)
		resp.NextCursor = &next
	}
	return httpapi.OK(c, http.StatusOK, resp)
}

func (a *api) cancel(c echo.Context) error {
	job, err := a.visibleJob(c)
	if err != nil {
		return err
	}
	job, err = a.jobs.Cancel(c.Request().Context(), job.ID, a.JobRetention)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, job)
}

type sourceUploadRequest struct {
	Name       string `json:"name"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// sourceUpload signs an upload URL for a source object in the key's own
// folder of the sources bucket (jobs.SourceFolder: "<owner uid>/" for a
// key with an owner, "keys/<key id>/" for one without), the only place a
// job made with the key may take its source from. The answer's path is
// the source_object to create the job with.
func (a *api) sourceUpload(c echo.Context) error {
	var req sourceUploadRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	key, err := a.key(c)
	if err != nil {
		return err
	}
	ttl, err := a.ttl(req.TTLSeconds)
	if err != nil {
		return err
	}
	if req.Name == "" {
		return apperr.New(apperr.InvalidInput, "name is required: the object's name within your folder")
	}
	owner := uuid.NullUUID{}
	if key.OwnerID != nil {
		owner = uuid.NullUUID{UUID: *key.OwnerID, Valid: true}
	}
	path := jobs.SourceFolder(owner, uuid.NullUUID{UUID: key.ID, Valid: true}) + req.Name
	if err := storage.ValidateObjectName(path); err != nil {
		return err
	}
	u, err := a.Signer.SignUpload(c.Request().Context(), storage.BucketSources, path, ttl)
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, u)
}
