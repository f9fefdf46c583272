package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Worker runs the worker contract for one worker process: every report
// carries its worker id. Get one from Client.Worker; the key needs the
// worker scope. Safe for concurrent use.
type Worker struct {
	c  *Client
	id string
}

// Worker returns the worker client for workerID, a stable name of this
// process (1 to 255 bytes, e.g. "host-3/pid-812").
func (c *Client) Worker(workerID string) *Worker { return &Worker{c: c, id: workerID} }

// ID is the worker id sent with every report.
func (w *Worker) ID() string { return w.id }

// Claim takes up to limit runnable jobs (1 to 1000), oldest first, and
// holds them: each is processing under this worker id. It never waits:
// no job is an empty slice; sleep a little (1 to 5 s with jitter) and
// claim again. Start Hold for each job at once.
func (w *Worker) Claim(ctx context.Context, limit int) ([]Job, error) {
	var out struct {
		Jobs []Job `json:"jobs"`
	}
	_, err := w.c.do(ctx, call{
		method: http.MethodPost, path: "/v1/worker/claim", safety: once,
		body: map[string]any{"worker_id": w.id, "limit": limit},
	}, &out)
	return out.Jobs, err
}

// Heartbeat tells the daemon the job is still being worked on. Hold sends
// them for you. An error for which IsJobLost is true means: drop the job.
func (w *Worker) Heartbeat(ctx context.Context, jobID string) (Job, error) {
	return w.report(ctx, jobID, "heartbeat", map[string]any{"worker_id": w.id}, idempotent)
}

// Progress reports a whole percentage, 0 to 100 (also a heartbeat).
// Clients see each change live.
func (w *Worker) Progress(ctx context.Context, jobID string, percent int) (Job, error) {
	return w.report(ctx, jobID, "progress", map[string]any{"worker_id": w.id, "progress": percent}, idempotent)
}

// Event appends the worker's own event to the job's stream: typ matches
// ^[a-z][a-z0-9_.]{0,63}$ (e.g. "log", "stage.encode"), data is a JSON
// object (nil: {}). A retry after a lost answer can record it twice.
func (w *Worker) Event(ctx context.Context, jobID, typ string, data any) (Event, error) {
	if err := checkID(jobID); err != nil {
		return Event{}, err
	}
	body := map[string]any{"type": typ}
	if data != nil {
		body["data"] = data
	}
	var ev Event
	_, err := w.c.do(ctx, call{method: http.MethodPost, path: jobPath(jobID, "events"), body: body, safety: idempotent}, &ev)
	return ev, err
}

// Complete marks the job done with its results: the Paths of the
// SignedURLs that UploadURLs returned, uploaded first. Safe to retry.
func (w *Worker) Complete(ctx context.Context, jobID string, resultPaths []string) (Job, error) {
	if resultPaths == nil {
		resultPaths = []string{}
	}
	return w.report(ctx, jobID, "complete", map[string]any{"worker_id": w.id, "result_keys": resultPaths}, idempotent)
}

// Failure describes why a job failed.
type Failure struct {
	// Code is a short machine-readable reason (1 to 100 bytes), e.g.
	// "download_failed".
	Code string
	// Message is for people (cut at 4000 characters).
	Message string
	// Retryable puts the job back in the queue when it has attempts
	// left, claimable after RetryDelay.
	Retryable  bool
	RetryDelay time.Duration
}

// Fail records a failure. The answer's Status says where the job went:
// queued (it will be retried) or failed. Fail is not repeated after a lost
// answer (a repeat would answer invalid_transition once the first went
// through), only when the daemon surely did not act (429, 503, no
// connection).
func (w *Worker) Fail(ctx context.Context, jobID string, f Failure) (Job, error) {
	body := map[string]any{"worker_id": w.id, "error_code": f.Code, "retryable": f.Retryable}
	if f.Message != "" {
		body["error_message"] = f.Message
	}
	if f.RetryDelay > 0 {
		body["retry_delay_seconds"] = int64((f.RetryDelay + time.Second - 1) / time.Second)
	}
	return w.report(ctx, jobID, "fail", body, once)
}

func (w *Worker) report(ctx context.Context, jobID, what string, body any, s safety) (Job, error) {
	if err := checkID(jobID); err != nil {
		return Job{}, err
	}
	var j Job
	_, err := w.c.do(ctx, call{method: http.MethodPost, path: jobPath(jobID, what), body: body, safety: s}, &j)
	return j, err
}

// SourceURL signs a download URL for the job's source object (upload
// jobs only; a job with a source_url has none: ErrInvalidInput). ttl 0
// takes the server's default.
func (w *Worker) SourceURL(ctx context.Context, jobID string, ttl time.Duration) (SignedURL, error) {
	if err := checkID(jobID); err != nil {
		return SignedURL{}, err
	}
	body := map[string]any{"worker_id": w.id}
	if ttl > 0 {
		body["ttl_seconds"] = int64((ttl + time.Second - 1) / time.Second)
	}
	var u SignedURL
	_, err := w.c.do(ctx, call{method: http.MethodPost, path: jobPath(jobID, "source-url"), body: body, safety: idempotent}, &u)
	return u, err
}

