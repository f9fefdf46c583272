package storage_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/storage"
)

// TestDaemonWorkerFlowOnSupabaseStorage runs the whole flow of an API-key
// client and a worker through `clipper serve` configured for Supabase
// Storage, against the fake that answers as Storage does
// (supabase_test.go): a source uploaded through the daemon's signed URL,
// the job made of it, the worker's signed source download, its result
// upload under the job's id, complete, and the client's result download.
func TestDaemonWorkerFlowOnSupabaseStorage(t *testing.T) {
	t.Parallel()
	fake := newFakeStorage()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := daemontest.Config(t)
	cfg.StorageBackend = "supabase"
	cfg.SupabaseURL = srv.URL
	cfg.SupabaseServiceRoleKey = serviceRoleKey
	d := daemontest.Start(t, cfg)

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}})
	require.NoError(t, err)
	_, token, err := keys.Create(ctx, apikeys.CreateParams{Name: "pipeline",
		Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite, apikeys.ScopeWorker}})
	require.NoError(t, err)

	type signed struct {
		Bucket, Path, URL string
	}
	data := func(r daemontest.Response, status int, v any) {
		t.Helper()
		require.Equal(t, status, r.Status, "body: %s", r.Body)
		var env struct{ Data any }
		env.Data = v
		r.JSON(t, &env)
	}
	transfer := func(method, url string, body []byte, contentType string) ([]byte, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, url, b)
		return b, resp.Header
	}

	// The client uploads a source into its key's folder, then makes a job.
	var up signed
	data(d.Do(t, http.MethodPost, "/v1/uploads", token, map[string]any{"name": "talk one.mp4"}), http.StatusOK, &up)
	require.Equal(t, storage.BucketSources, up.Bucket)
	require.Regexp(t, `^keys/[0-9a-f-]{36}/talk one\.mp4$`, up.Path)
	source := []byte("source bytes")
	transfer(http.MethodPut, up.URL, source, "video/mp4")
	var job struct{ ID uuid.UUID }
	data(d.Do(t, http.MethodPost, "/v1/jobs", token, map[string]any{"source_object": up.Path, "params": map[string]any{"start": 1, "end": 2}}),
		http.StatusCreated, &job)

	// The worker claims it, downloads the source, uploads a result.
	var claimed struct{ Jobs []struct{ ID uuid.UUID } }
	data(d.Do(t, http.MethodPost, "/v1/worker/claim", token, map[string]any{"worker_id": "w1"}), http.StatusOK, &claimed)
	require.Len(t, claimed.Jobs, 1)
	require.Equal(t, job.ID, claimed.Jobs[0].ID)
	var src signed
	data(d.Do(t, http.MethodPost, "/v1/jobs/"+job.ID.String()+"/source-url", token, map[string]any{"worker_id": "w1"}), http.StatusOK, &src)
	got, _ := transfer(http.MethodGet, src.URL, nil, "")
	require.Equal(t, source, got)

	// Results live under the job's id: elsewhere is refused.
	r := d.Do(t, http.MethodPost, "/v1/jobs/"+job.ID.String()+"/upload-urls", token, map[string]any{"worker_id": "w1", "keys": []string{"clip.mp4"}})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	key := job.ID.String() + "/clip.mp4"
	var uploads struct{ Uploads []signed }
	data(d.Do(t, http.MethodPost, "/v1/jobs/"+job.ID.String()+"/upload-urls", token, map[string]any{"worker_id": "w1", "keys": []string{key}}),
		http.StatusOK, &uploads)
	require.Len(t, uploads.Uploads, 1)
	clip := []byte("clip bytes")
	transfer(http.MethodPut, uploads.Uploads[0].URL, clip, "video/mp4")
	data(d.Do(t, http.MethodPost, "/v1/jobs/"+job.ID.String()+"/complete", token, map[string]any{"worker_id": "w1", "result_keys": []string{key}}),
		http.StatusOK, nil)

	// The client downloads the result, with the type it was uploaded with.
	var result struct{ Results []signed }
	data(d.Do(t, http.MethodGet, "/v1/jobs/"+job.ID.String()+"/result", token, nil), http.StatusOK, &result)
	require.Len(t, result.Results, 1)
	require.Equal(t, key, result.Results[0].Path)
	got, h := transfer(http.MethodGet, result.Results[0].URL, nil, "")
	require.Equal(t, clip, got)
	require.Equal(t, "video/mp4", h.Get("Content-Type"))

	// Every call to Storage carried the service key, and nothing the
	// daemon logged holds it.
	fake.mu.Lock()
	signing := 0
	for _, req := range fake.requests {
		if req.Method == http.MethodPost { // a signing call; transfers carry only their token
			signing++
			require.Equal(t, serviceRoleKey, req.Header.Get("apikey"), req.URL.Path)
		}
	}
	fake.mu.Unlock()
	require.GreaterOrEqual(t, signing, 4, "upload, source, result upload and result download were signed by Storage")
	require.NotContains(t, d.Logs.String(), serviceRoleKey)
}
