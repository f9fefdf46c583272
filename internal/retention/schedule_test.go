package retention_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/retention"
)

// seedRetention makes n expired done jobs with 3 events each, one expired
// job still processing, and one processing job with a stale heartbeat.
func seedRetention(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, fmt.Sprintf(`
		insert into jobs (source_type, source_url)
		select 'youtube', 'https://youtu.be/' || g from generate_series(1, %d) g;
		update jobs set status = 'processing', worker_id = 'w', claimed_at = now(),
		  last_heartbeat_at = now(), attempts = 1;
		update jobs set status = 'done', expires_at = now() - interval '1 hour';
		insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/held'), ('youtube', 'https://youtu.be/stale');
		update jobs set status = 'processing', worker_id = 'w', claimed_at = now(), attempts = 1,
		  last_heartbeat_at = now() - interval '1 hour', expires_at = now() - interval '1 hour'
		where source_url = 'https://youtu.be/held';
		update jobs set status = 'processing', worker_id = 'w', claimed_at = now(), attempts = 1,
		  last_heartbeat_at = now() - interval '1 hour'
		where source_url = 'https://youtu.be/stale';`, n))
	require.NoError(t, err)
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func TestSchedulerRoundCleansAndReaps(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	seedRetention(t, pool, 25)
	s := &retention.Scheduler{Pool: pool, Interval: time.Minute, BatchSize: 10,
		HeartbeatTimeout: time.Minute, Retention: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	round, ran, err := s.RunOnce(context.Background())
	require.NoError(t, err)
	require.True(t, ran)
	require.Equal(t, 2, round.Reaped, "both quiet processing jobs are reaped")
	// The reaper runs first: the expired job it requeued is no longer held
	// by a worker, so cleanup deletes it with the 25 done ones.
	require.Equal(t, int64(26), round.Cleanup.Jobs)
	require.Equal(t, int64(26*3), round.Cleanup.Events, "three status events each")
	require.Equal(t, 3, round.Cleanup.Batches)
	require.Equal(t, 1, count(t, pool, "select count(*) from jobs"))
	require.Equal(t, 1, count(t, pool, "select count(*) from jobs where status = 'queued' and error_code = 'heartbeat_timeout'"))
	require.Equal(t, 0, count(t, pool, "select count(*) from job_events e where not exists (select 1 from jobs j where j.id = e.job_id)"))
}

func TestSchedulerRunsOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	seedRetention(t, pool, 3)
	s := &retention.Scheduler{Pool: pool, Interval: time.Minute, HeartbeatTimeout: time.Minute,
		Retention: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	// Another replica holds the lock.
	other, err := pool.Acquire(ctx)
	require.NoError(t, err)
	var got bool
	require.NoError(t, other.QueryRow(ctx, "select pg_try_advisory_lock($1)", int64(0x636c6970_72657400)).Scan(&got))
	require.True(t, got)

	_, ran, err := s.RunOnce(ctx)
	require.NoError(t, err)
	require.False(t, ran, "a round must not run while another replica holds the lock")
	require.Equal(t, 5, count(t, pool, "select count(*) from jobs"))

	_, err = other.Exec(ctx, "select pg_advisory_unlock($1)", int64(0x636c6970_72657400))
	require.NoError(t, err)
	other.Release()
	_, ran, err = s.RunOnce(ctx)
	require.NoError(t, err)
	require.True(t, ran)
	require.Equal(t, 1, count(t, pool, "select count(*) from jobs"))
}

func TestCleanupProcedureForPgCron(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	seedRetention(t, pool, 12)

	// pg_cron runs the CALL outside a transaction block, as here; its
	// notice reports what it deleted.
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "call clipper_internal.cleanup_expired(5, 100)")
	require.NoError(t, err)
	require.Equal(t, []string{"clipper cleanup: deleted 12 jobs and 36 events in 3 batches"}, notices,
		"three status events each (queued, processing, done)")
	require.Equal(t, 2, count(t, pool, "select count(*) from jobs"), "only the processing jobs are left")
	require.Equal(t, 2, count(t, pool, "select clipper_internal.reap_stale_jobs(interval '1 minute', interval '1 hour')"))
	require.Equal(t, 2, count(t, pool, "select count(*) from jobs where status = 'queued'"))

	_, err = pool.Exec(ctx, "call clipper_internal.cleanup_expired(0, 1)")
	require.ErrorContains(t, err, "batch_size")
}
