package retention_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/metrics"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/retention"
	"github.com/clipper/clipper/internal/storage"
	"github.com/clipper/clipper/webhooks"
)

// uploadJob makes a done upload job with these results, expired (deleted
// by the next cleanup) or not. Results live under their job's id
// ("<job id>/..."): the job takes the id the first result names.
func uploadJob(t *testing.T, pool *pgxpool.Pool, source string, results []string, expired bool) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	if results == nil {
		results = []string{}
	}
	id := uuid.New()
	if len(results) > 0 {
		first, _, _ := strings.Cut(results[0], "/")
		id = uuid.MustParse(first)
	}
	require.NoError(t, pool.QueryRow(ctx, `insert into jobs (id, source_type, source_object) values ($1, 'upload', $2) returning id`,
		id, source).Scan(&id))
	_, err := pool.Exec(ctx, `update jobs set status = 'processing', worker_id = 'w', claimed_at = now(),
		last_heartbeat_at = now(), attempts = 1 where id = $1`, id)
	require.NoError(t, err)
	expires := "now() + interval '1 day'"
	if expired {
		expires = "now() - interval '1 hour'"
	}
	_, err = pool.Exec(ctx, `update jobs set status = 'done', result_keys = $2, expires_at = `+expires+` where id = $1`, id, results)
	require.NoError(t, err)
	return id
}

// localStore is the local backend on a fresh folder, with objects written
// where uploads put them.
func localStore(t *testing.T, objects ...string) (*storage.Local, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := storage.NewLocal(dir, "http://127.0.0.1:1", "test-signing-secret", storage.LocalOptions{})
	require.NoError(t, err)
	for _, o := range objects {
		p := filepath.Join(dir, filepath.FromSlash(o))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
		require.NoError(t, os.WriteFile(p, []byte(o), 0o640))
	}
	return l, dir
}

func exists(t *testing.T, dir, object string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(object)))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	require.NoError(t, err)
	return true
}

func quietScheduler(pool *pgxpool.Pool, del storage.Deleter) *retention.Scheduler {
	return &retention.Scheduler{Pool: pool, Retention: time.Hour, Storage: del,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestCleanupDeletesTheObjectsOfDeletedJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	j1, r2, lv := uuid.New().String(), uuid.New().String(), uuid.New().String()
	store, dir := localStore(t,
		"sources/u/a.mp4", "sources/u/shared.mp4", "sources/u/kept.mp4",
		"results/"+j1+"/clip.mp4", "results/"+j1+"/thumb.jpg", "results/"+r2+"/clip.mp4", "results/"+lv+"/clip.mp4")

	uploadJob(t, pool, "u/a.mp4", []string{j1 + "/clip.mp4", j1 + "/thumb.jpg"}, true)
	uploadJob(t, pool, "u/shared.mp4", []string{r2 + "/clip.mp4"}, true)
	live := uploadJob(t, pool, "u/shared.mp4", nil, false) // still names shared.mp4
	uploadJob(t, pool, "u/kept.mp4", []string{lv + "/clip.mp4"}, false)

	round, ran, err := quietScheduler(pool, store).RunOnce(ctx)
	require.NoError(t, err)
	require.True(t, ran)
	require.Equal(t, int64(2), round.Cleanup.Jobs)
	require.Equal(t, map[string]int64{"results": 3, "sources": 1}, round.Objects.Deleted)
	require.Equal(t, int64(1), round.Objects.InUse, "shared.mp4 is still the source of a live job")
	require.Zero(t, round.Objects.Pending)
	for _, gone := range []string{"sources/u/a.mp4", "results/" + j1 + "/clip.mp4", "results/" + j1 + "/thumb.jpg", "results/" + r2 + "/clip.mp4"} {
		require.False(t, exists(t, dir, gone), gone)
	}
	for _, kept := range []string{"sources/u/shared.mp4", "sources/u/kept.mp4", "results/" + lv + "/clip.mp4"} {
		require.True(t, exists(t, dir, kept), kept)
	}

	// The last job that names shared.mp4 goes: so does the object.
	_, err = pool.Exec(ctx, `update jobs set expires_at = now() - interval '1 second' where id = $1`, live)
	require.NoError(t, err)
	round, _, err = quietScheduler(pool, store).RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"sources": 1}, round.Objects.Deleted)
	require.False(t, exists(t, dir, "sources/u/shared.mp4"))
	require.Equal(t, 0, count(t, pool, "select count(*) from clipper_internal.object_deletions"))
}

// flaky fails its first calls, optionally after deleting (an answer lost
// on the way back), then passes them on.
type flaky struct {
	storage.Deleter
	failures    atomic.Int32
	deleteFirst bool
}

func (f *flaky) Delete(ctx context.Context, bucket string, names []string) (int, error) {
	if f.failures.Add(-1) < 0 {
		return f.Deleter.Delete(ctx, bucket, names)
	}
	if f.deleteFirst {
		_, _ = f.Deleter.Delete(ctx, bucket, names)
	}
	return 0, apperr.New(apperr.Unavailable, "cannot reach Supabase Storage")
}

