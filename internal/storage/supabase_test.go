package storage_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/storage"
)

// projectSecret signs the project's JWTs (the legacy API keys) and, on
// servers without asymmetric keys, signed-URL tokens; the value is the
// Supabase CLI's default JWT secret.
const projectSecret = "super-secret-jwt-token-with-at-least-32-characters-long"

// serviceRoleKey is a legacy service_role key: an HS256 JWT of the
// project's secret, as `supabase start` prints it. secretKey is a new
// API key (sb_secret_...), which is not a JWT: the gateway in front of
// Storage turns it into the service_role JWT.
var (
	serviceRoleKey = projectJWT(jwt.MapClaims{"iss": "supabase-demo", "role": "service_role", "exp": 1983812996})
	anonKey        = projectJWT(jwt.MapClaims{"iss": "supabase-demo", "role": "anon", "exp": 1983812996})
	secretKey      = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
)

func projectJWT(claims jwt.MapClaims) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(projectSecret))
	if err != nil {
		panic(err)
	}
	return tok
}

// fakeStorage reproduces Supabase Storage (supabase/storage v1.70.6, the
// version whose answers were measured) behind the API gateway of a
// hosted project, {SUPABASE_URL}/storage/v1. Each answer names the
// server's source it copies. In short: errors are HTTP 400 with
// {"statusCode": "<real status>", "code", "error", "message"}; signed
// URLs come back relative and with the object path unescaped; uploads
// keep the request's content type; upload URLs live as long as the
// server says.
type fakeStorage struct {
	mu       sync.Mutex
	objects  map[string]fakeObject // "bucket/path"
	buckets  map[string]bool
	requests []*http.Request
	// secretKey is the gateway's SUPABASE_SECRET_KEY (the project's
	// sb_secret_ key); "" for a gateway without new API keys.
	secretKey string
	// uploadTTL is the server's UPLOAD_SIGNED_URL_EXPIRATION_TIME: 2 h on
	// hosted projects and under the CLI, 60 s by default self-hosted.
	// Negative: tokens without exp.
	uploadTTL time.Duration
}

type fakeObject struct {
	data        []byte
	contentType string
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{
		objects:   map[string]fakeObject{},
		buckets:   map[string]bool{storage.BucketSources: true, storage.BucketResults: true},
		secretKey: secretKey,
		uploadTTL: 2 * time.Hour,
	}
}

func (f *fakeStorage) put(key string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = fakeObject{data: data, contentType: "video/mp4"}
}

func (f *fakeStorage) object(key string) (fakeObject, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[key]
	return o, ok
}

func (f *fakeStorage) lastRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// storageErr answers an error as Storage renders it: HTTP 400 (500 for a
// 500), the real status as a string (src/internal/errors/storage-error.ts
// render, src/http/error-handler.ts).
func storageErr(w http.ResponseWriter, statusCode, code, errName, message string) {
	w.Header().Set("Content-Type", "application/json")
	if statusCode == "500" {
		w.WriteHeader(http.StatusInternalServerError)
	} else {
		w.WriteHeader(http.StatusBadRequest)
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"statusCode": statusCode, "code": code, "error": errName, "message": message})
}

// The errors, from src/internal/errors/codes.ts (ERRORS.*) and
// src/storage/database/errors.ts.
func errAccessDenied(w http.ResponseWriter, message string) {
	storageErr(w, "403", "AccessDenied", "Unauthorized", message)
}
func errNoSuchKey(w http.ResponseWriter) {
	storageErr(w, "404", "NoSuchKey", "not_found", "Object not found")
}
func errNoSuchBucket(w http.ResponseWriter) {
	storageErr(w, "404", "NoSuchBucket", "Bucket not found", "Bucket not found")
}
func errInvalidJWT(w http.ResponseWriter, message string) {
	storageErr(w, "400", "InvalidJWT", "InvalidJWT", message)
}
func errInvalidSignature(w http.ResponseWriter, message string) {
	storageErr(w, "400", "InvalidSignature", "InvalidSignature", message)
}

// joseMessage is the message of the JWT library Storage uses (jose) for
// a token it refuses.
func joseMessage(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return `"exp" claim timestamp check failed`
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature verification failed"
	}
	return "Invalid Compact JWS"
}

