package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// Reaping is one rule, run by the daemon (RequeueStale) and by pg_cron
// (clipper_internal.reap_stale_jobs): both take a stale job back even while
// another session holds a foreign-key check's KEY SHARE lock on it (an
// event or webhook row being written), which a FOR UPDATE would skip.
func TestReapingIsOneRule(t *testing.T) {
	t.Parallel()
	for name, reap := range map[string]func(ctx context.Context, pool *pgxpool.Pool) (int, error){
		"Daemon": func(ctx context.Context, pool *pgxpool.Pool) (int, error) {
			got, err := jobs.New(pool).RequeueStale(ctx, time.Minute, 10, time.Hour)
			return len(got), err
		},
		"PgCron": func(ctx context.Context, pool *pgxpool.Pool) (int, error) {
			var n int
			err := pool.QueryRow(ctx, "select clipper_internal.reap_stale_jobs(interval '1 minute', interval '1 hour')").Scan(&n)
			return n, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, _ := pgtest.NewPool(t)
			repo := jobs.New(pool)
			createJob(t, ctx, repo)
			claimed, err := repo.Claim(ctx, "w1", 1)
			require.NoError(t, err)
			id := claimed[0].ID
			_, err = pool.Exec(ctx, "update jobs set last_heartbeat_at = now() - interval '10 minutes' where id = $1", id)
			require.NoError(t, err)

			other, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer other.Rollback(ctx) //nolint:errcheck
			_, err = other.Exec(ctx, "select 1 from jobs where id = $1 for key share", id)
			require.NoError(t, err)

			n, err := reap(ctx, pool)
			require.NoError(t, err)
			require.Equal(t, 1, n, "the stale job is reaped despite the KEY SHARE lock")
			got, err := repo.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, jobs.StatusQueued, got.Status)
		})
	}
}