func TestObjectDeletesAreRetriedAndNeverLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StorageDown", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		r := uuid.New().String() + "/r.mp4"
		store, dir := localStore(t, "sources/s.mp4", "results/"+r)
		uploadJob(t, pool, "s.mp4", []string{r}, true)
		down := &flaky{Deleter: store}
		down.failures.Store(1 << 20)

		round, _, err := quietScheduler(pool, down).RunOnce(ctx)
		require.NoError(t, err, "a Storage failure is not a round failure")
		require.Equal(t, int64(1), round.Cleanup.Jobs, "the job is deleted all the same")
		require.Equal(t, int64(2), round.Objects.Failed, "both buckets' calls failed")
		require.Equal(t, "cannot reach Supabase Storage", round.Objects.LastError)
		require.Equal(t, int64(2), round.Objects.Pending)
		require.True(t, exists(t, dir, "sources/s.mp4"))
		require.True(t, exists(t, dir, "results/"+r))
		require.Equal(t, 2, count(t, pool, `select count(*) from clipper_internal.object_deletions
			where attempts = 1 and last_error = 'cannot reach Supabase Storage' and next_attempt_at > now() + interval '20 seconds'`),
			"the failed names wait their backoff")

		// Not due yet: the next round leaves them alone.
		round, _, err = quietScheduler(pool, store).RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, round.Objects.Total()+round.Objects.Failed)
		require.Equal(t, int64(2), round.Objects.Pending)

		// Once due (time passes), they are deleted.
		_, err = pool.Exec(ctx, `update clipper_internal.object_deletions set next_attempt_at = now()`)
		require.NoError(t, err)
		round, _, err = quietScheduler(pool, store).RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(2), round.Objects.Total())
		require.Zero(t, round.Objects.Pending)
		require.False(t, exists(t, dir, "sources/s.mp4"))
		require.False(t, exists(t, dir, "results/"+r))
	})

	t.Run("AnswerLostAfterTheDelete", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		j := uuid.New().String()
		store, dir := localStore(t, "results/"+j+"/a.mp4", "results/"+j+"/b.mp4")
		uploadJob(t, pool, "gone-already.mp4", []string{j + "/a.mp4", j + "/b.mp4"}, true)
		lost := &flaky{Deleter: store, deleteFirst: true}
		lost.failures.Store(1)

		round, _, err := quietScheduler(pool, lost).RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(2), round.Objects.Failed, "the results call's answer was lost")
		require.Equal(t, int64(1), round.Objects.Missing, "the source was never there")
		require.False(t, exists(t, dir, "results/"+j+"/a.mp4"))

		_, err = pool.Exec(ctx, `update clipper_internal.object_deletions set next_attempt_at = now()`)
		require.NoError(t, err)
		round, _, err = quietScheduler(pool, lost).RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, round.Objects.Total())
		require.Equal(t, int64(2), round.Objects.Missing, "deleting what is gone is a success")
		require.Zero(t, round.Objects.Pending)
	})

	t.Run("DrainDiesWithALease", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		x := uuid.New().String() + "/x.mp4"
		store, dir := localStore(t, "results/"+x)
		uploadJob(t, pool, "src.mp4", []string{x}, true)
		round, _, err := quietScheduler(pool, nil).RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(1), round.Cleanup.Jobs, "no storage: the job goes, its names wait")
		require.Equal(t, 2, count(t, pool, "select count(*) from clipper_internal.object_deletions"))

		// A drain leased them and died before deleting anything.
		_, err = pool.Exec(ctx, `update clipper_internal.object_deletions
			set attempts = 1, next_attempt_at = now() + interval '5 minutes'`)
		require.NoError(t, err)
		round, _, err = quietScheduler(pool, store).RunOnce(ctx)
		require.NoError(t, err)
		require.Zero(t, round.Objects.Total(), "leased names are not due")
		require.True(t, exists(t, dir, "results/"+x))

		// The lease ends.
		_, err = pool.Exec(ctx, `update clipper_internal.object_deletions set next_attempt_at = now()`)
		require.NoError(t, err)
		round, _, err = quietScheduler(pool, store).RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(1), round.Objects.Total())
		require.False(t, exists(t, dir, "results/"+x))
	})

	t.Run("QueuedAgainDuringADrain", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		// Two expired jobs listed the same result: the second deletion
		// queues the name again while a drain holds it.
		same := uuid.New().String() + "/same.mp4"
		_, err := pool.Exec(ctx, `insert into clipper_internal.object_deletions (bucket, name) values ('results', $1)`, same)
		require.NoError(t, err)
		store, _ := localStore(t)
		var requeued atomic.Bool
		hook := deleterFunc(func(ctx context.Context, bucket string, names []string) (int, error) {
			if requeued.CompareAndSwap(false, true) {
				uploadJob(t, pool, "other.mp4", []string{same}, true)
				_, err := pool.Exec(ctx, `delete from jobs where source_object = 'other.mp4'`)
				require.NoError(t, err)
			}
			return store.Delete(ctx, bucket, names)
		})
		round, _, err := quietScheduler(pool, hook).RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, count(t, pool, `select count(*) from clipper_internal.object_deletions
			where name = '`+same+`' and generation = 2`), "the newer request survives the older drain")
		require.Equal(t, int64(2), round.Objects.Pending, "same.mp4 again, and other.mp4")
	})
}

