package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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
	// Logger receives the error that says Supabase refused the service
	// key (once, until a call succeeds again); slog.Default() if nil.
	Logger *slog.Logger
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
	log     *slog.Logger
	// refused is set while Supabase refuses the key, so that the error is
	// logged once and not on every call.
	refused atomic.Bool
}

var _ Signer = (*Supabase)(nil)

// The prefixes of Supabase's API keys that are not JWTs (secret and
// publishable keys); the legacy service_role key is a JWT.
const (
	apiKeyPrefix         = "sb_"
	publishableKeyPrefix = "sb_publishable_"
)

// NewSupabase returns the Supabase backend for a project URL such as
// https://<ref>.supabase.co. serviceRoleKey is the project's secret key
// (sb_secret_...) or its legacy service_role JWT; it is sent to Supabase
// only and never appears in errors or logs.
func NewSupabase(projectURL, serviceRoleKey string, opts SupabaseOptions) (*Supabase, error) {
	u, err := url.Parse(projectURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("storage: SUPABASE_URL must be an absolute http(s) URL such as https://<ref>.supabase.co")
	}
	if serviceRoleKey == "" {
		return nil, errors.New("storage: SUPABASE_SERVICE_ROLE_KEY is not set")
	}
	if strings.HasPrefix(serviceRoleKey, publishableKeyPrefix) {
		return nil, errors.New("storage: SUPABASE_SERVICE_ROLE_KEY holds a publishable key (sb_publishable_...); " +
			"set the project's secret key (sb_secret_...) or its legacy service_role key")
	}
	s := &Supabase{
		base:    strings.TrimRight(projectURL, "/") + "/storage/v1",
		key:     serviceRoleKey,
		timeout: opts.Timeout,
		log:     opts.Logger,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSupabaseTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
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
	if strings.Contains(path, "?") {
		return s.signDownloadOfQuery(ctx, bucket, path, ttl)
	}
	// supabase/storage src/http/routes/object/getSignedURL.ts answers
	// {"signedURL": "/object/sign/{decodeURI(bucket/path)}?token=..."}.
	var out struct {
		SignedURL string `json:"signedURL"`
	}
	body := map[string]int64{"expiresIn": int64(ttl / time.Second)}
	if err := s.call(ctx, "/object/sign/"+objectURLPath(bucket, path), objectKey(bucket, path), body, &out); err != nil {
		return SignedURL{}, err
	}
	return s.signed("/object/sign/", bucket, path, tokenOfSignedURL(out.SignedURL))
}

// signDownloadOfQuery signs the download of a name that holds a '?'
// through Storage's batch route, POST /object/sign/{bucket} {"expiresIn",
// "paths": [path]}. The single route signs decodeURI of the path it was
// called with (src/storage/object.ts signObjectUrl), which leaves "%3F"
// escaped: its token names "a%3Fb", which a GET of "a?b" does not match
// (InvalidSignature). The batch route signs the name as given
// (signObjectUrls) and answers [{"error", "path", "signedURL"}], with an
// error and no URL for a missing object
// (src/http/routes/object/getSignedURLs.ts).
func (s *Supabase) signDownloadOfQuery(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	var out []struct {
		Error     *string `json:"error"`
		Path      string  `json:"path"`
		SignedURL *string `json:"signedURL"`
	}
	body := map[string]any{"expiresIn": int64(ttl / time.Second), "paths": []string{path}}
	if err := s.call(ctx, "/object/sign/"+bucket, objectKey(bucket, path), body, &out); err != nil {
		return SignedURL{}, err
	}
	if len(out) != 1 {
		return SignedURL{}, apperr.New(apperr.Unavailable, "Supabase Storage answered without a signed URL")
	}
	if out[0].Error != nil || out[0].SignedURL == nil {
		return SignedURL{}, apperr.New(apperr.NotFound, "object %s not found", objectKey(bucket, path))
	}
	return s.signed("/object/sign/", bucket, path, tokenOfSignedURL(*out[0].SignedURL))
}

// SignUpload asks Storage for a signed upload URL (POST
// /object/upload/sign/{bucket}/{path}); the client PUTs the bytes to it.
// Storage sets that URL's lifetime itself (its
// UPLOAD_SIGNED_URL_EXPIRATION_TIME: 2 hours on hosted projects and under
// the CLI, 60 s by default on a self-hosted server) and ignores ttl;
// ExpiresAt is the token's own expiry, nil if it carries none. It fails
// with conflict if the object exists: uploads never replace objects.
func (s *Supabase) SignUpload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	if err := checkObject(bucket, path); err != nil {
		return SignedURL{}, err
	}
	if ttl < time.Second {
		return SignedURL{}, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is below the minimum of 1s", ttl)
	}
	// supabase/storage src/http/routes/object/getSignedUploadURL.ts answers
	// {"url": "/object/upload/sign/{bucket}/{path, unescaped}?token=...",
	// "token": "..."} (older servers: url only).
	var out struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	if err := s.call(ctx, "/object/upload/sign/"+objectURLPath(bucket, path), objectKey(bucket, path), struct{}{}, &out); err != nil {
		return SignedURL{}, err
	}
	token := out.Token
	if token == "" {
		token = tokenOfSignedURL(out.URL)
	}
	return s.signed("/object/upload/sign/", bucket, path, token)
}

