package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// SourceUpload is where UploadSource put a file.
type SourceUpload struct {
	Bucket string // "sources"
	Path   string // "<uid>/<name>": the job's source_object
}

// UploadSource uploads a video into the sources bucket under the user's
// own folder, sources/<uid>/<name>, through Supabase Storage with the
// user's token (POST /storage/v1/object/sources/<uid>/<name>, the
// request supabase-js's upload sends): Storage's RLS policies admit only
// the user's folder. params, when not nil, travel as the object's user
// metadata {"clip": params} in the x-metadata header (base64 JSON, the way
// storage-js sends upload metadata), which the database webhook turns
// into the job's params. The webhook then makes the job;
// find it with JobForSource(ctx, upload.Path).
//
// name may hold folders ("2024/a.mp4"); Storage accepts only
// [A-Za-z0-9_/!.*'() &$=@;:+,?-] in names. An existing object is
// ErrConflict (no upsert). The upload is sent once unless the
// connection could not be made, or r is an io.Seeker.
func (u *User) UploadSource(ctx context.Context, name, contentType string, r io.Reader, params any) (SourceUpload, error) {
	name = strings.TrimLeft(name, "/")
	if name == "" || strings.Contains("/"+name+"/", "/../") || strings.Contains("/"+name+"/", "/./") {
		return SourceUpload{}, &Error{Code: CodeInvalidInput, Message: "name must be a relative object name without . or .. segments"}
	}
	object := path.Join(u.uid, name)
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	var meta string
	if params != nil {
		p, err := rawJSON(params)
		if err != nil {
			return SourceUpload{}, &Error{Code: CodeInvalidInput, Message: "params are not JSON", Err: err}
		}
		b, _ := json.Marshal(map[string]json.RawMessage{"clip": p})
		meta = base64.StdEncoding.EncodeToString(b)
	}
	target := u.cfg.SupabaseURL + "/storage/v1/object/sources/" + escapeObject(object)

	seeker, canRewind := r.(io.Seeker)
	var start int64
	if canRewind {
		pos, err := seeker.Seek(0, io.SeekCurrent)
		canRewind, start = err == nil, pos
	}
	size := sizeOf(r, start)
	for attempt := 1; ; attempt++ {
		if attempt > 1 && canRewind {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return SourceUpload{}, &Error{Code: CodeInternal, Message: "cannot rewind the upload", Err: err}
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, io.NopCloser(r))
		if err != nil {
			return SourceUpload{}, &Error{Code: CodeInvalidInput, Message: "bad upload URL"}
		}
		if size >= 0 {
			req.ContentLength = size
		}
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("apikey", u.cfg.AnonKey)
		req.Header.Set("Authorization", "Bearer "+u.cfg.AccessToken)
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("x-upsert", "false")
		req.Header.Set("Cache-Control", "max-age=3600")
		if meta != "" {
			req.Header.Set("x-metadata", meta)
		}
		resp, err := u.hc.Do(req)
		status := 0
		var e *Error
		if err != nil {
			if ctx.Err() != nil {
				return SourceUpload{}, ctxErr(ctx)
			}
			e = &Error{Code: CodeUnavailable, Message: "Storage could not be reached", Err: redact(err)}
		} else if resp.StatusCode < 300 {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			return SourceUpload{Bucket: "sources", Path: object}, nil
		} else {
			status = resp.StatusCode
			e = storageError(resp)
		}
		e.Attempts, e.Transfer = attempt, true
		s := once
		if canRewind {
			s = idempotent
		}
		if attempt >= u.retry.MaxAttempts || !retryable(s, status, err) || (!canRewind && status != 0) {
			return SourceUpload{}, e
		}
		if err := sleep(ctx, max(u.retry.backoff(attempt), min(e.RetryAfter, u.retry.MaxRetryAfter), time.Duration(0))); err != nil {
			return SourceUpload{}, err
		}
	}
}

// escapeObject escapes each segment of an object name for a URL path.
func escapeObject(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