// urlToken signs a signed-URL token {url, scope, iat, exp}
// (src/storage/object.ts signObjectUrl, signUploadObjectUrl); ttl < 0
// leaves exp out.
func urlToken(url, scope string, ttl time.Duration, extra jwt.MapClaims) string {
	now := time.Now()
	claims := jwt.MapClaims{"url": url, "scope": scope, "iat": now.Unix()}
	if ttl >= 0 {
		claims["exp"] = now.Add(ttl).Unix()
	}
	maps.Copy(claims, extra)
	return projectJWT(claims)
}

// jsEncodeURIComponent is JavaScript's encodeURIComponent.
func jsEncodeURIComponent(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// decodeURI is JavaScript's decodeURI: escapes of the reserved characters
// ; / ? : @ & = + $ , # stay escaped.
func decodeURI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && !strings.ContainsRune(";/?:@&=+$,#", rune(v)) {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (f *fakeStorage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	f.mu.Unlock()
	// The gateway strips /storage/v1 (supabase/supabase
	// docker/volumes/api/kong.yml, route storage-v1, strip_path) and
	// sets Authorization (kong-entrypoint.sh LUA_AUTH_EXPR): an
	// Authorization that is not "Bearer sb_..." is kept; else an apikey
	// that is the secret key becomes the service_role JWT; else the
	// apikey is passed on as it is.
	rest, ok := strings.CutPrefix(r.URL.Path, "/storage/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	rawPath, _, _ := strings.Cut(strings.TrimPrefix(r.RequestURI, "/storage/v1"), "?")
	f.mu.Lock()
	gatewaySecret := f.secretKey
	f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if auth == "" || strings.HasPrefix(auth, "Bearer sb_") {
		switch apikey := r.Header.Get("apikey"); {
		case gatewaySecret != "" && apikey == gatewaySecret:
			auth = "Bearer " + serviceRoleKey
		default:
			auth = apikey
		}
	}
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "/object/upload/sign/"):
		if role, ok := f.authenticate(w, auth); ok {
			f.signUpload(w, r, strings.TrimPrefix(rest, "/object/upload/sign/"), role)
		}
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "/object/sign/"):
		if role, ok := f.authenticate(w, auth); ok {
			name := strings.TrimPrefix(rest, "/object/sign/")
			if !strings.Contains(name, "/") {
				f.signDownloads(w, r, name, role)
				return
			}
			f.signDownload(w, r, name, strings.TrimPrefix(rawPath, "/object/sign/"), role)
		}
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(rest, "/object/sign/"):
		f.getSigned(w, r, strings.TrimPrefix(rest, "/object/sign/"))
	case r.Method == http.MethodPut && strings.HasPrefix(rest, "/object/upload/sign/"):
		f.uploadSigned(w, r, strings.TrimPrefix(rest, "/object/upload/sign/"))
	default:
		storageErr(w, "404", "not_found", "Not Found", "Route "+r.Method+":"+r.URL.Path+" not found")
	}
}

// authenticate is Storage's JWT check of the caller (src/http/plugins/
// jwt.ts): "Bearer " stripped, the JWT verified, any failure
// AccessDenied with the library's message. It returns the JWT's role.
func (f *fakeStorage) authenticate(w http.ResponseWriter, auth string) (string, bool) {
	token := regexp.MustCompile(`^(?i)Bearer\s+`).ReplaceAllString(auth, "")
	var claims struct {
		Role string `json:"role"`
		jwt.RegisteredClaims
	}
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(projectSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		errAccessDenied(w, joseMessage(err))
		return "", false
	}
	return claims.Role, true
}

