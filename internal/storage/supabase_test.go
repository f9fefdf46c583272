package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/storage"
)

const (
	serviceRoleKey = "eyJhbGciOiJIUzI1NiJ9.service-role-key-under-test.c2lnbmF0dXJl"
	projectSecret  = "super-secret-jwt-token-with-at-least-32-characters-long"
)

// fakeStorage reproduces Supabase Storage as DESIGN.md records it (v1.11.2
// behind {SUPABASE_URL}/storage/v1): errors are HTTP 400 with the real
// status as a string in the body's statusCode; a bad key or token is
// InvalidJWT, a token for another object InvalidSignature; signed URLs are
// relative to the storage API; signed upload URLs live two hours.
type fakeStorage struct {
	mu       sync.Mutex
	objects  map[string][]byte // "bucket/path"
	buckets  map[string]bool
	denied   map[string]bool // buckets whose policies refuse the caller
	requests []*http.Request
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{
		objects: map[string][]byte{},
		buckets: map[string]bool{storage.BucketSources: true, storage.BucketResults: true},
		denied:  map[string]bool{},
	}
}

func (f *fakeStorage) put(key string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = data
}

func storageErr(w http.ResponseWriter, statusCode, errName, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"statusCode": statusCode, "error": errName, "message": message})
}

func (f *fakeStorage) token(key string, ttl time.Duration) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"url": key, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}).SignedString([]byte(projectSecret))
	if err != nil {
		panic(err)
	}
	return tok
}

func (f *fakeStorage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	f.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/storage/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	// The route as the server sees it, still escaped: signed URLs repeat it.
	rawRoute := strings.TrimPrefix(r.URL.EscapedPath(), "/storage/v1")
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "/object/sign/"):
		f.sign(w, r, strings.TrimPrefix(rest, "/object/sign/"), rawRoute, false)
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "/object/upload/sign/"):
		f.sign(w, r, strings.TrimPrefix(rest, "/object/upload/sign/"), rawRoute, true)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "/object/sign/"):
		f.get(w, r, strings.TrimPrefix(rest, "/object/sign/"))
	default:
		storageErr(w, "404", "not_found", "Route not found")
	}
}

