package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
)

// captureStdout runs fn with os.Stdout going to a pipe and returns what
// it printed.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	defer func() { os.Stdout = saved }()
	fn()
	require.NoError(t, w.Close())
	return string(<-done)
}

// clipper cleanup deletes the objects of the jobs it deletes, with the
// configured storage backend, and says so.
func TestCleanupDeletesObjectsAndSaysSo(t *testing.T) {
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("CLIPPER_STORAGE_BACKEND", "local")
	t.Setenv("CLIPPER_STORAGE_DIR", dir)
	t.Setenv("CLIPPER_WEBHOOK_SECRET", "")
	// Results live under their job's id, so the job is made first.
	var job string
	require.NoError(t, pool.QueryRow(ctx, `insert into jobs (source_type, source_object) values ('upload', 'u/in.mp4')
		returning id`).Scan(&job))
	objects := []string{"sources/u/in.mp4", "results/" + job + "/out.mp4"}
	for _, o := range objects {
		p := filepath.Join(dir, filepath.FromSlash(o))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o640))
	}
	_, err := pool.Exec(ctx, `update jobs set status = 'processing', worker_id = 'w', claimed_at = now(), last_heartbeat_at = now(), attempts = 1;
		update jobs set status = 'done', result_keys = array[id::text || '/out.mp4'], expires_at = now() - interval '1 minute'`)
	require.NoError(t, err)

	var stderr bytes.Buffer
	out := captureStdout(t, func() { require.Equal(t, 0, run([]string{"cleanup"}, &stderr), stderr.String()) })
	require.Contains(t, out, "Deleted 1 expired job(s)")
	require.Contains(t, out, "Deleted 2 object(s) of deleted jobs from local storage (sources 1, results 1)")
	require.Contains(t, out, "Every upload to sources has its job")
	for _, o := range objects {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(o)))
		require.ErrorIs(t, err, os.ErrNotExist, o)
	}
}