// Download is an object being read. Close it.
type Download struct {
	io.ReadCloser
	ContentType string
	Size        int64 // -1 when unknown
}

// DownloadSource signs the job's source URL and opens it. A URL only has
// to be valid when the transfer starts, so a long download is fine.
func (w *Worker) DownloadSource(ctx context.Context, jobID string) (*Download, error) {
	u, err := w.SourceURL(ctx, jobID, 0)
	if err != nil {
		return nil, err
	}
	return w.c.Download(ctx, u.URL)
}

// Download GETs a signed URL (a source or a result), retrying until the
// transfer starts as the RetryPolicy allows.
func (c *Client) Download(ctx context.Context, signedURL string) (*Download, error) {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, signedURL, nil)
		if err != nil {
			return nil, &Error{Code: CodeInvalidInput, Message: "not a URL"}
		}
		req.Header.Set("User-Agent", c.ua)
		resp, err := c.stream.Do(req)
		var e *Error
		status := 0
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctxErr(ctx)
			}
			e = &Error{Code: CodeUnavailable, Message: "the server could not be reached", Err: redact(err)}
		case resp.StatusCode == http.StatusOK:
			return &Download{ReadCloser: resp.Body, ContentType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}, nil
		default:
			status = resp.StatusCode
			e = storageError(resp)
		}
		e.Attempts, e.Transfer = attempt, true
		if attempt >= c.retry.MaxAttempts || !retryable(idempotent, status, err) {
			return nil, e
		}
		if err := sleep(ctx, max(c.retry.backoff(attempt), min(e.RetryAfter, c.retry.MaxRetryAfter))); err != nil {
			return nil, err
		}
	}
}

// UploadURLs signs upload URLs for result objects of a job this worker
// holds. keys name the objects wanted (by convention "<job id>/<name>",
// see ResultKey); the server decides where they go: name results in
// Complete by the returned Paths, never by the keys asked for.
func (w *Worker) UploadURLs(ctx context.Context, jobID string, keys []string, ttl time.Duration) ([]SignedURL, error) {
	if err := checkID(jobID); err != nil {
		return nil, err
	}
	body := map[string]any{"worker_id": w.id, "keys": keys}
	if ttl > 0 {
		body["ttl_seconds"] = int64((ttl + time.Second - 1) / time.Second)
	}
	var out struct {
		Uploads []SignedURL `json:"uploads"`
	}
	_, err := w.c.do(ctx, call{method: http.MethodPost, path: jobPath(jobID, "upload-urls"), body: body, safety: idempotent}, &out)
	return out.Uploads, err
}

// ResultKey is the conventional key of a job's result: "<job id>/<name>".
func ResultKey(jobID, name string) string { return jobID + "/" + strings.TrimLeft(name, "/") }

// UploadResult signs an upload URL for one result and streams r to it
// with contentType; it returns the signed URL, whose Path goes to
// Complete. See Client.Upload for retries.
func (w *Worker) UploadResult(ctx context.Context, jobID, name, contentType string, r io.Reader) (SignedURL, error) {
	urls, err := w.UploadURLs(ctx, jobID, []string{ResultKey(jobID, name)}, 0)
	if err != nil {
		return SignedURL{}, err
	}
	if len(urls) != 1 {
		return SignedURL{}, &Error{Code: CodeInternal, Message: fmt.Sprintf("asked for 1 upload URL, got %d", len(urls))}
	}
	return urls[0], w.c.Upload(ctx, urls[0].URL, contentType, r)
}

// Upload PUTs r to a signed upload URL with the given Content-Type
// (default application/octet-stream; Storage stores it and serves it
// back), streaming: r is not read into memory. An upload never replaces
// an existing object (ErrConflict). It is retried only when r is an
// io.Seeker (rewound before each attempt) or when the connection could
// not be made; a plain reader is sent once.
func (c *Client) Upload(ctx context.Context, signedURL, contentType string, r io.Reader) error {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	seeker, canRewind := r.(io.Seeker)
	var start int64
	if canRewind {
		pos, err := seeker.Seek(0, io.SeekCurrent)
		if err != nil {
			canRewind = false
		}
		start = pos
	}
	size := sizeOf(r, start)
	for attempt := 1; ; attempt++ {
		if attempt > 1 && canRewind {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return &Error{Code: CodeInternal, Message: "cannot rewind the upload", Err: err}
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, signedURL, io.NopCloser(r))
		if err != nil {
			return &Error{Code: CodeInvalidInput, Message: "not a URL"}
		}
		if size >= 0 {
			req.ContentLength = size
		}
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("User-Agent", c.ua)
		resp, err := c.stream.Do(req)
		var e *Error
		status := 0
		if err != nil {
			if ctx.Err() != nil {
				return ctxErr(ctx)
			}
			e = &Error{Code: CodeUnavailable, Message: "the server could not be reached", Err: redact(err)}
		} else {
			if resp.StatusCode < 300 {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				return nil
			}
			status = resp.StatusCode
			e = storageError(resp)
		}
		e.Attempts, e.Transfer = attempt, true
		s := once
		if canRewind {
			s = idempotent
		}
		// A rejected upload that read part of a plain reader cannot be sent
		// again; one that never connected read nothing.
		if attempt >= c.retry.MaxAttempts || !retryable(s, status, err) || (!canRewind && status != 0) {
			return e
		}
		if err := sleep(ctx, max(c.retry.backoff(attempt), min(e.RetryAfter, c.retry.MaxRetryAfter))); err != nil {
			return err
		}
	}
}

