package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/watches"
)

// A status change and its event are one: whatever undoes the change
// undoes the event, and nobody outside sees either before commit.
func TestTransitionIsAtomic(t *testing.T) {
	t.Parallel()

	t.Run("RollbackAfterComplete", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		repo := jobs.New(pool)
		createJob(t, ctx, repo)
		claimed, err := repo.Claim(ctx, "w1", 1)
		require.NoError(t, err)
		j := claimed[0]
		before := stateOf(t, pool, j.ID)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		done, err := repo.WithDB(tx).Complete(ctx, j.ID, "w1", []string{j.ID.String() + "/r.mp4"}, time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusDone, done.Status)
		inside := stateOf(t, tx, j.ID)
		require.Equal(t, before.Events+1, inside.Events, "the event is written with the change")
		require.Equal(t, before, stateOf(t, pool, j.ID), "nothing visible before commit")

		_, err = tx.Exec(ctx, "select 1/0")
		require.Error(t, err)
		require.NoError(t, tx.Rollback(ctx))

		require.Equal(t, before, stateOf(t, pool, j.ID))
		got, err := repo.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusProcessing, got.Status)
		_, err = repo.Complete(ctx, j.ID, "w1", nil, time.Hour)
		require.NoError(t, err, "the job is still the worker's to finish")
	})

	t.Run("SavepointRollback", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		before := stateOf(t, b.tx, j.ID)
		later := errors.New("a later step failed")
		err := database.InTx(b.ctx, b.tx, func(tx pgx.Tx) error {
			if _, err := b.repo.WithDB(tx).Fail(b.ctx, j.ID, "w1", "c", "m", false, 0, time.Hour); err != nil {
				return err
			}
			return later
		})
		require.ErrorIs(t, err, later)
		require.Equal(t, before, stateOf(t, b.tx, j.ID))
	})

	// A deferred constraint that fails at commit takes the status change
	// and its event with it, and the caller gets a coded error.
	t.Run("DeferredConstraintAtCommit", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		_, err := pool.Exec(ctx, `
			create function public.refuse_done() returns trigger language plpgsql as $$
			begin
			  if new.status = 'done' then
			    raise exception 'done refused at commit' using errcode = '23514';
			  end if;
			  return null;
			end $$;
			create constraint trigger refuse_done after update on public.jobs
			  deferrable initially deferred for each row execute function public.refuse_done();`)
		require.NoError(t, err)
		repo := jobs.New(pool)
		createJob(t, ctx, repo)
		claimed, err := repo.Claim(ctx, "w1", 1)
		require.NoError(t, err)
		j := claimed[0]
		before := stateOf(t, pool, j.ID)

		_, err = repo.Complete(ctx, j.ID, "w1", []string{"r"}, time.Hour)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		require.Equal(t, before, stateOf(t, pool, j.ID))

		// A failure (not done) passes the same constraint.
		_, err = repo.Fail(ctx, j.ID, "w1", "c", "", false, 0, time.Hour)
		require.NoError(t, err)
	})

	// Listeners hear of a change only when it commits.
	t.Run("NotifyOnlyOnCommit", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, dsn := pgtest.NewPool(t)
		repo := jobs.New(pool)
		createJob(t, ctx, repo)
		claimed, err := repo.Claim(ctx, "w1", 1)
		require.NoError(t, err)
		j := claimed[0]

		listener, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer listener.Close(ctx)
		_, err = listener.Exec(ctx, "listen clipper_job_events")
		require.NoError(t, err)
		// Only streamed jobs are notified (internal/watches).
		_, err = watches.New(pool, watches.Options{}).Watch(ctx, j.ID)
		require.NoError(t, err)
		wait := func(d time.Duration) (map[string]any, bool) {
			wctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			n, err := listener.WaitForNotification(wctx)
			if err != nil {
				return nil, false
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(n.Payload), &m))
			return m, true
		}

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = repo.WithDB(tx).Complete(ctx, j.ID, "w1", nil, time.Hour)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		// NOTIFYs arrive in commit order: if the rolled-back change had
		// been announced, it would come before this marker.
		_, err = pool.Exec(ctx, `select pg_notify('clipper_job_events', '{"marker":true}')`)
		require.NoError(t, err)
		m, got := wait(30 * time.Second)
		require.True(t, got)
		require.Equal(t, map[string]any{"marker": true}, m, "a rolled-back change is never announced")

		_, err = repo.Complete(ctx, j.ID, "w1", nil, time.Hour)
		require.NoError(t, err)
		m, got = wait(30 * time.Second)
		require.True(t, got)
		require.Equal(t, j.ID.String(), m["job_id"])
		require.Equal(t, "done", m["status"])
	})
}
