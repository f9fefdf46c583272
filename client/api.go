package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// NewJob asks for a job (POST /v1/jobs, scope jobs:write).
type NewJob struct {
	// SourceURL (an http(s) URL, e.g. a YouTube link) or SourceObject (a
	// path in the sources bucket): exactly one.
	SourceURL    string
	SourceObject string
	// Params are the clip's instructions for the worker, e.g.
	// {"start":10,"end":20}; any JSON object (nil means {}).
	Params any
	// MaxAttempts is how many claims the job gets (0: the server's 3).
	MaxAttempts int
	// ExpiresInSeconds deletes the job after this many seconds (0: it
	// expires only after it finishes, by the server's retention).
	ExpiresInSeconds int64
	// IdempotencyKey makes the create safe to repeat: the same key returns
	// the same job, a different request under it is a conflict. When
	// empty, CreateJob makes a random one for this call, so that its own
	// retries never make a second job; pass your own (an order id) to
	// make your retries safe too.
	IdempotencyKey string
}

// Created is CreateJob's answer.
type Created struct {
	Job Job
	// Replayed is true when the Idempotency-Key had already made this job.
	Replayed bool
}

// CreateJob makes a job owned by the key's owner. It is retried as the
// RetryPolicy says: always with an Idempotency-Key, so a retry after a
// lost answer returns the same job.
func (c *Client) CreateJob(ctx context.Context, j NewJob) (Created, error) {
	key := j.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	body := map[string]any{}
	if j.SourceURL != "" {
		body["source_url"] = j.SourceURL
	}
	if j.SourceObject != "" {
		body["source_object"] = j.SourceObject
	}
	if j.Params != nil {
		body["params"] = j.Params
	}
	if j.MaxAttempts != 0 {
		body["max_attempts"] = j.MaxAttempts
	}
	if j.ExpiresInSeconds != 0 {
		body["expires_in_seconds"] = j.ExpiresInSeconds
	}
	var out Created
	res, err := c.do(ctx, call{
		method: http.MethodPost, path: "/v1/jobs", body: body, safety: idempotent,
		header: http.Header{"Idempotency-Key": {key}},
	}, &out.Job)
	if err != nil {
		return Created{}, err
	}
	// A retry of our own first attempt also answers 200: the job is ours.
	out.Replayed = res.status == http.StatusOK && res.header.Get("Idempotent-Replayed") == "true" && res.attempts == 1
	return out, nil
}

// Job returns one job (scope jobs:read). A job the key may not see is
// ErrNotFound, like a missing one.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	var j Job
	_, err := c.do(ctx, call{method: http.MethodGet, path: jobPath(id, ""), safety: idempotent}, &j)
	return j, err
}

// ListOptions select and page jobs.
type ListOptions struct {
	Status   Status // only jobs in this status ("": all; admin keys must give one)
	PageSize int    // jobs per request (0: the server's default)
	Cursor   string // start after this cursor (a Page's Next)
}

// Page is one page of jobs, newest first.
type Page struct {
	Jobs []Job
	// Next is the cursor of the next page; "" on the last page.
	Next string
}

// JobsPage returns one page of the key's jobs, newest first (keyset
// pagination: pages stay consistent while jobs are added).
func (c *Client) JobsPage(ctx context.Context, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.Status != "" {
		q.Set("status", string(o.Status))
	}
	if o.PageSize > 0 {
		q.Set("limit", strconv.Itoa(o.PageSize))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var out struct {
		Jobs       []Job   `json:"jobs"`
		NextCursor *string `json:"next_cursor"`
	}
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/jobs", query: q, safety: idempotent}, &out); err != nil {
		return Page{}, err
	}
	p := Page{Jobs: out.Jobs}
	if out.NextCursor != nil {
		p.Next = *out.NextCursor
	}
	return p, nil
}

// Jobs iterates over every job of the key, newest first, one page per
// request. On an error it yields it once and stops.
//
//	for job, err := range c.Jobs(ctx, client.ListOptions{Status: client.StatusDone}) {
//		if err != nil { return err }
//		...
//	}
func (c *Client) Jobs(ctx context.Context, o ListOptions) iter.Seq2[Job, error] {
	return func(yield func(Job, error) bool) {
		for {
			p, err := c.JobsPage(ctx, o)
			if err != nil {
				yield(Job{}, err)
				return
			}
			for _, j := range p.Jobs {
				if !yield(j, nil) {
					return
				}
			}
			if p.Next == "" {
				return
			}
			o.Cursor = p.Next
		}
	}
}

