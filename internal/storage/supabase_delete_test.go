package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/storage"
)

// bulkDeleteFake answers DELETE {SUPABASE_URL}/storage/v1/object/{bucket}
// as supabase/storage does (src/http/routes/object/deleteObjects.ts, at
// v1.70.6 and on master): the body is {"prefixes": [names]}; the names
// are matched exactly ("DELETE FROM storage.objects WHERE bucket_id = $1
// AND name = ANY($2) RETURNING *", src/storage/database/pg.ts) and the
// answer is 200 with the deleted rows, names that do not exist being left
// out. More than MAX_OBJECTS_PER_REQUEST (1000, src/storage/limits.ts)
// is ERRORS.InvalidRequest, rendered by src/internal/errors/storage-error.ts
// as HTTP 400. A refused service key is the answer measured from
// the real server (HTTP 400, statusCode "403", AccessDenied).
type bulkDeleteFake struct {
	mu      sync.Mutex
	objects map[string]bool // "bucket/name"
	calls   [][]string
	down    bool
}

func (f *bulkDeleteFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.down {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	bucket, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/object/")
	if !ok || r.Method != http.MethodDelete || strings.Contains(bucket, "/") {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"statusCode":"404","code":"not_found","error":"not_found","message":"Route not found"}`))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+serviceRoleKey || r.Header.Get("apikey") != serviceRoleKey {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"statusCode":"403","error":"Unauthorized","message":"signature verification failed","code":"AccessDenied"}`))
		return
	}
	var body struct {
		Prefixes []string `json:"prefixes"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || len(body.Prefixes) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"statusCode":"400","code":"InvalidRequest","error":"Bad Request","message":"body/prefixes must NOT have fewer than 1 items"}`))
		return
	}
	if len(body.Prefixes) > storage.MaxDeleteNames {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"statusCode":"400","code":"InvalidRequest","error":"InvalidRequest","message":"Bulk object requests are limited to %d objects per request."}`, storage.MaxDeleteNames)
		return
	}
	f.calls = append(f.calls, body.Prefixes)
	deleted := []map[string]any{}
	for _, name := range body.Prefixes {
		if f.objects[bucket+"/"+name] {
			delete(f.objects, bucket+"/"+name)
			deleted = append(deleted, map[string]any{"name": name, "bucket_id": bucket, "id": "eaa8bdb5-2e00-4767-b5a9-d2502efe2196",
				"owner": "", "metadata": map[string]any{"size": 1}, "created_at": "2026-12-02T00:00:00Z"})
		}
	}
	_ = json.NewEncoder(w).Encode(deleted)
}

func newDeleteBackend(t *testing.T, fake *bulkDeleteFake, key string) *storage.Supabase {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s, err := storage.NewSupabase(srv.URL, key, storage.SupabaseOptions{})
	require.NoError(t, err)
	return s
}

func TestSupabaseDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DeletesAndRepeatsHarmlessly", func(t *testing.T) {
		t.Parallel()
		fake := &bulkDeleteFake{objects: map[string]bool{"results/j/a b.mp4": true, "results/j/c?.mp4": true, "sources/j/a b.mp4": true}}
		s := newDeleteBackend(t, fake, serviceRoleKey)
		n, err := s.Delete(ctx, storage.BucketResults, []string{"j/a b.mp4", "j/c?.mp4", "j/never.mp4", ""})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, [][]string{{"j/a b.mp4", "j/c?.mp4", "j/never.mp4"}}, fake.calls, "names go in the body as they are")
		require.Equal(t, map[string]bool{"sources/j/a b.mp4": true}, fake.objects, "only that bucket")

		n, err = s.Delete(ctx, storage.BucketResults, []string{"j/a b.mp4"})
		require.NoError(t, err, "deleting a deleted object is not an error")
		require.Zero(t, n)
		n, err = s.Delete(ctx, storage.BucketResults, nil)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, fake.calls, 2, "no call for no names")
	})

	t.Run("AtMost1000NamesACall", func(t *testing.T) {
		t.Parallel()
		fake := &bulkDeleteFake{objects: map[string]bool{}}
		var names []string
		for i := range 2500 {
			name := fmt.Sprintf("j/%d.mp4", i)
			names = append(names, name)
			fake.objects["results/"+name] = true
		}
		n, err := newDeleteBackend(t, fake, serviceRoleKey).Delete(ctx, storage.BucketResults, names)
		require.NoError(t, err)
		require.Equal(t, 2500, n)
		require.Len(t, fake.calls, 3)
		require.Len(t, fake.calls[0], 1000)
		require.Len(t, fake.calls[2], 500)
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		fake := &bulkDeleteFake{objects: map[string]bool{"results/x": true}}
		const wrongKey = "eyJhbGciOiJIUzI1NiJ9.rotated-key.c2ln"
		_, err := newDeleteBackend(t, fake, wrongKey).Delete(ctx, storage.BucketResults, []string{"x"})
		require.Error(t, err)
		require.NotContains(t, err.Error(), wrongKey)
		require.NotContains(t, apperr.EnvelopeOf(err).Message, wrongKey)
		require.True(t, fake.objects["results/x"], "nothing deleted, and it is not taken for success")

		fake.down = true
		_, err = newDeleteBackend(t, fake, serviceRoleKey).Delete(ctx, storage.BucketResults, []string{"x"})
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))

		_, err = newDeleteBackend(t, fake, serviceRoleKey).Delete(ctx, "elsewhere", []string{"x"})
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	})
}

func TestLocalDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := storage.NewLocal(dir, "http://127.0.0.1:1", "secret", storage.LocalOptions{})
	require.NoError(t, err)
	// Objects as the upload route leaves them.
	for _, name := range []string{"j/a.mp4", "j/b.mp4"} {
		writeObject(t, dir, storage.BucketResults, name)
	}
	writeObject(t, dir, storage.BucketSources, "j/a.mp4")

	n, err := l.Delete(ctx, storage.BucketResults, []string{"j/a.mp4", "j/missing.mp4", "j", "../sources/j/a.mp4", "j/a.mp4/x"})
	require.NoError(t, err)
	require.Equal(t, 1, n, "a folder, a climbing path and a missing object count as gone")
	requireObject(t, dir, storage.BucketResults, "j/a.mp4", false)
	requireObject(t, dir, storage.BucketResults, "j/b.mp4", true)
	requireObject(t, dir, storage.BucketSources, "j/a.mp4", true)

	n, err = l.Delete(ctx, storage.BucketResults, []string{"j/a.mp4"})
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = l.Delete(ctx, "elsewhere", []string{"j/b.mp4"})
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func writeObject(t *testing.T, dir, bucket, name string) {
	t.Helper()
	p := filepath.Join(dir, bucket, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, []byte(name), 0o640))
}

func requireObject(t *testing.T, dir, bucket, name string, want bool) {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, bucket, filepath.FromSlash(name)))
	require.Equal(t, want, err == nil, "%s/%s: %v", bucket, name, err)
}
