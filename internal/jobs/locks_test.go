package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// A heartbeat or progress report in flight must not block other sessions'
// foreign-key checks on the job (KEY SHARE), such as another writer's
// event or webhook delivery row.
func TestWorkerUpdatesTakeNoKeyLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	repo := jobs.New(pool)
	createJob(t, ctx, repo)
	claimed, err := repo.Claim(ctx, "w1", 1)
	require.NoError(t, err)
	id := claimed[0].ID

	for name, update := range map[string]func(r *jobs.Repo) error{
		"heartbeat": func(r *jobs.Repo) error { _, err := r.Heartbeat(ctx, id, "w1"); return err },
		"progress":  func(r *jobs.Repo) error { _, err := r.Progress(ctx, id, "w1", 30); return err },
	} {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, update(repo.WithDB(tx)), name)

		other, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = other.Exec(ctx, "select 1 from jobs where id = $1 for key share nowait", id)
		require.NoError(t, err, "%s held a key-strength lock", name)
		require.NoError(t, other.Rollback(ctx))
		require.NoError(t, tx.Rollback(ctx))
	}
}

// A job made final by a writer that sets no expiry (a frontend cancelling
// through PostgREST may write only status) still expires, after
// clipper.job_retention (default 7 days).
func TestFinalJobsAlwaysExpire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := createJob(t, b.ctx, b.repo)
	var expires time.Time
	require.NoError(t, b.tx.QueryRow(b.ctx,
		"update jobs set status = 'canceled' where id = $1 returning expires_at", j.ID).Scan(&expires))
	require.WithinDuration(t, time.Now().Add(7*24*time.Hour), expires, time.Minute)

	j = createJob(t, b.ctx, b.repo)
	_, err := b.tx.Exec(b.ctx, "set local clipper.job_retention = '1 day'")
	require.NoError(t, err)
	require.NoError(t, b.tx.QueryRow(b.ctx,
		"update jobs set status = 'canceled' where id = $1 returning expires_at", j.ID).Scan(&expires))
	require.WithinDuration(t, time.Now().Add(24*time.Hour), expires, time.Minute)

	// An expiry the writer chose is kept.
	j = createJob(t, b.ctx, b.repo)
	require.NoError(t, b.tx.QueryRow(b.ctx,
		"update jobs set status = 'canceled', expires_at = now() + interval '1 hour' where id = $1 returning expires_at", j.ID).Scan(&expires))
	require.WithinDuration(t, time.Now().Add(time.Hour), expires, time.Minute)
}
