package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/client"
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type bundle struct {
	d      *daemontest.Instance
	api    *client.Client
	worker string
	owner  uuid.UUID
}

func setup(t *testing.T) *bundle {
	t.Helper()
	cfg := daemontest.Config(t)
	cfg.PublicURL = ""
	d := daemontest.Start(t, cfg)
	pool, err := pgxpool.New(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}})
	require.NoError(t, err)
	owner := uuid.New()
	_, err = pool.Exec(context.Background(), "insert into auth.users (id, email) values ($1, $2)", owner, owner.String()+"@example.test")
	require.NoError(t, err)
	_, apiKey, err := keys.Create(context.Background(), apikeys.CreateParams{OwnerID: &owner, Name: "client", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite}})
	require.NoError(t, err)
	_, workerKey, err := keys.Create(context.Background(), apikeys.CreateParams{Name: "worker", Scopes: []apikeys.Scope{apikeys.ScopeWorker}})
	require.NoError(t, err)
	api, err := client.New(client.Config{BaseURL: d.URL, APIKey: apiKey})
	require.NoError(t, err)
	return &bundle{d: d, api: api, worker: workerKey, owner: owner}
}

func (b *bundle) run(t *testing.T, command string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, Run(ctx, Config{URL: b.d.URL, Key: b.worker, WorkerID: "example-worker", Batch: 2,
		Command: command, OutExt: ".mp4", Once: true, Heartbeat: time.Second, Log: slog.New(slog.NewTextHandler(&testWriter{t}, nil))}))
}

func (b *bundle) download(t *testing.T, u string) (string, []byte) {
	t.Helper()
	dl, err := b.api.Download(context.Background(), u)
	require.NoError(t, err)
	defer dl.Close()
	data, err := io.ReadAll(dl)
	require.NoError(t, err)
	return dl.ContentType, data
}

// TestWorkerRuns runs the example worker against a real daemon: a job
// from a URL and a job from an uploaded source both end done with a clip
// and an info.json that describe the source; a source that cannot be
// fetched fails the job for good; then a command makes the clip.
func TestWorkerRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	video := bytes.Repeat([]byte("frame "), 5000)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/video.mp4" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		_, _ = w.Write(video)
	}))
	defer src.Close()

	fromURL, err := b.api.CreateJob(ctx, client.NewJob{SourceURL: src.URL + "/video.mp4", Params: map[string]int{"start": 1, "end": 3}})
	require.NoError(t, err)
	// An uploaded source, where the daemon's local storage keeps it.
	object := b.owner.String() + "/upload.mp4"
	file := filepath.Join(b.d.Config.StorageDir, "sources", filepath.FromSlash(object))
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o750))
	require.NoError(t, os.WriteFile(file, video[:1000], 0o640))
	fromUpload, err := b.api.CreateJob(ctx, client.NewJob{SourceObject: object})
	require.NoError(t, err)
	missing, err := b.api.CreateJob(ctx, client.NewJob{SourceURL: src.URL + "/gone.mp4"})
	require.NoError(t, err)

	b.run(t, "")

	for _, c := range []struct {
		id   string
		want []byte
	}{{fromURL.Job.ID, video}, {fromUpload.Job.ID, video[:1000]}} {
		j, err := b.api.Job(ctx, c.id)
		require.NoError(t, err)
		require.Equal(t, client.StatusDone, j.Status, "job %s: %v", c.id, j.ErrorMessage)
		res, err := b.api.Results(ctx, c.id, 60)
		require.NoError(t, err)
		require.Len(t, res.Results, 2)
		require.Equal(t, c.id+"/clip.mp4", res.Results[0].Path)
		ct, clip := b.download(t, res.Results[0].URL)
		require.Equal(t, c.want, clip)
		require.Equal(t, "video/mp4", ct)
		ct, raw := b.download(t, res.Results[1].URL)
		require.Equal(t, "application/json", ct)
		var info struct {
			Source struct{ Bytes int } `json:"source"`
		}
		require.NoError(t, json.Unmarshal(raw, &info))
		require.Equal(t, len(c.want), info.Source.Bytes)
	}
	j, err := b.api.Job(ctx, missing.Job.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusFailed, j.Status, "a 404 source is not retried")
	require.Equal(t, "download_failed", *j.ErrorCode)

	// A configured command makes the clip (the source on stdin, the clip
	// on stdout).
	withCmd, err := b.api.CreateJob(ctx, client.NewJob{SourceURL: src.URL + "/video.mp4"})
	require.NoError(t, err)
	b.run(t, "tr a-z A-Z")
	res, err := b.api.Results(ctx, withCmd.Job.ID, 60)
	require.NoError(t, err)
	_, clip := b.download(t, res.Results[0].URL)
	require.Equal(t, strings.ToUpper(string(video)), string(clip))
}

// testWriter sends the worker's log to the test's log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