// CancelJob cancels a queued or processing job (scope jobs:write); its
// worker learns it at its next report. A finished job is
// ErrInvalidTransition. Safe to retry: when a retry finds the job already
// canceled (by the attempt whose answer was lost), it returns that job.
func (c *Client) CancelJob(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	var j Job
	_, err := c.do(ctx, call{method: http.MethodPost, path: jobPath(id, "cancel"), safety: idempotent}, &j)
	if e, ok := err.(*Error); ok && e.Code == CodeInvalidTransition && e.Attempts > 1 {
		if cur, gerr := c.Job(ctx, id); gerr == nil && cur.Status == StatusCanceled {
			return cur, nil
		}
	}
	return j, err
}

// EventsPage is a page of a job's events.
type EventsPage struct {
	Events []Event
	// NextAfter is the after of the next page: the last event's id.
	NextAfter int64
}

// EventsPage returns up to limit events of the job after the event with
// id after (0: from the start), in stream order (scope jobs:read).
func (c *Client) EventsPage(ctx context.Context, id string, after int64, limit int) (EventsPage, error) {
	if err := checkID(id); err != nil {
		return EventsPage{}, err
	}
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Events    []Event `json:"events"`
		NextAfter int64   `json:"next_after"`
	}
	if _, err := c.do(ctx, call{method: http.MethodGet, path: jobPath(id, "events"), query: q, safety: idempotent}, &out); err != nil {
		return EventsPage{}, err
	}
	return EventsPage{Events: out.Events, NextAfter: out.NextAfter}, nil
}

// Events iterates over the job's events recorded so far, in order, paging
// as needed. For events as they happen, use Stream.
func (c *Client) Events(ctx context.Context, id string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		var after int64
		for {
			p, err := c.EventsPage(ctx, id, after, 0)
			if err != nil {
				yield(Event{}, err)
				return
			}
			for _, ev := range p.Events {
				if !yield(ev, nil) {
					return
				}
			}
			if len(p.Events) == 0 {
				return
			}
			after = p.NextAfter
		}
	}
}

// Results are a done job's result objects with signed download URLs.
type Results struct {
	JobID   string      `json:"job_id"`
	Status  Status      `json:"status"`
	Results []SignedURL `json:"results"`
}

// Results signs download URLs for a done job's results, valid for
// ttlSeconds (0: the server's default). A job that is not done is
// ErrInvalidTransition.
func (c *Client) Results(ctx context.Context, id string, ttlSeconds int) (Results, error) {
	if err := checkID(id); err != nil {
		return Results{}, err
	}
	q := url.Values{}
	if ttlSeconds > 0 {
		q.Set("ttl_seconds", strconv.Itoa(ttlSeconds))
	}
	var out Results
	_, err := c.do(ctx, call{method: http.MethodGet, path: jobPath(id, "result"), query: q, safety: idempotent}, &out)
	return out, err
}

// rawJSON marshals v once, for bodies that hold caller data.
func rawJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	if r, ok := v.(json.RawMessage); ok {
		return r, nil
	}
	return json.Marshal(v)
}

// newIdempotencyKey is a random key for one call's own retries.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "sdk-" + hex.EncodeToString(b[:])
}

// SourceUploadURL signs an upload URL for a source object in the key's own
// folder of the sources bucket ("<owner uid>/" for a key with an owner,
// "keys/<key id>/" for one without): the only place a job made with this
// key may take its source from. The answer's Path is the SourceObject to
// create the job with. ttl 0 takes the server's default.
func (c *Client) SourceUploadURL(ctx context.Context, name string, ttl time.Duration) (SignedURL, error) {
	body := map[string]any{"name": name}
	if ttl > 0 {
		body["ttl_seconds"] = int64((ttl + time.Second - 1) / time.Second)
	}
	var u SignedURL
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/uploads", body: body, safety: idempotent}, &u)
	return u, err
}

// UploadSource uploads r as a source named name in the key's folder (see
// SourceUploadURL) with contentType, and returns where it went: create
// the job with NewJob{SourceObject: u.Path}. See Upload for retries; an
// existing object is not replaced (ErrConflict).
func (c *Client) UploadSource(ctx context.Context, name, contentType string, r io.Reader) (SignedURL, error) {
	u, err := c.SourceUploadURL(ctx, name, 0)
	if err != nil {
		return SignedURL{}, err
	}
	return u, c.Upload(ctx, u.URL, contentType, r)
}