// signed builds the absolute URL of route for bucket/path with Storage's
// token. The path is escaped here rather than taken from Storage's
// answer, which leaves it unescaped (a space, a '?'): the token alone
// comes from Storage. ExpiresAt is the token's own expiry.
func (s *Supabase) signed(route, bucket, path, token string) (SignedURL, error) {
	if token == "" || strings.ContainsAny(token, " /?#&") {
		return SignedURL{}, apperr.New(apperr.Unavailable, "Supabase Storage answered without a signed URL")
	}
	return SignedURL{
		Bucket:    bucket,
		Path:      path,
		URL:       s.base + route + objectURLPath(bucket, path) + "?token=" + url.QueryEscape(token),
		ExpiresAt: tokenExpiry(token),
	}, nil
}

// call POSTs body to base+target (an escaped path) and decodes a success
// into out. Everything else becomes an apperr code naming key
// ("bucket/path"); see storageError.
func (s *Supabase) call(ctx context.Context, target, key string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	buf, err := json.Marshal(body)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot encode the Storage request")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+target, bytes.NewReader(buf))
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot build the Storage request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	s.authenticate(req.Header)

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
	e.Code = strings.ReplaceAll(e.Code, s.key, "[redacted]")
	e.Error = strings.ReplaceAll(e.Error, s.key, "[redacted]")
	e.Message = strings.ReplaceAll(e.Message, s.key, "[redacted]")
	if resp.StatusCode < 200 || resp.StatusCode > 299 || e.isError() {
		if keyRefused(resp.StatusCode, e) {
			return s.keyRefused(resp.StatusCode, e)
		}
		return storageError(resp.StatusCode, e, key)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apperr.New(apperr.Unavailable, "Supabase Storage answered with something other than JSON")
	}
	if s.refused.CompareAndSwap(true, false) {
		s.log.Info("Supabase Storage accepts the service key again")
	}
	return nil
}

// authenticate sets the headers that carry the key, as Supabase's API
// gateway expects them. Storage itself reads only a JWT in
// Authorization (supabase/storage src/http/plugins/jwt.ts); the gateway
// in front of it (supabase/supabase docker/volumes/api/kong.yml, route
// storage-v1, and kong-entrypoint.sh LUA_AUTH_EXPR) keeps an
// Authorization header unless it is "Bearer sb_...", and otherwise turns
// an apikey header that holds the secret key into the service_role JWT.
// So a legacy service_role JWT goes in both headers (as supabase-js sends
// it), and a secret key (sb_secret_...), which is not a JWT, only in
// apikey.
func (s *Supabase) authenticate(h http.Header) {
	h.Set("apikey", s.key)
	if !strings.HasPrefix(s.key, apiKeyPrefix) {
		h.Set("Authorization", "Bearer "+s.key)
	}
}

// keyRefused reports whether Storage (or its gateway) refused the
// daemon's own credentials. A bad, expired or rotated key comes back as
// HTTP 400 {"statusCode":"403","code":"AccessDenied","error":"Unauthorized",
// "message":"signature verification failed"} (supabase/storage
// src/http/plugins/jwt.ts throws ERRORS.AccessDenied with the JWT
// library's message; src/internal/errors/codes.ts AccessDenied;
// src/http/error-handler.ts renders it as HTTP 400); older servers said
// InvalidJWT; a gateway answers 401. The daemon always calls with its
// service key, which bypasses row-level security, so any 401 or 403 means
// the key is wrong or is not the service key.
func keyRefused(httpStatus int, e storageErrorBody) bool {
	status := e.status()
	if status == 0 {
		status = httpStatus
	}
	return e.Code == "AccessDenied" || e.Code == "InvalidJWT" || e.Error == "InvalidJWT" ||
		status == http.StatusUnauthorized || status == http.StatusForbidden
}

// keyRefused logs, once until a call succeeds again, that Supabase
// refused the service key, and returns unavailable: it is the daemon's
// misconfiguration, not the caller's lack of a scope, and it ends when
// the operator fixes the key.
func (s *Supabase) keyRefused(httpStatus int, e storageErrorBody) error {
	cause := fmt.Errorf("supabase storage: HTTP %d, statusCode %s, code %q, error %q, message %q",
		httpStatus, e.StatusCode, e.Code, e.Error, e.Message)
	if s.refused.CompareAndSwap(false, true) {
		s.log.Error("Supabase Storage refused the service key: set SUPABASE_SERVICE_ROLE_KEY to the project's current "+
			"secret key (sb_secret_...) or service_role key; signed URLs fail until then",
			"http_status", httpStatus, "status_code", strings.Trim(string(e.StatusCode), `"`),
			"code", e.Code, "error", e.Error, "message", e.Message)
	}
	return apperr.Wrap(cause, apperr.Unavailable, "storage is unavailable: Supabase Storage refused the daemon's service key")
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
// "code": "NoSuchKey", "error": "not_found", "message": "Object not
// found"} (supabase/storage src/internal/errors/storage-error.ts render
// and src/http/error-handler.ts: HTTP 400, the real status as a string in
// statusCode). Some servers send statusCode as a number; older ones have
// no code.
type storageErrorBody struct {
	StatusCode json.RawMessage `json:"statusCode"`
	Code       string          `json:"code"`
	Error      string          `json:"error"`
	Message    string          `json:"message"`
}

func (e storageErrorBody) isError() bool {
	return len(e.StatusCode) > 0 || e.Error != "" || e.Code != ""
}

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
	cause := fmt.Errorf("supabase storage: HTTP %d, statusCode %s, code %q, error %q, message %q",
		httpStatus, e.StatusCode, e.Code, e.Error, e.Message)
	switch {
	case status == http.StatusNotFound:
		what := "object " + key
		if e.Code == "NoSuchBucket" || strings.Contains(strings.ToLower(e.Error+" "+e.Message), "bucket") {
			what = "bucket " + strings.SplitN(key, "/", 2)[0]
		}
		return apperr.Wrap(cause, apperr.NotFound, "%s not found", what)
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
