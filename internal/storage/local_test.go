package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/storage"
)

const testSecret = "local-test-secret"

type localBundle struct {
	ctx   context.Context
	dir   string
	base  string // the server's base URL, also the backend's public URL
	local *storage.Local
}

// setupLocal serves a local backend on the real HTTP core (error
// envelope, 1 MiB request body cap) over a fresh folder.
func setupLocal(t *testing.T, opts storage.LocalOptions) *localBundle {
	t.Helper()
	dir := t.TempDir()
	e := httpapi.New(httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	l, err := storage.NewLocal(dir, srv.URL, testSecret, opts)
	require.NoError(t, err)
	l.RegisterRoutes(e)
	return &localBundle{ctx: context.Background(), dir: dir, base: srv.URL, local: l}
}

// withClock returns another backend over the same folder and secret whose
// clock is now.
func (b *localBundle) withClock(t *testing.T, now func() time.Time) *storage.Local {
	t.Helper()
	l, err := storage.NewLocal(b.dir, b.base, testSecret, storage.LocalOptions{Now: now})
	require.NoError(t, err)
	return l
}

// write stores an object directly in the folder.
func (b *localBundle) write(t *testing.T, bucket, path string, data []byte) {
	t.Helper()
	p := filepath.Join(b.dir, bucket, filepath.FromSlash(path))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, data, 0o640))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// requireEnvelope checks a failure response: status, code and message.