// sizeOf returns the bytes left in r when it can tell, else -1.
func sizeOf(r io.Reader, pos int64) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size() - pos
		}
	}
	return -1
}

// storageError reads a failed answer from the daemon's local storage
// ({ok:false,code,message}) or Supabase Storage ({statusCode,error,message}).
func storageError(resp *http.Response) *Error {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{Status: resp.StatusCode, Code: codeForStatus(resp.StatusCode),
		RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: retryAfter(resp.Header, time.Now())}
	var env envelope
	var sb struct {
		StatusCode string `json:"statusCode"`
		Error      string `json:"error"`
		Message    string `json:"message"`
	}
	switch {
	case jsonInto(raw, &env) && env.Code != "":
		e.Code, e.Message = env.Code, env.Message
	case jsonInto(raw, &sb) && sb.StatusCode != "":
		// Supabase Storage reports the real status as a string in the body
		// (often under HTTP 400), as measured against the real server.
		if st, err := strconv.Atoi(sb.StatusCode); err == nil {
			e.Code = codeForStatus(st)
		}
		e.Message = sb.Error + ": " + sb.Message
	default:
		e.Message = "storage answered " + http.StatusText(resp.StatusCode)
	}
	return e
}

// Hold keeps a claimed job alive: it sends a heartbeat every Interval in
// the background until Stop, until ctx ends, or until the job is lost.
//
//	h := w.Hold(ctx, job.ID, client.HoldOptions{})
//	defer h.Stop()
//	err := work(h.Context(), job) // h.Context() ends when the job is lost
//	if client.IsJobLost(h.Err()) { return } // canceled or taken back: drop it
type Hold struct {
	w      *Worker
	jobID  string
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	lost error
}

// HoldOptions tune Hold.
type HoldOptions struct {
	// Interval between heartbeats (default 30 s). Keep it well within the
	// daemon's CLIPPER_HEARTBEAT_TIMEOUT (default 2 min).
	Interval time.Duration
	// OnError, when set, is told of heartbeats that failed for another
	// reason than a lost job (they are retried at the next interval).
	OnError func(error)
}

// Hold starts heartbeats for a job this worker holds. Call Stop when done
// with the job (before or after Complete or Fail).
func (w *Worker) Hold(ctx context.Context, jobID string, o HoldOptions) *Hold {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	hctx, cancel := context.WithCancelCause(ctx)
	h := &Hold{w: w, jobID: jobID, ctx: hctx, cancel: cancel, done: make(chan struct{})}
	go h.run(o)
	return h
}

func (h *Hold) run(o HoldOptions) {
	defer close(h.done)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		_, err := h.w.Heartbeat(h.ctx, h.jobID)
		if h.check(err) {
			return
		}
		if err != nil && h.ctx.Err() == nil && o.OnError != nil {
			o.OnError(err)
		}
	}
}

// check records a lost job; it reports whether the job is lost.
func (h *Hold) check(err error) bool {
	if !IsJobLost(err) {
		return false
	}
	h.mu.Lock()
	if h.lost == nil {
		h.lost = err
	}
	h.mu.Unlock()
	h.cancel(err)
	return true
}

// Context is canceled when the job is lost (its cause, context.Cause, is
// the *Error), when the Hold's parent context ends, or at Stop. Do the
// job's work under it.
func (h *Hold) Context() context.Context { return h.ctx }

// Err is nil while the job is held, then the error that showed the job
// was lost (IsJobLost is true for it).
func (h *Hold) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// Progress reports progress through the Hold: a lost job also ends the
// Hold.
func (h *Hold) Progress(ctx context.Context, percent int) error {
	_, err := h.w.Progress(ctx, h.jobID, percent)
	h.check(err)
	return err
}

// Stop ends the heartbeats and waits for the background goroutine.
func (h *Hold) Stop() {
	h.once.Do(func() {
		h.cancel(errStopped)
		<-h.done
	})
}

var errStopped = errors.New("client: the hold was stopped")