func (f *fakeStorage) sign(w http.ResponseWriter, r *http.Request, key, rawRoute string, upload bool) {
	if r.Header.Get("Authorization") != "Bearer "+serviceRoleKey {
		storageErr(w, "400", "InvalidJWT", "invalid signature")
		return
	}
	var body struct {
		ExpiresIn *int `json:"expiresIn"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		storageErr(w, "400", "Bad Request", "body must be JSON")
		return
	}
	if !upload && (body.ExpiresIn == nil || *body.ExpiresIn < 1) {
		storageErr(w, "400", "Bad Request", "body/expiresIn must be >= 1")
		return
	}
	bucket, _, _ := strings.Cut(key, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	_, exists := f.objects[key]
	switch {
	case !f.buckets[bucket]:
		storageErr(w, "404", "Bucket not found", "Bucket not found")
	case f.denied[bucket]:
		storageErr(w, "403", "Unauthorized", "new row violates row-level security policy")
	case upload && exists:
		storageErr(w, "409", "Duplicate", "The resource already exists")
	case !upload && !exists:
		storageErr(w, "404", "not_found", "Object not found")
	case upload:
		_ = json.NewEncoder(w).Encode(map[string]string{"url": rawRoute + "?token=" + f.token(key, 2*time.Hour)})
	default:
		_ = json.NewEncoder(w).Encode(map[string]string{
			"signedURL": rawRoute + "?token=" + f.token(key, time.Duration(*body.ExpiresIn)*time.Second),
		})
	}
}

func (f *fakeStorage) get(w http.ResponseWriter, r *http.Request, key string) {
	var claims struct {
		URL string `json:"url"`
		jwt.RegisteredClaims
	}
	_, err := jwt.ParseWithClaims(r.URL.Query().Get("token"), &claims,
		func(*jwt.Token) (any, error) { return []byte(projectSecret), nil }, jwt.WithExpirationRequired())
	if err != nil {
		storageErr(w, "400", "InvalidJWT", err.Error())
		return
	}
	if claims.URL != key {
		storageErr(w, "400", "InvalidSignature", "The url do not match the signature")
		return
	}
	f.mu.Lock()
	data, ok := f.objects[key]
	f.mu.Unlock()
	if !ok {
		storageErr(w, "404", "not_found", "Object not found")
		return
	}
	_, _ = w.Write(data)
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
	requireExpiry(t, start, 90*time.Second, u.ExpiresAt)

	// The request carried the key and the lifetime in seconds.
	b.fake.mu.Lock()
	req := b.fake.requests[len(b.fake.requests)-1]
	b.fake.mu.Unlock()
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
	requireExpiry(t, start, 2*time.Hour, u.ExpiresAt)

	b.fake.put("sources/uploads/a.mp4", []byte("x"))
	_, err = b.s.SignUpload(b.ctx, storage.BucketSources, "uploads/a.mp4", time.Minute)
	requireError(t, err, apperr.Conflict, "object sources/uploads/a.mp4 already exists")
	requireNoKey(t, err)
}

func TestSupabaseErrors(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/a.mp4", []byte("a"))

	t.Run("ObjectNotFound", func(t *testing.T) {
		t.Parallel()
		_, err := b.s.SignDownload(b.ctx, storage.BucketResults, "missing.mp4", time.Minute)
		requireError(t, err, apperr.NotFound, "object results/missing.mp4 not found")
		requireNoKey(t, err)
	})

	t.Run("BucketNotFound", func(t *testing.T) {
		t.Parallel()
		fake := newFakeStorage()
		delete(fake.buckets, storage.BucketResults)
		s := newSupabase(t, fake)
		_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		requireError(t, err, apperr.NotFound, "bucket results not found")
		requireNoKey(t, err)
	})

	t.Run("Forbidden", func(t *testing.T) {
		t.Parallel()
		fake := newFakeStorage()
		fake.denied[storage.BucketSources] = true
		s := newSupabase(t, fake)
		_, err := s.SignUpload(b.ctx, storage.BucketSources, "a.mp4", time.Minute)
		requireError(t, err, apperr.Forbidden, "refused access to sources/a.mp4")
		requireNoKey(t, err)
	})

	t.Run("InvalidJWT", func(t *testing.T) {
		t.Parallel()
		s, err := storage.NewSupabase(b.server.URL, "not-the-service-role-key", storage.SupabaseOptions{})
		require.NoError(t, err)
		_, err = s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		requireError(t, err, apperr.Internal, "rejected the service role key (SUPABASE_SERVICE_ROLE_KEY)")
		require.NotContains(t, err.Error(), "not-the-service-role-key")
	})

	t.Run("InvalidPath", func(t *testing.T) {
		t.Parallel()
		_, err := b.s.SignDownload(b.ctx, storage.BucketResults, "../a.mp4", time.Minute)
		requireError(t, err, apperr.InvalidInput, `".." segments`)
		_, err = b.s.SignDownload(b.ctx, "other", "a.mp4", time.Minute)
		requireError(t, err, apperr.NotFound, `bucket "other" does not exist`)
		_, err = b.s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", 0)
		requireError(t, err, apperr.InvalidInput, "minimum of 1s")
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
			requireError(t, err, tc.code, tc.message)
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
		requireError(t, err, apperr.Unavailable, "cannot reach Supabase Storage")
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
		requireError(t, err, apperr.Unavailable, "did not answer within 300ms")
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
}

func newSupabase(t *testing.T, h http.Handler) *storage.Supabase {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := storage.NewSupabase(srv.URL, serviceRoleKey, storage.SupabaseOptions{Timeout: 2 * time.Second})
	require.NoError(t, err)
	return s
}