func requireEnvelope(t *testing.T, r response, status int, code apperr.Code, message string) {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	var env apperr.Envelope
	require.NoError(t, json.Unmarshal(r.body, &env), "body: %s", r.body)
	require.False(t, env.OK)
	require.Equal(t, code, env.Code)
	require.Equal(t, message, env.Message)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// withToken replaces the token of a signed URL.
func withToken(signed, token string) string {
	base, _, _ := strings.Cut(signed, "?token=")
	return base + "?token=" + token
}

func tokenOf(signed string) string {
	_, tok, _ := strings.Cut(signed, "?token=")
	return tok
}

func TestLocalDownload(t *testing.T) {
	t.Parallel()
	b := setupLocal(t, storage.LocalOptions{})
	data := randomBytes(t, 100_000)
	b.write(t, storage.BucketResults, "jobs/42/clip one.mp4", data)

	start := time.Now()
	u, err := b.local.SignDownload(b.ctx, storage.BucketResults, "jobs/42/clip one.mp4", time.Minute)
	require.NoError(t, err)
	require.Equal(t, storage.BucketResults, u.Bucket)
	require.Equal(t, "jobs/42/clip one.mp4", u.Path)
	require.True(t, strings.HasPrefix(u.URL, b.base+"/storage/v1/object/sign/results/jobs/42/clip%20one.mp4?token="), u.URL)
	require.NotNil(t, u.ExpiresAt)
	requireExpiry(t, start, time.Minute, *u.ExpiresAt)

	t.Run("Get", func(t *testing.T) {
		t.Parallel()
		r := do(t, http.MethodGet, u.URL, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, data, r.body)
		require.Equal(t, "video/mp4", r.header.Get("Content-Type"))
		require.Equal(t, "100000", r.header.Get("Content-Length"))
		require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
		require.Contains(t, r.header.Get("Cache-Control"), "private, max-age=")
	})

	t.Run("Head", func(t *testing.T) {
		t.Parallel()
		r := do(t, http.MethodHead, u.URL, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Empty(t, r.body)
		require.Equal(t, "100000", r.header.Get("Content-Length"))
	})

	t.Run("Range", func(t *testing.T) {
		t.Parallel()
		r := do(t, http.MethodGet, u.URL, nil, "Range", "bytes=10-19")
		require.Equal(t, http.StatusPartialContent, r.status)
		require.Equal(t, data[10:20], r.body)
	})

	t.Run("SniffedType", func(t *testing.T) {
		t.Parallel()
		b.write(t, storage.BucketSources, "noext", []byte("%PDF-1.4 hello"))
		u, err := b.local.SignDownload(b.ctx, storage.BucketSources, "noext", time.Minute)
		require.NoError(t, err)
		r := do(t, http.MethodGet, u.URL, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "application/pdf", r.header.Get("Content-Type"))
	})

	t.Run("CORS", func(t *testing.T) {
		t.Parallel()
		r := do(t, http.MethodGet, u.URL, nil, "Origin", "https://app.example")
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	})
}

func TestLocalDownloadRefused(t *testing.T) {
	t.Parallel()
	b := setupLocal(t, storage.LocalOptions{})
	b.write(t, storage.BucketResults, "a.mp4", []byte("object a"))
	b.write(t, storage.BucketResults, "b.mp4", []byte("object b"))
	b.write(t, storage.BucketSources, "a.mp4", []byte("source a"))
	signA, err := b.local.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
	require.NoError(t, err)
	downloadURL := func(bucket, path, token string) string {
		return b.base + "/storage/v1/object/sign/" + bucket + "/" + path + "?token=" + token
	}
	urlOf := func(bucket, path string) string { return downloadURL(bucket, path, tokenOf(signA.URL)) }

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		past := b.withClock(t, func() time.Time { return time.Now().Add(-2 * time.Minute) })
		u, err := past.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		require.NoError(t, err)
		require.True(t, (*u.ExpiresAt).Before(time.Now()))
		requireEnvelope(t, do(t, http.MethodGet, u.URL, nil), http.StatusUnauthorized, apperr.Unauthorized, "signed URL expired")
	})

	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		t.Parallel()
		u, err := b.local.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Second)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			return do(t, http.MethodGet, u.URL, nil).status == http.StatusUnauthorized
		}, 30*time.Second, 100*time.Millisecond)
	})

	t.Run("TamperedSignature", func(t *testing.T) {
		t.Parallel()
		tok := tokenOf(signA.URL)
		parts := strings.Split(tok, ".")
		sig := []byte(parts[2])
		i := len(sig) / 2
		if sig[i] == 'A' {
			sig[i] = 'B'
		} else {
			sig[i] = 'A'
		}
		forged := parts[0] + "." + parts[1] + "." + string(sig)
		requireEnvelope(t, do(t, http.MethodGet, withToken(signA.URL, forged), nil),
			http.StatusUnauthorized, apperr.Unauthorized, "invalid signature")
	})

	t.Run("TamperedClaims", func(t *testing.T) {
		t.Parallel()
		parts := strings.Split(tokenOf(signA.URL), ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		require.NoError(t, err)
		payload = bytes.Replace(payload, []byte("results/a.mp4"), []byte("results/b.mp4"), 1)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		requireEnvelope(t, do(t, http.MethodGet, downloadURL(storage.BucketResults, "b.mp4", forged), nil),
			http.StatusUnauthorized, apperr.Unauthorized, "invalid signature")
	})

	t.Run("OtherSecret", func(t *testing.T) {
		t.Parallel()
		other, err := storage.NewLocal(b.dir, b.base, "another-secret", storage.LocalOptions{})
		require.NoError(t, err)
		u, err := other.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		require.NoError(t, err)
		requireEnvelope(t, do(t, http.MethodGet, u.URL, nil), http.StatusUnauthorized, apperr.Unauthorized, "invalid signature")
	})

	t.Run("NotAToken", func(t *testing.T) {
		t.Parallel()
		requireEnvelope(t, do(t, http.MethodGet, withToken(signA.URL, "garbage"), nil),
			http.StatusUnauthorized, apperr.Unauthorized, "invalid signature")
	})

	t.Run("NoToken", func(t *testing.T) {
		t.Parallel()
		base, _, _ := strings.Cut(signA.URL, "?")
		requireEnvelope(t, do(t, http.MethodGet, base, nil), http.StatusUnauthorized, apperr.Unauthorized, "signed URL has no token")
	})

	t.Run("WrongPath", func(t *testing.T) {
		t.Parallel()
		requireEnvelope(t, do(t, http.MethodGet, urlOf(storage.BucketResults, "b.mp4"), nil),
			http.StatusForbidden, apperr.Forbidden, "signed URL is for another object")
	})

	t.Run("WrongBucket", func(t *testing.T) {
		t.Parallel()
		requireEnvelope(t, do(t, http.MethodGet, urlOf(storage.BucketSources, "a.mp4"), nil),
			http.StatusForbidden, apperr.Forbidden, "signed URL is for another object")
	})

	t.Run("UnknownBucket", func(t *testing.T) {
		t.Parallel()
		requireEnvelope(t, do(t, http.MethodGet, urlOf("private", "a.mp4"), nil),
			http.StatusNotFound, apperr.NotFound, `bucket "private" does not exist`)
	})

	t.Run("UploadTokenCannotDownload", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketResults, "c.mp4", time.Minute)
		require.NoError(t, err)
		requireEnvelope(t, do(t, http.MethodGet, downloadURL(storage.BucketResults, "c.mp4", tokenOf(up.URL)), nil),
			http.StatusForbidden, apperr.Forbidden, "signed URL is for upload, not download")
	})

	t.Run("DeletedAfterSigning", func(t *testing.T) {
		t.Parallel()
		b.write(t, storage.BucketResults, "gone.mp4", []byte("soon gone"))
		u, err := b.local.SignDownload(b.ctx, storage.BucketResults, "gone.mp4", time.Minute)
		require.NoError(t, err)
		require.NoError(t, os.Remove(filepath.Join(b.dir, storage.BucketResults, "gone.mp4")))
		requireEnvelope(t, do(t, http.MethodGet, u.URL, nil), http.StatusNotFound, apperr.NotFound, "object not found")
		r := do(t, http.MethodHead, u.URL, nil)
		require.Equal(t, http.StatusNotFound, r.status)
		require.Empty(t, r.body)
	})

	t.Run("SignMissing", func(t *testing.T) {
		t.Parallel()
		_, err := b.local.SignDownload(b.ctx, storage.BucketResults, "missing.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.NotFound, "object results/missing.mp4 not found")
		_, err = b.local.SignDownload(b.ctx, storage.BucketResults, "a.mp4/under-a-file", time.Minute)
		apperrtest.RequireError(t, err, apperr.NotFound, "not found")
	})

	t.Run("SignBelowOneSecond", func(t *testing.T) {
		t.Parallel()
		_, err := b.local.SignDownload(b.ctx, storage.BucketResults, "a.mp4", 500*time.Millisecond)
		apperrtest.RequireError(t, err, apperr.InvalidInput, "minimum of 1s")
	})
}