// signDownload is POST /object/sign/{bucket}/{path}
// (src/http/routes/object/getSignedURL.ts, src/storage/object.ts
// signObjectUrl): the object must exist (findObject, under the caller's
// row-level security: only the service role sees everything here); the
// token's url, and the answer's path, is decodeURI of the path as the
// request spelled it.
func (f *fakeStorage) signDownload(w http.ResponseWriter, r *http.Request, key, rawKey, role string) {
	var body struct {
		ExpiresIn *int `json:"expiresIn"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ExpiresIn == nil || *body.ExpiresIn < 1 {
		storageErr(w, "400", "InvalidRequest", "Bad Request", "body/expiresIn must be >= 1")
		return
	}
	bucket, _, _ := strings.Cut(key, "/")
	if !f.buckets[bucket] {
		errNoSuchBucket(w)
		return
	}
	if _, ok := f.object(key); !ok || role != "service_role" {
		errNoSuchKey(w)
		return
	}
	urlToSign := decodeURI(rawKey)
	tok := urlToken(urlToSign, "download", time.Duration(*body.ExpiresIn)*time.Second, nil)
	_ = json.NewEncoder(w).Encode(map[string]string{"signedURL": "/object/sign/" + urlToSign + "?token=" + tok})
}

// signDownloads is POST /object/sign/{bucket} {"expiresIn", "paths"}
// (src/http/routes/object/getSignedURLs.ts, src/storage/object.ts
// signObjectUrls): one answer per path, the name signed as given.
func (f *fakeStorage) signDownloads(w http.ResponseWriter, r *http.Request, bucket, role string) {
	var body struct {
		ExpiresIn *int     `json:"expiresIn"`
		Paths     []string `json:"paths"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ExpiresIn == nil || *body.ExpiresIn < 1 || len(body.Paths) == 0 {
		storageErr(w, "400", "InvalidRequest", "Bad Request", "body must have expiresIn >= 1 and paths")
		return
	}
	type answer struct {
		Error     *string `json:"error"`
		Path      string  `json:"path"`
		SignedURL *string `json:"signedURL"`
	}
	out := []answer{}
	for _, p := range body.Paths {
		a := answer{Path: p}
		if _, ok := f.object(bucket + "/" + p); ok && role == "service_role" {
			u := "/object/sign/" + bucket + "/" + p + "?token=" + urlToken(bucket+"/"+p, "download", time.Duration(*body.ExpiresIn)*time.Second, nil)
			a.SignedURL = &u
		} else {
			msg := "Either the object does not exist or you do not have access to it"
			a.Error = &msg
		}
		out = append(out, a)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// signUpload is POST /object/upload/sign/{bucket}/{path}
// (src/http/routes/object/getSignedUploadURL.ts, src/storage/object.ts
// signUploadObjectUrl): the insert is tried under the caller's
// row-level security (a duplicate is ResourceAlreadyExists, a refusal
// AccessDenied); the url is bucket/path as the router decoded it, unescaped.
func (f *fakeStorage) signUpload(w http.ResponseWriter, r *http.Request, key, role string) {
	bucket, _, _ := strings.Cut(key, "/")
	_, exists := f.object(key)
	f.mu.Lock()
	ttl := f.uploadTTL
	f.mu.Unlock()
	switch {
	case !f.buckets[bucket]:
		errNoSuchBucket(w)
	case role != "service_role":
		errAccessDenied(w, "new row violates row-level security policy")
	case exists:
		storageErr(w, "409", "ResourceAlreadyExists", "Duplicate", "The resource already exists")
	default:
		tok := urlToken(key, "upload", ttl, jwt.MapClaims{"upsert": false})
		_ = json.NewEncoder(w).Encode(map[string]string{"url": "/object/upload/sign/" + key + "?token=" + tok, "token": tok})
	}
}

// verify is src/storage/object.ts verifyObjectSignature: the JWT (any
// failure InvalidJWT, expiry included), its scope, then its url against
// bucket/path as the router decoded it.
func (f *fakeStorage) verify(w http.ResponseWriter, r *http.Request, key, scope string) bool {
	var claims struct {
		URL   string `json:"url"`
		Scope string `json:"scope"`
		jwt.RegisteredClaims
	}
	_, err := jwt.ParseWithClaims(r.URL.Query().Get("token"), &claims,
		func(*jwt.Token) (any, error) { return []byte(projectSecret), nil }, jwt.WithValidMethods([]string{"HS256"}))
	switch {
	case err != nil:
		errInvalidJWT(w, joseMessage(err))
	case claims.Scope != scope:
		errInvalidSignature(w, "Token is not scoped for "+scope)
	case claims.URL != key:
		errInvalidSignature(w, "Invalid signature")
	default:
		return true
	}
	return false
}

// getSigned is GET /object/sign/{bucket}/{path}?token=...[&download=]
// (src/http/routes/object/getSignedObject.ts): the object with the
// content type it was stored with, and Content-Disposition for download
// (src/storage/renderer/renderer.ts handleDownload).
func (f *fakeStorage) getSigned(w http.ResponseWriter, r *http.Request, key string) {
	if !f.verify(w, r, key, "download") {
		return
	}
	o, ok := f.object(key)
	if !ok {
		errNoSuchKey(w)
		return
	}
	w.Header().Set("Content-Type", o.contentType)
	if d, ok := r.URL.Query()["download"]; ok {
		if d[0] == "" {
			w.Header().Set("Content-Disposition", "attachment;")
		} else {
			name := jsEncodeURIComponent(d[0])
			w.Header().Set("Content-Disposition", "attachment; filename="+name+"; filename*=UTF-8''"+name)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(o.data)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(o.data)
	}
}

// uploadSigned is PUT /object/upload/sign/{bucket}/{path}?token=...
// (src/http/routes/object/uploadSignedObject.ts, src/storage/uploader.ts
// fileUploadFromRequest): a raw body typed by Content-Type
// (application/octet-stream if none), or multipart form data whose first
// file is typed by a contentType field or its part's Content-Type; the
// answer is {"Key": "bucket/path"}; a duplicate is KeyAlreadyExists.
func (f *fakeStorage) uploadSigned(w http.ResponseWriter, r *http.Request, key string) {
	if !f.verify(w, r, key, "upload") {
		return
	}
	ct := r.Header.Get("Content-Type")
	var data []byte
	var err error
	if mt, params, perr := mime.ParseMediaType(ct); perr == nil && mt == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		fieldType := ""
		for {
			part, perr := mr.NextPart()
			if perr != nil {
				storageErr(w, "400", "InvalidRequest", "Bad Request", "No content provided")
				return
			}
			if part.FileName() == "" {
				v, _ := io.ReadAll(part)
				if part.FormName() == "contentType" {
					fieldType = string(v)
				}
				continue
			}
			ct = cmp.Or(fieldType, part.Header.Get("Content-Type"))
			data, err = io.ReadAll(part)
			break
		}
	} else {
		ct = cmp.Or(ct, "application/octet-stream")
		data, err = io.ReadAll(r.Body)
	}
	if err != nil {
		storageErr(w, "400", "InvalidRequest", "Bad Request", "No content provided")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.objects[key]; ok {
		storageErr(w, "409", "KeyAlreadyExists", "Duplicate", "The resource already exists")
		return
	}
	f.objects[key] = fakeObject{data: data, contentType: ct}
	_ = json.NewEncoder(w).Encode(map[string]string{"Key": key})
}

type supabaseBundle struct {
	ctx    context.Context
	fake   *fakeStorage
	server *httptest.Server
	s      *storage.Supabase
}

func setupSupabase(t *testing.T) *supabaseBundle {
	t.Helper()
	fake := newFakeStorage()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s, err := storage.NewSupabase(srv.URL, serviceRoleKey, storage.SupabaseOptions{Timeout: 2 * time.Second})
	require.NoError(t, err)
	return &supabaseBundle{ctx: context.Background(), fake: fake, server: srv, s: s}
}

// requireNoKey checks that nothing a caller or a log could see holds the key.
func requireNoKey(t *testing.T, err error) {
	t.Helper()
	require.NotContains(t, err.Error(), serviceRoleKey)
	require.NotContains(t, fmt.Sprintf("%+v", err), serviceRoleKey)
	require.NotContains(t, apperr.EnvelopeOf(err).Message, serviceRoleKey)
}

func TestSupabaseSignDownload(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/jobs/9/clip one.mp4", []byte("clip bytes"))

	start := time.Now()
	u, err := b.s.SignDownload(b.ctx, storage.BucketResults, "jobs/9/clip one.mp4", 90*time.Second)
	require.NoError(t, err)
	require.Equal(t, storage.BucketResults, u.Bucket)
	require.Equal(t, "jobs/9/clip one.mp4", u.Path)
	require.True(t, strings.HasPrefix(u.URL, b.server.URL+"/storage/v1/object/sign/results/jobs/9/clip%20one.mp4?token="), u.URL)
	require.NotNil(t, u.ExpiresAt)
	requireExpiry(t, start, 90*time.Second, *u.ExpiresAt)

	// The request carried the key.
	req := b.fake.lastRequest()
	require.Equal(t, "Bearer "+serviceRoleKey, req.Header.Get("Authorization"))
	require.Equal(t, serviceRoleKey, req.Header.Get("apikey"))

	// The URL works as it is, without the key.
	r := do(t, http.MethodGet, u.URL, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, "clip bytes", string(r.body))

	// And only for its object.
	b.fake.put("results/other.mp4", []byte("other"))
	other := strings.Replace(u.URL, "jobs/9/clip%20one.mp4", "other.mp4", 1)
	r = do(t, http.MethodGet, other, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), "InvalidSignature")
}

func TestSupabaseSignUpload(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)

	start := time.Now()
	u, err := b.s.SignUpload(b.ctx, storage.BucketSources, "uploads/a.mp4", time.Minute)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.URL, b.server.URL+"/storage/v1/object/upload/sign/sources/uploads/a.mp4?token="), u.URL)
	// Storage sets the lifetime of upload URLs itself; the token says it.
	require.NotNil(t, u.ExpiresAt)
	requireExpiry(t, start, 2*time.Hour, *u.ExpiresAt)

	b.fake.put("sources/uploads/a.mp4", []byte("x"))
	_, err = b.s.SignUpload(b.ctx, storage.BucketSources, "uploads/a.mp4", time.Minute)
	apperrtest.RequireError(t, err, apperr.Conflict, "object sources/uploads/a.mp4 already exists")
	requireNoKey(t, err)
}

