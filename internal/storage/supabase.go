package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/clipper/clipper/internal/apperr"
)

// DefaultSupabaseTimeout bounds one call to Supabase Storage.
const DefaultSupabaseTimeout = 10 * time.Second

// maxResponseBytes bounds what is read of a Storage API answer.
const maxResponseBytes = 1 << 20

// SupabaseOptions tune the Supabase backend.
type SupabaseOptions struct {
	// HTTPClient sends the requests; a private client if nil. Redirects
	// are never followed: they would carry the service role key away.
	HTTPClient *http.Client
	// Timeout bounds each call; DefaultSupabaseTimeout if zero.
	Timeout time.Duration
	// Now is the clock used when a token carries no expiry; time.Now if nil.
	Now func() time.Time
}

// Supabase signs URLs with Supabase Storage's REST API under
// {SUPABASE_URL}/storage/v1, authenticated with the service role key.
//
// It speaks HTTP itself rather than through storage-go v0.8.1, which
// cannot do what the daemon needs: its calls take no context and its
// client's transport and timeout cannot be set (a hanging server would
// hold a goroutine and a connection forever), its errors drop the HTTP
// status and Supabase's statusCode and error fields (so 404, 403 and 409
// cannot be told apart), it leaves error bodies unclosed, and its signed
// upload URL comes back relative.
type Supabase struct {
	base    string // {SUPABASE_URL}/storage/v1
	key     string
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
}

var _ Signer = (*Supabase)(nil)

// NewSupabase returns the Supabase backend for a project URL such as
// https://<ref>.supabase.co. serviceRoleKey is sent to Supabase only; it
// never appears in errors or logs.
func NewSupabase(projectURL, serviceRoleKey string, opts SupabaseOptions) (*Supabase, error) {
	u, err := url.Parse(projectURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("storage: SUPABASE_URL must be an absolute http(s) URL such as https://<ref>.supabase.co")
	}
	if serviceRoleKey == "" {
		return nil, errors.New("storage: SUPABASE_SERVICE_ROLE_KEY is not set")
	}
	s := &Supabase{
		base:    strings.TrimRight(projectURL, "/") + "/storage/v1",
		key:     serviceRoleKey,
		timeout: opts.Timeout,
		now:     opts.Now,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSupabaseTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	client := &http.Client{}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = client
	return s, nil
}

// SignDownload asks Storage to sign a GET of an existing object for ttl
// (POST /object/sign/{bucket}/{path} {"expiresIn": seconds}).
func (s *Supabase) SignDownload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	if err := checkObject(bucket, path); err != nil {
		return SignedURL{}, err
	}
	if ttl < time.Second {
		return SignedURL{}, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is below the minimum of 1s", ttl)
	}
	start := s.now()
	var out struct {
		SignedURL string `json:"signedURL"`
	}
	body := map[string]int64{"expiresIn": int64(ttl / time.Second)}
	if err := s.call(ctx, "/object/sign/", bucket, path, body, &out); err != nil {
		return SignedURL{}, err
	}
	return s.signed(bucket, path, out.SignedURL, start.Add(ttl))
}

// SignUpload asks Storage for a signed upload URL (POST
// /object/upload/sign/{bucket}/{path}); the client PUTs the bytes to it.
// Storage sets that URL's lifetime itself (2 hours unless the server's
// UPLOAD_SIGNED_URL_EXPIRATION_TIME says otherwise) and ignores ttl;
// ExpiresAt is the token's own expiry. It fails with conflict if the
// object exists: uploads never replace objects.
func (s *Supabase) SignUpload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	if err := checkObject(bucket, path); err != nil {
		return SignedURL{}, err
	}
	if ttl < time.Second {
		return SignedURL{}, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is below the minimum of 1s", ttl)
	}
	start := s.now()
	var out struct {
		URL string `json:"url"`
	}
	if err := s.call(ctx, "/object/upload/sign/", bucket, path, struct{}{}, &out); err != nil {
		return SignedURL{}, err
	}
	return s.signed(bucket, path, out.URL, start.Add(ttl))
}