type deleterFunc func(ctx context.Context, bucket string, names []string) (int, error)

func (f deleterFunc) Delete(ctx context.Context, bucket string, names []string) (int, error) {
	return f(ctx, bucket, names)
}

func TestEveryJobDeleteQueuesItsObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	out := uuid.New().String() + "/out.mp4"
	uploadJob(t, pool, "cron/src.mp4", []string{out}, true)
	_, err := pool.Exec(ctx, `insert into jobs (source_type, source_url, expires_at) values ('youtube', 'https://youtu.be/x', now() - interval '1 hour')`)
	require.NoError(t, err)

	// pg_cron's procedure: no Go involved, the trigger queues the names.
	_, err = pool.Exec(ctx, "call clipper_internal.cleanup_expired(10, 10)")
	require.NoError(t, err)
	require.Equal(t, 0, count(t, pool, "select count(*) from jobs"))
	rows, err := pool.Query(ctx, `select bucket || '/' || name from clipper_internal.object_deletions order by 1`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"results/" + out, "sources/cron/src.mp4"}, names)

	// Any other delete, e.g. plain SQL, in a transaction that rolls back:
	// the names go with it.
	uploadJob(t, pool, "rolled/back.mp4", nil, false)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once rolled back
	_, err = tx.Exec(ctx, `delete from jobs where source_object = 'rolled/back.mp4'`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, 2, count(t, pool, "select count(*) from clipper_internal.object_deletions"))

	// service_role may delete jobs (through PostgREST) but has no rights
	// in clipper_internal: its deletes queue the names all the same.
	uploadJob(t, pool, "service/role.mp4", nil, false)
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op once committed
	_, err = tx.Exec(ctx, `set local role service_role`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `delete from jobs where source_object = 'service/role.mp4'`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 1, count(t, pool, "select count(*) from clipper_internal.object_deletions where name = 'service/role.mp4'"))
}

func TestPruneWebhookRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	live := uploadJob(t, pool, "live.mp4", nil, false)
	stillThere, gone, young, withJob := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	_, err := pool.Exec(ctx, `
		insert into clipper_internal.webhook_deliveries (delivery_key, received_at, type, schema_name, table_name, payload)
		select 'k' || g, now() - interval '10 days', 'INSERT', 'storage', 'objects', '{}'::jsonb from generate_series(1, 5) g
		union all select 'fresh', now(), 'INSERT', 'storage', 'objects', '{}'`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `insert into storage.objects (id, bucket_id, name) values ($1, 'sources', 'still-there.mp4')`, stillThere)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		insert into clipper_internal.upload_jobs (object_id, job_id, created_at) values
		  ($1, gen_random_uuid(), now() - interval '10 days'),  -- job gone, object still there
		  ($2, gen_random_uuid(), now() - interval '10 days'),  -- both gone: pruned
		  ($3, gen_random_uuid(), now()),                       -- both gone, but recent
		  ($4, $5, now() - interval '10 days')                  -- job alive`,
		stillThere, gone, young, withJob, live)
	require.NoError(t, err)

	repo := retention.New(pool)
	p, err := repo.PruneWebhookRecords(ctx, 7*24*time.Hour, 2, 0)
	require.NoError(t, err)
	require.Equal(t, retention.Pruned{Deliveries: 5, UploadJobs: 1}, p, "in batches of 2")
	require.Equal(t, 1, count(t, pool, "select count(*) from clipper_internal.webhook_deliveries"))
	require.Equal(t, 3, count(t, pool, "select count(*) from clipper_internal.upload_jobs"))
	require.Equal(t, 0, count(t, pool, "select count(*) from clipper_internal.upload_jobs where object_id = '"+gone.String()+"'"))
}

func TestRoundMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	retention.RecordRound(m, retention.Round{
		Objects:    retention.Objects{Deleted: map[string]int64{"results": 3, "sources": 1}, Failed: 2, Pending: 5},
		Pruned:     retention.Pruned{Deliveries: 7, UploadJobs: 1},
		Reconciled: webhooks.ReconcileResult{Found: 2, Actions: map[webhooks.Action]int{webhooks.ActionJobCreated: 2}},
	})
	families, err := m.Registry.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			name := f.GetName()
			for _, l := range s.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"clipper_cleanup_deleted_objects_total/results":                   3,
		"clipper_cleanup_deleted_objects_total/sources":                   1,
		"clipper_cleanup_object_delete_failures_total":                    2,
		"clipper_cleanup_pending_objects":                                 5,
		"clipper_cleanup_pruned_webhook_records_total/webhook_deliveries": 7,
		"clipper_cleanup_pruned_webhook_records_total/upload_jobs":        1,
		"clipper_reconciled_uploads_total/found":                          2,
		"clipper_reconciled_uploads_total/job_created":                    2,
	} {
		require.Equal(t, want, got[name], name)
	}
}
