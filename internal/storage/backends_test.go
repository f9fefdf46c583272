package storage_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/storage"
)

// The local backend and the Supabase backend (against the fake that
// answers as Supabase Storage does) answer the same to what clients send:
// curl's raw PUT, supabase-js uploadToSignedUrl's multipart form, and
// downloads with ?download=.
func TestBackendsAnswerAlike(t *testing.T) {
	t.Parallel()
	backends := map[string]storage.Signer{
		"local":    setupLocal(t, storage.LocalOptions{}).local,
		"supabase": setupSupabase(t).s,
	}
	for name, signer := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testAnswers(t, signer)
		})
	}
}

// multipartBody builds the body supabase-js uploadToSignedUrl sends for a
// Blob (storage-js src/packages/StorageFileApi.ts: FormData with
// cacheControl, then the Blob under the field name ""; a browser's
// FormData names a Blob file "blob" and types its part with the Blob's
// type).
func multipartBody(t *testing.T, data []byte, blobType string, fields ...string) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	require.NoError(t, w.WriteField("cacheControl", "3600"))
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name=""; filename="blob"`)
	h.Set("Content-Type", blobType)
	part, err := w.CreatePart(h)
	require.NoError(t, err)
	_, err = part.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return &buf, w.FormDataContentType()
}

func testAnswers(t *testing.T, s storage.Signer) {
	ctx := context.Background()
	// Uploads to a signed URL, as each client sends them; then the download
	// gives back the bytes and the type the upload named.
	cases := []struct {
		name     string
		path     string
		body     func() (*bytes.Buffer, []string)
		wantType string
	}{
		{"CurlWithType", "j/raw clip", func() (*bytes.Buffer, []string) {
			return bytes.NewBufferString("raw bytes"), []string{"Content-Type", "video/mp4"}
		}, "video/mp4"},
		{"CurlWithoutType", "j/curl default.mp4", func() (*bytes.Buffer, []string) {
			// What `curl -X PUT --data-binary @clip.mp4 URL` sends.
			return bytes.NewBufferString("raw bytes"), []string{"Content-Type", "application/x-www-form-urlencoded"}
		}, "application/x-www-form-urlencoded"},
		{"NoType", "j/none.mp4", func() (*bytes.Buffer, []string) {
			return bytes.NewBufferString("raw bytes"), nil
		}, "application/octet-stream"},
		{"SupabaseJSBlob", "j/from browser?.webm", func() (*bytes.Buffer, []string) {
			body, ct := multipartBody(t, []byte("raw bytes"), "video/webm")
			// And the headers supabase-js adds, which mean nothing here.
			return body, []string{"Content-Type", ct, "x-upsert", "false", "apikey", "sb_publishable_x", "Authorization", "Bearer user-jwt"}
		}, "video/webm"},
		{"SupabaseJSContentTypeField", "j/typed", func() (*bytes.Buffer, []string) {
			body, ct := multipartBody(t, []byte("raw bytes"), "application/octet-stream", "contentType", "audio/mpeg")
			return body, []string{"Content-Type", ct}
		}, "audio/mpeg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up, err := s.SignUpload(ctx, storage.BucketResults, tc.path, time.Minute)
			require.NoError(t, err)
			requireUsableURL(t, up.URL)
			body, headers := tc.body()
			r := do(t, http.MethodPut, up.URL, body, headers...)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.JSONEq(t, `{"Key":`+jsonString("results/"+tc.path)+`}`, string(r.body))

			down, err := s.SignDownload(ctx, storage.BucketResults, tc.path, time.Minute)
			require.NoError(t, err)
			requireUsableURL(t, down.URL)
			r = do(t, http.MethodGet, down.URL, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Equal(t, "raw bytes", string(r.body))
			require.Equal(t, tc.wantType, r.header.Get("Content-Type"))
			require.Empty(t, r.header.Get("Content-Disposition"))
		})
	}

	t.Run("Download", func(t *testing.T) {
		up, err := s.SignUpload(ctx, storage.BucketResults, "d/clip.mp4", time.Minute)
		require.NoError(t, err)
		r := do(t, http.MethodPut, up.URL, bytes.NewBufferString("clip"), "Content-Type", "video/mp4")
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		down, err := s.SignDownload(ctx, storage.BucketResults, "d/clip.mp4", time.Minute)
		require.NoError(t, err)
		// supabase-js createSignedUrl(path, n, {download}) appends
		// &download=<name> ("" for true) to the signed URL.
		r = do(t, http.MethodGet, down.URL+"&download=", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, "attachment;", r.header.Get("Content-Disposition"))
		r = do(t, http.MethodGet, down.URL+"&download=my%20clip%20%C3%A9.mp4", nil)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		require.Equal(t, "attachment; filename=my%20clip%20%C3%A9.mp4; filename*=UTF-8''my%20clip%20%C3%A9.mp4", r.header.Get("Content-Disposition"))
		require.Equal(t, "clip", string(r.body))
		require.Equal(t, "video/mp4", r.header.Get("Content-Type"))
	})
}