// signed turns Storage's answer (a URL relative to the storage API) into
// an absolute SignedURL whose expiry is read from the token.
func (s *Supabase) signed(bucket, path, raw string, fallbackExp time.Time) (SignedURL, error) {
	u, err := url.Parse(raw)
	if err != nil || raw == "" || u.Query().Get("token") == "" {
		return SignedURL{}, apperr.New(apperr.Unavailable, "Supabase Storage answered without a signed URL")
	}
	if !u.IsAbs() {
		if !strings.HasPrefix(raw, "/") {
			raw = "/" + raw
		}
		raw = s.base + raw
	}
	exp := fallbackExp.Truncate(time.Second)
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(u.Query().Get("token"), &c); err == nil && c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	return SignedURL{Bucket: bucket, Path: path, URL: raw, ExpiresAt: exp.UTC()}, nil
}

// call POSTs body to base+route+bucket/path and decodes a success into
// out. Everything else becomes an apperr code; see storageError.
func (s *Supabase) call(ctx context.Context, route, bucket, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	buf, err := json.Marshal(body)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot encode the Storage request")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+route+escapeKey(bucket, path), bytes.NewReader(buf))
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot build the Storage request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("apikey", s.key)

	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return s.transportError(ctx, err)
	}
	var e storageErrorBody
	_ = json.Unmarshal(data, &e)
	e.Error = strings.ReplaceAll(e.Error, s.key, "[redacted]")
	e.Message = strings.ReplaceAll(e.Message, s.key, "[redacted]")
	if resp.StatusCode < 200 || resp.StatusCode > 299 || e.isError() {
		return storageError(resp.StatusCode, e, objectKey(bucket, path))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apperr.New(apperr.Unavailable, "Supabase Storage answered with something other than JSON")
	}
	return nil
}

// transportError maps a failed exchange. Its cause is the client's error,
// which names the URL but never the headers that carry the key.
func (s *Supabase) transportError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return apperr.Wrap(err, apperr.Unavailable, "Supabase Storage did not answer within %s", s.timeout)
	}
	return apperr.Wrap(err, apperr.Unavailable, "cannot reach Supabase Storage")
}

// storageErrorBody is Storage's error shape: {"statusCode": "404",
// "error": "not_found", "message": "Object not found"}. statusCode is a
// string (older servers answer HTTP 400 and put the real status here);
// some servers send it as a number.
type storageErrorBody struct {
	StatusCode json.RawMessage `json:"statusCode"`
	Error      string          `json:"error"`
	Message    string          `json:"message"`
}

func (e storageErrorBody) isError() bool { return len(e.StatusCode) > 0 || e.Error != "" }

// status returns the status the body claims, or 0.
func (e storageErrorBody) status() int {
	n, _ := strconv.Atoi(strings.Trim(string(e.StatusCode), `"`))
	return n
}

// storageError maps a Storage error onto the project's codes. Messages
// are the project's own: the server's text is kept only as the cause.
func storageError(httpStatus int, e storageErrorBody, key string) error {
	status := e.status()
	if status == 0 {
		status = httpStatus
	}
	cause := fmt.Errorf("supabase storage: HTTP %d, statusCode %s, error %q, message %q", httpStatus, e.StatusCode, e.Error, e.Message)
	switch {
	case e.Error == "InvalidJWT" || status == http.StatusUnauthorized:
		// The only credential here is the service role key.
		return apperr.Wrap(cause, apperr.Internal, "Supabase Storage rejected the service role key (SUPABASE_SERVICE_ROLE_KEY)")
	case status == http.StatusNotFound:
		what := "object " + key
		if strings.Contains(strings.ToLower(e.Error+" "+e.Message), "bucket") {
			what = "bucket " + strings.SplitN(key, "/", 2)[0]
		}
		return apperr.Wrap(cause, apperr.NotFound, "%s not found", what)
	case status == http.StatusForbidden:
		return apperr.Wrap(cause, apperr.Forbidden, "Supabase Storage refused access to %s", key)
	case status == http.StatusConflict:
		return apperr.Wrap(cause, apperr.Conflict, "object %s already exists", key)
	case status == http.StatusRequestEntityTooLarge:
		return apperr.Wrap(cause, apperr.PayloadTooLarge, "object is larger than the bucket allows")
	case status == http.StatusTooManyRequests || status >= 500:
		return apperr.Wrap(cause, apperr.Unavailable, "Supabase Storage is unavailable (HTTP %d)", status)
	case status == http.StatusBadRequest:
		return apperr.Wrap(cause, apperr.InvalidInput, "Supabase Storage refused the request for %s", key)
	}
	return apperr.Wrap(cause, apperr.Unavailable, "unexpected answer from Supabase Storage (HTTP %d)", status)
}