func TestSupabaseErrors(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/a.mp4", []byte("a"))

	t.Run("ObjectNotFound", func(t *testing.T) {
		t.Parallel()
		_, err := b.s.SignDownload(b.ctx, storage.BucketResults, "missing.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.NotFound, "object results/missing.mp4 not found")
		requireNoKey(t, err)
	})

	t.Run("BucketNotFound", func(t *testing.T) {
		t.Parallel()
		fake := newFakeStorage()
		delete(fake.buckets, storage.BucketResults)
		s := newSupabase(t, fake)
		_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.NotFound, "bucket results not found")
		requireNoKey(t, err)
	})

	t.Run("NotTheServiceKey", func(t *testing.T) {
		t.Parallel()
		// The anon key set as the service key: row-level security
		// refuses the insert (AccessDenied): the daemon's
		// misconfiguration, not the caller's.
		s, err := storage.NewSupabase(b.server.URL, anonKey, storage.SupabaseOptions{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = s.SignUpload(b.ctx, storage.BucketSources, "a.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.Unavailable, "Supabase Storage refused the daemon's service key")
		require.NotContains(t, fmt.Sprintf("%+v", err), anonKey)
	})

	t.Run("InvalidPath", func(t *testing.T) {
		t.Parallel()
		_, err := b.s.SignDownload(b.ctx, storage.BucketResults, "../a.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.InvalidInput, `".." segments`)
		_, err = b.s.SignDownload(b.ctx, "other", "a.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.NotFound, `bucket "other" does not exist`)
		_, err = b.s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", 0)
		apperrtest.RequireError(t, err, apperr.InvalidInput, "minimum of 1s")
	})

	answer := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		code    apperr.Code
		message string
	}{
		{"ServerError", answer(http.StatusInternalServerError, "application/json",
			`{"statusCode":"500","error":"internal","message":"Internal Server Error"}`), apperr.Unavailable, "unavailable (HTTP 500)"},
		{"BadGateway", answer(http.StatusBadGateway, "text/html", `<html>502 Bad Gateway</html>`), apperr.Unavailable, "unavailable (HTTP 502)"},
		{"RealStatusInBody", answer(http.StatusBadRequest, "application/json",
			`{"statusCode":"503","error":"SlowDown","message":"Please reduce your request rate"}`), apperr.Unavailable, "unavailable (HTTP 503)"},
		{"NumericStatusCode", answer(http.StatusNotFound, "application/json",
			`{"statusCode":404,"error":"not_found","message":"Object not found"}`), apperr.NotFound, "object results/a.mp4 not found"},
		{"ErrorBodyWithOK", answer(http.StatusOK, "application/json",
			`{"statusCode":"409","error":"Duplicate","message":"The resource already exists"}`), apperr.Conflict, "already exists"},
		{"OKWithoutURL", answer(http.StatusOK, "application/json", `{}`), apperr.Unavailable, "without a signed URL"},
		// Storage before v1.x answered a refused key so (measured on v1.11.2).
		{"OldInvalidJWT", answer(http.StatusBadRequest, "application/json",
			`{"statusCode":"400","error":"InvalidJWT","message":"invalid signature"}`), apperr.Unavailable, "refused the daemon's service key"},
		{"GatewayUnauthorized", answer(http.StatusUnauthorized, "application/json",
			`{"message":"Invalid API key"}`), apperr.Unavailable, "refused the daemon's service key"},
		{"OKNotJSON", answer(http.StatusOK, "text/html", `<html>login</html>`), apperr.Unavailable, "other than JSON"},
		{"Redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}, apperr.Unavailable, "unexpected answer from Supabase Storage (HTTP 302)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSupabase(t, tc.handler)
			_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
			apperrtest.RequireError(t, err, tc.code, tc.message)
			requireNoKey(t, err)
		})
	}

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		s, err := storage.NewSupabase("http://"+addr, serviceRoleKey, storage.SupabaseOptions{})
		require.NoError(t, err)
		_, err = s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.Unavailable, "cannot reach Supabase Storage")
		requireNoKey(t, err)
	})

	t.Run("Hanging", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The server notices a client leaving only once the body is read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		s, err := storage.NewSupabase(srv.URL, serviceRoleKey, storage.SupabaseOptions{Timeout: 300 * time.Millisecond})
		require.NoError(t, err)
		start := time.Now()
		_, err = s.SignUpload(b.ctx, storage.BucketSources, "a.mp4", time.Minute)
		elapsed := time.Since(start)
		apperrtest.RequireError(t, err, apperr.Unavailable, "did not answer within 300ms")
		requireNoKey(t, err)
		// The client gave up on its own deadline, not on the test's.
		require.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
		require.Less(t, elapsed, 30*time.Second)
	})

	t.Run("CallerCanceled", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}))
		t.Cleanup(srv.Close)
		s, err := storage.NewSupabase(srv.URL, serviceRoleKey, storage.SupabaseOptions{Timeout: time.Minute})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(b.ctx, 100*time.Millisecond)
		defer cancel()
		_, err = s.SignDownload(ctx, storage.BucketResults, "a.mp4", time.Minute)
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
		requireNoKey(t, err)
	})
}

