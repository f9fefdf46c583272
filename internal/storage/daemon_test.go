package storage_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/storage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDaemonServesLocalStorage runs `clipper serve` with the default
// configuration (local backend) and uses its signed URLs over HTTP.
func TestDaemonServesLocalStorage(t *testing.T) {
	t.Parallel()
	cfg := daemontest.Config(t)
	// Config derives the public URL from the default address; cleared,
	// Start derives it from the daemon's real port.
	cfg.PublicURL = ""
	d := daemontest.Start(t, cfg)
	cfg = d.Config
	require.Equal(t, "local", cfg.StorageBackend)
	// A signer with the daemon's folder, public URL and secret, as another
	// replica would have.
	signer, err := storage.NewLocal(cfg.StorageDir, cfg.PublicURL, cfg.StorageSigningSecret, storage.LocalOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	policy := storage.PolicyFromConfig(cfg)

	data := []byte("source video bytes")
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.StorageDir, "sources", "u1"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.StorageDir, "sources", "u1", "in.mp4"), data, 0o640))

	ttl, err := policy.Resolve(0)
	require.NoError(t, err)
	require.Equal(t, 60*time.Second, ttl)
	u, err := signer.SignDownload(ctx, storage.BucketSources, "u1/in.mp4", ttl)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.URL, d.URL+"/storage/v1/object/sign/sources/u1/in.mp4?token="), u.URL)

	r := d.Do(t, http.MethodGet, strings.TrimPrefix(u.URL, d.URL), "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, data, r.Body)
	require.Equal(t, "video/mp4", r.Header.Get("Content-Type"))
	require.NotEmpty(t, r.Header.Get("X-Request-Id"))

	// Expired, tampered and misdirected URLs get the envelope.
	past, err := storage.NewLocal(cfg.StorageDir, cfg.PublicURL, cfg.StorageSigningSecret,
		storage.LocalOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	require.NoError(t, err)
	old, err := past.SignDownload(ctx, storage.BucketSources, "u1/in.mp4", time.Minute)
	require.NoError(t, err)
	r = d.Do(t, http.MethodGet, strings.TrimPrefix(old.URL, d.URL), "", nil)
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.JSONEq(t, `{"ok":false,"code":"unauthorized","message":"signed URL expired"}`, string(r.Body))

	r = d.Do(t, http.MethodGet, strings.TrimPrefix(u.URL, d.URL)+"x", "", nil)
	require.Equal(t, http.StatusUnauthorized, r.Status)
	require.JSONEq(t, `{"ok":false,"code":"unauthorized","message":"invalid signature"}`, string(r.Body))

	r = d.Do(t, http.MethodGet, "/storage/v1/object/sign/results/u1/in.mp4?token="+tokenOf(u.URL), "", nil)
	require.Equal(t, http.StatusForbidden, r.Status)
	require.JSONEq(t, `{"ok":false,"code":"forbidden","message":"signed URL is for another object"}`, string(r.Body))

	// An upload larger than the daemon's 1 MiB cap for JSON bodies, then
	// its download.
	big := randomBytes(t, 2<<20)
	up, err := signer.SignUpload(ctx, storage.BucketResults, "jobs/1/clip.mp4", ttl)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(up.URL, d.URL+"/storage/v1/object/upload/sign/results/jobs/1/clip.mp4?token="), up.URL)
	r = d.Do(t, http.MethodPut, strings.TrimPrefix(up.URL, d.URL), "", big, "Content-Type", "video/mp4")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.JSONEq(t, `{"Key":"results/jobs/1/clip.mp4"}`, string(r.Body))

	down, err := signer.SignDownload(ctx, storage.BucketResults, "jobs/1/clip.mp4", ttl)
	require.NoError(t, err)
	r = d.Do(t, http.MethodGet, strings.TrimPrefix(down.URL, d.URL), "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.True(t, bytes.Equal(big, r.Body))

	r = d.Do(t, http.MethodGet, "/storage/v1/object/sign/results/jobs/1/missing.mp4?token="+tokenOf(down.URL), "", nil)
	require.Equal(t, http.StatusForbidden, r.Status)
	_, err = signer.SignDownload(ctx, storage.BucketResults, "jobs/1/missing.mp4", ttl)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))

	// The access log names the route, never the token.
	require.Contains(t, d.Logs.String(), `"route":"/storage/v1/object/sign/*"`)
	require.NotContains(t, d.Logs.String(), tokenOf(u.URL))
}

// TestDaemonGeneratedSecretWarns checks the warning for a daemon started
// without CLIPPER_STORAGE_SIGNING_SECRET.
func TestDaemonGeneratedSecretWarns(t *testing.T) {
	t.Parallel()
	cfg := daemontest.Config(t)
	cfg.StorageSigningSecret = ""
	d := daemontest.Start(t, cfg)
	require.Contains(t, d.Logs.String(), "CLIPPER_STORAGE_SIGNING_SECRET is not set")
}
