package retention_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/retention"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newJobs inserts n jobs, moves them to status through legal transitions,
// gives them expires_at = now() + expiresIn (none when nil) and extra
// appended events each.
func newJobs(t *testing.T, db database.DB, n int, status string, expiresIn *time.Duration, extra int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var ids []uuid.UUID
	rows, err := db.Query(ctx, `insert into jobs (source_type, source_url)
		select 'youtube', 'https://youtu.be/x' from generate_series(1, $1::int) returning id`, n)
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	steps := map[string][]string{
		"queued":     nil,
		"processing": {"status = 'processing', worker_id = 'w', claimed_at = now(), last_heartbeat_at = now(), attempts = 1"},
		"done":       {"status = 'processing', worker_id = 'w', claimed_at = now(), last_heartbeat_at = now(), attempts = 1", "status = 'done'"},
		"failed":     {"status = 'processing', worker_id = 'w', claimed_at = now(), last_heartbeat_at = now(), attempts = 1", "status = 'failed', error_code = 'x'"},
		"canceled":   {"status = 'canceled'"},
	}[status]
	for _, set := range steps {
		_, err := db.Exec(ctx, "update jobs set "+set+" where id = any($1)", ids)
		require.NoError(t, err)
	}
	if expiresIn != nil {
		_, err := db.Exec(ctx, "update jobs set expires_at = now() + $2::bigint * interval '1 microsecond' where id = any($1)",
			ids, expiresIn.Microseconds())
		require.NoError(t, err)
	}
	if extra > 0 {
		var batch []events.NewEvent
		for _, id := range ids {
			for range extra {
				batch = append(batch, events.NewEvent{JobID: id, Type: "log", Data: json.RawMessage(`{"x":1}`)})
			}
		}
		_, err := events.New(db).AppendBatch(ctx, batch)
		require.NoError(t, err)
	}
	return ids
}

func ago(d time.Duration) *time.Duration { d = -d; return &d }