func TestSupabaseRedirectKeepsKey(t *testing.T) {
	t.Parallel()
	var got []string
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("apikey")+r.Header.Get("Authorization"))
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"signedURL": "/object/sign/results/a.mp4?token=x.y.z"})
	}))
	t.Cleanup(elsewhere.Close)
	s := newSupabase(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	_, err := s.SignDownload(context.Background(), storage.BucketResults, "a.mp4", time.Minute)
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, got, "the request must not follow the redirect")
}

func TestNewSupabase(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "example.supabase.co", "ftp://x", "https://x.supabase.co/?a=b"} {
		_, err := storage.NewSupabase(u, serviceRoleKey, storage.SupabaseOptions{})
		require.ErrorContains(t, err, "SUPABASE_URL", "url %q", u)
		require.NotContains(t, err.Error(), serviceRoleKey)
	}
	_, err := storage.NewSupabase("https://x.supabase.co", "", storage.SupabaseOptions{})
	require.ErrorContains(t, err, "SUPABASE_SERVICE_ROLE_KEY")
	publishable := "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
	_, err = storage.NewSupabase("https://x.supabase.co", publishable, storage.SupabaseOptions{})
	require.ErrorContains(t, err, "holds a publishable key")
	require.NotContains(t, err.Error(), publishable)
}

func newSupabase(t *testing.T, h http.Handler) *storage.Supabase {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := storage.NewSupabase(srv.URL, serviceRoleKey, storage.SupabaseOptions{Timeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return s
}