func TestLocalUpload(t *testing.T) {
	t.Parallel()
	b := setupLocal(t, storage.LocalOptions{MaxUploadBytes: 4 << 20})

	t.Run("UploadThenDownload", func(t *testing.T) {
		t.Parallel()
		// Larger than the HTTP core's 1 MiB cap for JSON bodies.
		data := randomBytes(t, 3<<20)
		up, err := b.local.SignUpload(b.ctx, storage.BucketResults, "jobs/7/out.mp4", time.Minute)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(up.URL, b.base+"/storage/v1/object/upload/sign/results/jobs/7/out.mp4?token="), up.URL)

		r := do(t, http.MethodPut, up.URL, bytes.NewReader(data), "Content-Type", "video/mp4")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		// Supabase Storage's own answer (uploadSignedObject.ts).
		require.JSONEq(t, `{"Key":"results/jobs/7/out.mp4"}`, string(r.body))

		down, err := b.local.SignDownload(b.ctx, storage.BucketResults, "jobs/7/out.mp4", time.Minute)
		require.NoError(t, err)
		r = do(t, http.MethodGet, down.URL, nil)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, data, r.body)

		// An upload never replaces an object: neither signing again nor
		// reusing the URL.
		_, err = b.local.SignUpload(b.ctx, storage.BucketResults, "jobs/7/out.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.Conflict, "object results/jobs/7/out.mp4 already exists")
		requireEnvelope(t, do(t, http.MethodPut, up.URL, strings.NewReader("other")),
			http.StatusConflict, apperr.Conflict, "object results/jobs/7/out.mp4 already exists")

		// The download token cannot upload.
		requireEnvelope(t, do(t, http.MethodPut, strings.Replace(down.URL, "/object/sign/", "/object/upload/sign/", 1), strings.NewReader("x")),
			http.StatusForbidden, apperr.Forbidden, "signed URL is for download, not upload")
	})

	t.Run("Chunked", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "chunked.bin", time.Minute)
		require.NoError(t, err)
		// io.MultiReader hides the length: the client sends chunks.
		r := do(t, http.MethodPut, up.URL, io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")))
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		got, err := os.ReadFile(filepath.Join(b.dir, storage.BucketSources, "chunked.bin"))
		require.NoError(t, err)
		require.Equal(t, "hello world", string(got))
	})

	t.Run("TooLargeDeclared", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "big-declared.bin", time.Minute)
		require.NoError(t, err)
		requireEnvelope(t, do(t, http.MethodPut, up.URL, bytes.NewReader(make([]byte, 4<<20+1))),
			http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge, "upload is larger than the limit of 4194304 bytes")
		_, err = os.Stat(filepath.Join(b.dir, storage.BucketSources, "big-declared.bin"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("TooLargeStreamed", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "big-streamed.bin", time.Minute)
		require.NoError(t, err)
		body := io.MultiReader(bytes.NewReader(make([]byte, 4<<20)), strings.NewReader("!"))
		requireEnvelope(t, do(t, http.MethodPut, up.URL, body),
			http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge, "upload is larger than the limit of 4194304 bytes")
		_, err = os.Stat(filepath.Join(b.dir, storage.BucketSources, "big-streamed.bin"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		past := b.withClock(t, func() time.Time { return time.Now().Add(-time.Hour) })
		up, err := past.SignUpload(b.ctx, storage.BucketSources, "late.bin", time.Minute)
		require.NoError(t, err)
		requireEnvelope(t, do(t, http.MethodPut, up.URL, strings.NewReader("late")),
			http.StatusUnauthorized, apperr.Unauthorized, "signed URL expired")
	})

	t.Run("WrongPath", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "mine.bin", time.Minute)
		require.NoError(t, err)
		other := b.base + "/storage/v1/object/upload/sign/sources/theirs.bin?token=" + tokenOf(up.URL)
		requireEnvelope(t, do(t, http.MethodPut, other, strings.NewReader("x")),
			http.StatusForbidden, apperr.Forbidden, "signed URL is for another object")
	})

	t.Run("Preflight", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "browser.bin", time.Minute)
		require.NoError(t, err)
		// The headers supabase-js uploadToSignedUrl sends from a browser.
		r := do(t, http.MethodOptions, up.URL, nil, "Origin", "https://app.example",
			"Access-Control-Request-Method", "PUT",
			"Access-Control-Request-Headers", "authorization,apikey,cache-control,content-type,x-client-info,x-upsert")
		require.Equal(t, http.StatusNoContent, r.status)
		require.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "PUT")
		allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "apikey", "cache-control", "content-type", "x-client-info", "x-upsert"} {
			require.Contains(t, allowed, h)
		}
	})

	t.Run("MultipartWithoutFile", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "nofile.bin", time.Minute)
		require.NoError(t, err)
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		require.NoError(t, w.WriteField("cacheControl", "3600"))
		require.NoError(t, w.Close())
		requireEnvelope(t, do(t, http.MethodPut, up.URL, &buf, "Content-Type", w.FormDataContentType()),
			http.StatusBadRequest, apperr.InvalidInput, "multipart upload has no file")
		requireEnvelope(t, do(t, http.MethodPut, up.URL, strings.NewReader("--x\r\nbroken"), "Content-Type", "multipart/form-data; boundary=x"),
			http.StatusBadRequest, apperr.InvalidInput, "upload is not valid multipart form data")
		_, err = os.Stat(filepath.Join(b.dir, storage.BucketSources, "nofile.bin"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("ContentTypeKeptAcrossRestarts", func(t *testing.T) {
		t.Parallel()
		up, err := b.local.SignUpload(b.ctx, storage.BucketSources, "typed/clip", time.Minute)
		require.NoError(t, err)
		r := do(t, http.MethodPut, up.URL, strings.NewReader("<html>not a page</html>"), "Content-Type", "video/quicktime")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		// Another process over the same folder serves the stored type.
		later := b.withClock(t, time.Now)
		down, err := later.SignDownload(b.ctx, storage.BucketSources, "typed/clip", time.Minute)
		require.NoError(t, err)
		r = do(t, http.MethodGet, down.URL, nil)
		require.Equal(t, "video/quicktime", r.header.Get("Content-Type"))

		// HTML is served as text/plain, as Storage does.
		up, err = b.local.SignUpload(b.ctx, storage.BucketSources, "typed/page", time.Minute)
		require.NoError(t, err)
		r = do(t, http.MethodPut, up.URL, strings.NewReader("<html></html>"), "Content-Type", "text/html; charset=utf-8")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		down, err = b.local.SignDownload(b.ctx, storage.BucketSources, "typed/page", time.Minute)
		require.NoError(t, err)
		require.Equal(t, "text/plain", do(t, http.MethodGet, down.URL, nil).header.Get("Content-Type"))
	})
}

func TestLocalUploadLeavesNoTemporaryFiles(t *testing.T) {
	t.Parallel()
	b := setupLocal(t, storage.LocalOptions{MaxUploadBytes: 10})
	ok, err := b.local.SignUpload(b.ctx, storage.BucketSources, "ok.bin", time.Minute)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, do(t, http.MethodPut, ok.URL, strings.NewReader("fits")).status)
	big, err := b.local.SignUpload(b.ctx, storage.BucketSources, "big.bin", time.Minute)
	require.NoError(t, err)
	body := io.MultiReader(strings.NewReader("does not"), strings.NewReader(" fit"))
	require.Equal(t, http.StatusRequestEntityTooLarge, do(t, http.MethodPut, big.URL, body).status)

	entries, err := os.ReadDir(filepath.Join(b.dir, ".tmp"))
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestLocalTraversalRefused(t *testing.T) {
	t.Parallel()
	b := setupLocal(t, storage.LocalOptions{})
	secret := []byte("outside the buckets")
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "secret.txt"), secret, 0o640))
	b.write(t, storage.BucketSources, "ok.txt", []byte("ok"))

	t.Run("Sign", func(t *testing.T) {
		t.Parallel()
		bad := []string{
			"", "../secret.txt", "a/../../secret.txt", "..", ".", "./ok.txt", "/etc/passwd",
			`a\..\secret.txt`, "a\x00b", "a//b", "a/", "a\nb", "a/./b", strings.Repeat("x", 1025), "\xff",
		}
		for _, p := range bad {
			_, err := b.local.SignDownload(b.ctx, storage.BucketSources, p, time.Minute)
			require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), "path %q: %v", p, err)
			_, err = b.local.SignUpload(b.ctx, storage.BucketSources, p, time.Minute)
			require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), "path %q: %v", p, err)
		}
		for _, bucket := range []string{"", "..", ".tmp", "sources/..", "other"} {
			_, err := b.local.SignDownload(b.ctx, bucket, "secret.txt", time.Minute)
			require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "bucket %q: %v", bucket, err)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		// A valid token for sources/ok.txt on paths that climb out.
		u, err := b.local.SignDownload(b.ctx, storage.BucketSources, "ok.txt", time.Minute)
		require.NoError(t, err)
		tok := tokenOf(u.URL)
		for _, p := range []string{
			"sources/../secret.txt", "sources/%2e%2e/secret.txt", "sources/..%2fsecret.txt",
			"sources/a%5c..%5c..%5csecret.txt", "sources/ok.txt%00", "sources//ok.txt", "..%2fsecret.txt",
		} {
			r := do(t, http.MethodGet, b.base+"/storage/v1/object/sign/"+p+"?token="+tok, nil)
			require.NotEqual(t, http.StatusOK, r.status, "path %q", p)
			require.NotContains(t, string(r.body), string(secret), "path %q", p)
			var env apperr.Envelope
			require.NoError(t, json.Unmarshal(r.body, &env), "path %q: %s", p, r.body)
			require.Contains(t, []apperr.Code{apperr.InvalidInput, apperr.NotFound}, env.Code, "path %q", p)
		}
	})

	t.Run("Symlink", func(t *testing.T) {
		t.Parallel()
		// A link planted in a bucket cannot lead out of the folder.
		// Uploads only create regular files, so such a link is the
		// operator's doing: an internal error, logged.
		require.NoError(t, os.Symlink(filepath.Join(b.dir, "secret.txt"), filepath.Join(b.dir, storage.BucketSources, "link.txt")))
		_, err := b.local.SignDownload(b.ctx, storage.BucketSources, "link.txt", time.Minute)
		require.Equal(t, apperr.Internal, apperr.CodeOf(err), "%v", err)

		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"url": "sources/link.txt", "purpose": "download", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
		}).SignedString([]byte(testSecret))
		require.NoError(t, err)
		r := do(t, http.MethodGet, b.base+"/storage/v1/object/sign/sources/link.txt?token="+tok, nil)
		requireEnvelope(t, r, http.StatusInternalServerError, apperr.Internal, "cannot read the object")
		require.NotContains(t, string(r.body), string(secret))
	})
}

func TestLocalSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	t.Run("GeneratedWhenEmpty", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		a, err := storage.NewLocal(dir, "http://127.0.0.1:1", "", storage.LocalOptions{Logger: log})
		require.NoError(t, err)
		require.Contains(t, logs.String(), "level=WARN")
		require.Contains(t, logs.String(), "CLIPPER_STORAGE_SIGNING_SECRET is not set")

		// Two processes with generated secrets refuse each other's URLs.
		e := httpapi.New(httpapi.Options{})
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		b, err := storage.NewLocal(dir, srv.URL, "", storage.LocalOptions{})
		require.NoError(t, err)
		b.RegisterRoutes(e)
		require.NoError(t, os.WriteFile(filepath.Join(dir, storage.BucketSources, "x"), []byte("x"), 0o640))
		u, err := a.SignDownload(context.Background(), storage.BucketSources, "x", time.Minute)
		require.NoError(t, err)
		requireEnvelope(t, do(t, http.MethodGet, srv.URL+strings.TrimPrefix(u.URL, "http://127.0.0.1:1"), nil),
			http.StatusUnauthorized, apperr.Unauthorized, "invalid signature")
	})

	t.Run("NoWarningWhenSet", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		_, err := storage.NewLocal(dir, "http://127.0.0.1:1", "set", storage.LocalOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		require.Empty(t, logs.String())
	})

	t.Run("BadPublicURL", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://x/?a=1"} {
			_, err := storage.NewLocal(dir, u, "s", storage.LocalOptions{})
			require.ErrorContains(t, err, "CLIPPER_PUBLIC_URL", "url %q", u)
		}
	})

	t.Run("PublicURLWithPath", func(t *testing.T) {
		t.Parallel()
		l, err := storage.NewLocal(dir, "https://api.example/clipper/", "s", storage.LocalOptions{})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, storage.BucketResults, "p"), []byte("p"), 0o640))
		u, err := l.SignDownload(context.Background(), storage.BucketResults, "p", time.Minute)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(u.URL, "https://api.example/clipper/storage/v1/object/sign/results/p?token="), u.URL)
	})
}
