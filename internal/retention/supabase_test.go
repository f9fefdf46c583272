package retention_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/storage"
)

// protectDelete is supabase/storage's migrations/tenant/0055-prevent-direct-deletes.sql:
// on Supabase, SQL may not delete storage objects; only Storage may (it
// sets storage.allow_delete_query in its own transaction,
// src/internal/database/postgres/scope.ts).
const protectDelete = `
create or replace function storage.protect_delete() returns trigger language plpgsql as $$
begin
    if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
        raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
            using hint = 'This prevents accidental data loss from orphaned objects.', errcode = '42501';
    end if;
    return null;
end;
$$;
drop trigger if exists protect_objects_delete on storage.objects;
create trigger protect_objects_delete before delete on storage.objects
    for each statement execute function storage.protect_delete();`

// storageOnDatabase answers Storage's bulk delete (DELETE
// /storage/v1/object/{bucket} {"prefixes": [...]}, see
// internal/storage/supabase_delete_test.go for the sources) by doing what
// Storage does on the database: delete the rows in a transaction that
// allows it, and answer 200 with the deleted rows.
func storageOnDatabase(t *testing.T, pool *pgxpool.Pool, key string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		bucket, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/object/")
		if !ok || r.Method != http.MethodDelete || r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"statusCode":"403","error":"Unauthorized","message":"signature verification failed","code":"AccessDenied"}`))
			return
		}
		var body struct {
			Prefixes []string `json:"prefixes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var deleted []map[string]any
		err := pgx.BeginFunc(r.Context(), pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(r.Context(), `select set_config('storage.allow_delete_query', 'true', true)`); err != nil {
				return err
			}
			rows, err := tx.Query(r.Context(), `delete from storage.objects where bucket_id = $1 and name = any($2) returning to_jsonb(objects.*)`,
				bucket, body.Prefixes)
			if err != nil {
				return err
			}
			deleted, err = pgx.CollectRows(rows, pgx.RowTo[map[string]any])
			return err
		})
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"statusCode":"500","code":"InternalError","error":"internal","message":"Internal Server Error"}`))
			return
		}
		if deleted == nil {
			deleted = []map[string]any{}
		}
		_ = json.NewEncoder(w).Encode(deleted)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCleanupThroughSupabaseStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	_, err := pool.Exec(ctx, protectDelete)
	require.NoError(t, err)
	const key = "eyJhbGciOiJIUzI1NiJ9.service-role.c2ln"
	store, err := storage.NewSupabase(storageOnDatabase(t, pool, key), key, storage.SupabaseOptions{})
	require.NoError(t, err)

	// An upload that its webhook made a job of, with two results.
	object, j := uuid.New(), uuid.New().String()
	_, err = pool.Exec(ctx, `insert into storage.objects (id, bucket_id, name) values
		($1, 'sources', 'u/talk.mp4'), (gen_random_uuid(), 'results', $2 || '/1.mp4'), (gen_random_uuid(), 'results', $2 || '/2.mp4'),
		(gen_random_uuid(), 'results', 'other/keep.mp4')`, object, j)
	require.NoError(t, err)
	job := uploadJob(t, pool, "u/talk.mp4", []string{j + "/1.mp4", j + "/2.mp4"}, true)
	_, err = pool.Exec(ctx, `insert into clipper_internal.upload_jobs (object_id, job_id, created_at) values ($1, $2, now() - interval '30 days')`, object, job)
	require.NoError(t, err)

	// SQL cannot delete them, as on Supabase.
	_, err = pool.Exec(ctx, `delete from storage.objects where name = $1`, j+"/1.mp4")
	require.ErrorContains(t, err, "Use the Storage API instead")

	round, _, err := quietScheduler(pool, store).RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), round.Cleanup.Jobs)
	require.Equal(t, map[string]int64{"results": 2, "sources": 1}, round.Objects.Deleted)
	require.Zero(t, round.Objects.Pending)
	require.Equal(t, 1, count(t, pool, "select count(*) from storage.objects"), "only the other job's result is left")
	require.Equal(t, int64(1), round.Pruned.UploadJobs, "job and object gone: the upload record goes too")
	require.Equal(t, 0, count(t, pool, "select count(*) from clipper_internal.upload_jobs"))

	// A rotated key: the names stay queued, with the project's message.
	uploadJob(t, pool, "u/next.mp4", []string{uuid.New().String() + "/3.mp4"}, true)
	bad, err := storage.NewSupabase(storageOnDatabase(t, pool, key), "rotated", storage.SupabaseOptions{})
	require.NoError(t, err)
	round, _, err = quietScheduler(pool, bad).RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), round.Objects.Failed)
	require.NotContains(t, round.Objects.LastError, "rotated")
	require.Equal(t, int64(2), round.Objects.Pending)
}