func countRows(t *testing.T, db database.DB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestCleanupExpired(t *testing.T) {
	t.Parallel()

	t.Run("DeletesOnlyExpiredNotProcessing", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		var doomed []uuid.UUID
		doomed = append(doomed, newJobs(t, pool, 3, "done", ago(time.Hour), 4)...)
		doomed = append(doomed, newJobs(t, pool, 2, "failed", ago(time.Minute), 1)...)
		doomed = append(doomed, newJobs(t, pool, 2, "canceled", ago(time.Second), 0)...)
		doomed = append(doomed, newJobs(t, pool, 1, "queued", ago(time.Second), 2)...)
		kept := newJobs(t, pool, 2, "processing", ago(time.Hour), 3)
		kept = append(kept, newJobs(t, pool, 2, "done", new(time.Hour), 1)...)
		kept = append(kept, newJobs(t, pool, 2, "done", nil, 1)...)
		kept = append(kept, newJobs(t, pool, 1, "queued", nil, 0)...)

		doomedEvents := countRows(t, pool, "select count(*) from job_events where job_id = any($1)", doomed)
		keptEvents := countRows(t, pool, "select count(*) from job_events where job_id = any($1)", kept)
		// Status events: queued 1, canceled 2, done and failed 3; plus the appended ones.
		require.Equal(t, int64(3*(3+4)+2*(3+1)+2*(2+0)+1*(1+2)), doomedEvents)

		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: int64(len(doomed)), Events: doomedEvents, Batches: 1}, res)

		require.Zero(t, countRows(t, pool, "select count(*) from jobs where id = any($1)", doomed))
		require.Zero(t, countRows(t, pool, "select count(*) from job_events where job_id = any($1)", doomed))
		require.Equal(t, int64(len(kept)), countRows(t, pool, "select count(*) from jobs"))
		require.Equal(t, keptEvents, countRows(t, pool, "select count(*) from job_events"))

		res, err = retention.New(pool).CleanupExpired(ctx, retention.Options{})
		require.NoError(t, err)
		require.Equal(t, retention.Result{}, res)
	})

	// Each batch commits on its own: another session sees the count drop
	// batch by batch.
	t.Run("Batches", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		newJobs(t, pool, 25, "done", ago(time.Hour), 1)
		var seen []retention.Result
		var remaining []int64
		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{BatchSize: 10, OnBatch: func(r retention.Result) {
			seen = append(seen, r)
			remaining = append(remaining, countRows(t, pool, "select count(*) from jobs"))
		}})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: 25, Events: 25 * 4, Batches: 3}, res)
		require.Equal(t, []retention.Result{{Jobs: 10, Events: 40, Batches: 1}, {Jobs: 20, Events: 80, Batches: 2}, res}, seen)
		require.Equal(t, []int64{15, 5, 0}, remaining)
	})

	t.Run("MaxBatches", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		newJobs(t, pool, 25, "done", ago(time.Hour), 0)
		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{BatchSize: 10, MaxBatches: 2})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: 20, Events: 20 * 3, Batches: 2}, res)
		require.Equal(t, int64(5), countRows(t, pool, "select count(*) from jobs"))
	})

	// Soonest expiry goes first, so a bounded run removes the oldest.
	t.Run("SoonestExpiryFirst", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		old := newJobs(t, pool, 3, "done", ago(48*time.Hour), 0)
		newJobs(t, pool, 3, "done", ago(time.Hour), 0)
		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{BatchSize: 3, MaxBatches: 1})
		require.NoError(t, err)
		require.EqualValues(t, 3, res.Jobs)
		require.Zero(t, countRows(t, pool, "select count(*) from jobs where id = any($1)", old))
	})

	t.Run("StopsOnCancel", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		newJobs(t, pool, 30, "done", ago(time.Hour), 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{BatchSize: 10, OnBatch: func(retention.Result) { cancel() }})
		apperrtest.RequireCode(t, err, apperr.Unavailable)
		require.Equal(t, retention.Result{Jobs: 10, Events: 10 * 3, Batches: 1}, res)
		require.Equal(t, int64(20), countRows(t, pool, "select count(*) from jobs"))
		require.Equal(t, int64(20*3), countRows(t, pool, "select count(*) from job_events"))
	})

	// A job another transaction holds (here: an event being appended) is
	// skipped without waiting and left for the next run.
	t.Run("SkipsLockedJobs", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		busy := newJobs(t, pool, 1, "done", ago(time.Hour), 0)[0]
		newJobs(t, pool, 4, "done", ago(time.Hour), 0)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = events.New(tx).Append(ctx, busy, "log", nil)
		require.NoError(t, err)

		res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: 4, Events: 4 * 3, Batches: 1}, res)
		require.NoError(t, tx.Commit(ctx))

		res, err = retention.New(pool).CleanupExpired(ctx, retention.Options{})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: 1, Events: 3 + 1, Batches: 1}, res)
	})

	t.Run("BatchSizeCapped", func(t *testing.T) {
		t.Parallel()
		b := pgtest.Tx(t)
		ctx := context.Background()
		newJobs(t, b, retention.MaxBatchSize+5, "canceled", ago(time.Hour), 0)
		res, err := retention.New(b).CleanupExpired(ctx, retention.Options{BatchSize: 1 << 30})
		require.NoError(t, err)
		require.Equal(t, retention.Result{Jobs: retention.MaxBatchSize + 5, Events: 2 * (retention.MaxBatchSize + 5), Batches: 2}, res)
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		repo := retention.New(pgtest.Tx(t))
		_, err := repo.CleanupExpired(context.Background(), retention.Options{BatchSize: -1})
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = repo.CleanupExpired(context.Background(), retention.Options{MaxBatches: -1})
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	})

	t.Run("Unavailable", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := retention.New(pgtest.SharedPool(t)).CleanupExpired(ctx, retention.Options{})
		apperrtest.RequireCode(t, err, apperr.Unavailable)

		pool, err := pgxpool.New(context.Background(), "postgres://clipper@127.0.0.1:1/clipper?connect_timeout=2")
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		_, err = retention.New(pool).CleanupExpired(context.Background(), retention.Options{})
		apperrtest.RequireCode(t, err, apperr.Unavailable)
	})
}
