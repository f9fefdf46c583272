package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// Eight workers drain 500 committed jobs, each job failing retryably a
// planned number of times first. No job may be held by two workers at
// once, each must end exactly once (done if it had attempts to spare,
// failed after exactly max_attempts otherwise), and its events must tell
// the same story.
func TestConcurrentWorkers(t *testing.T) {
	t.Parallel()
	const (
		nJobs    = 500
		nWorkers = 8
		batch    = 5
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard only
	defer cancel()
	_, dsn := pgtest.NewPool(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.MaxConns = nWorkers + 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	repo := jobs.New(pool)

	type plan struct {
		failures    int // retryable failures before success
		maxAttempts int
	}
	plans := map[uuid.UUID]plan{}
	for i := range nJobs {
		p := plan{failures: i % 5, maxAttempts: 1 + i%4}
		params, _ := json.Marshal(map[string]int{"failures": p.failures})
		j, _, err := repo.Create(ctx, jobs.CreateParams{SourceURL: videoURL, Params: params, MaxAttempts: p.maxAttempts})
		require.NoError(t, err)
		plans[j.ID] = p
	}

	var (
		mu        sync.Mutex
		holder    = map[uuid.UUID]string{}
		completes = map[uuid.UUID]int{}
		finals    = map[uuid.UUID]int{}
		claims    = map[uuid.UUID]int{}
		finished  atomic.Int64
		wg        sync.WaitGroup
		errs      = make(chan error, nWorkers)
	)
	work := func(worker string) error {
		for finished.Load() < nJobs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			got, err := repo.Claim(ctx, worker, batch)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			for _, j := range got {
				p := plans[j.ID]
				mu.Lock()
				if h, held := holder[j.ID]; held {
					mu.Unlock()
					return fmt.Errorf("job %s claimed by %s while %s holds it", j.ID, worker, h)
				}
				holder[j.ID] = worker
				claims[j.ID]++
				n := claims[j.ID]
				mu.Unlock()
				if j.Attempts > j.MaxAttempts || j.Attempts != n {
					return fmt.Errorf("job %s: attempt %d of %d after %d claims", j.ID, j.Attempts, j.MaxAttempts, n)
				}
				if _, err := repo.Heartbeat(ctx, j.ID, worker); err != nil {
					return err
				}
				// Free the job in the map before the database does, so a
				// fast re-claim by another worker is not mistaken for a
				// double hold.
				mu.Lock()
				delete(holder, j.ID)
				mu.Unlock()
				var res jobs.Job
				if j.Attempts <= p.failures {
					res, err = repo.Fail(ctx, j.ID, worker, "flaky", "try again", true, 0, time.Hour)
				} else {
					res, err = repo.Complete(ctx, j.ID, worker, []string{j.ID.String() + "/clip.mp4"}, time.Hour)
				}
				if err != nil {
					return err
				}
				mu.Lock()
				if res.Status == jobs.StatusDone {
					completes[j.ID]++
				}
				if res.Status.Final() {
					finals[j.ID]++
					finished.Add(1)
				}
				mu.Unlock()
			}
		}
		return nil
	}
	for w := range nWorkers {
		wg.Go(func() {
			if err := work(fmt.Sprintf("worker-%d", w)); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	rows, err := pool.Query(ctx, "select id, status::text, attempts, max_attempts from jobs")
	require.NoError(t, err)
	type row struct {
		ID          uuid.UUID `db:"id"`
		Status      string    `db:"status"`
		Attempts    int       `db:"attempts"`
		MaxAttempts int       `db:"max_attempts"`
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	require.NoError(t, err)
	require.Len(t, all, nJobs)

	var nEvents int
	for _, r := range all {
		p := plans[r.ID]
		require.Equal(t, 1, finals[r.ID], "job %s ended %d times", r.ID, finals[r.ID])
		require.Equal(t, r.Attempts, claims[r.ID])
		if p.failures < p.maxAttempts {
			require.Equal(t, "done", r.Status)
			require.Equal(t, p.failures+1, r.Attempts)
			require.Equal(t, 1, completes[r.ID])
		} else {
			require.Equal(t, "failed", r.Status)
			require.Equal(t, p.maxAttempts, r.Attempts)
			require.Zero(t, completes[r.ID])
		}
		// queued, then (processing, queued|done|failed) per attempt.
		ev := statusEvents(t, pool, r.ID)
		require.Len(t, ev, 1+2*r.Attempts)
		require.Equal(t, "queued", ev[0].To)
		for a := 1; a <= r.Attempts; a++ {
			claim, end := ev[2*a-1], ev[2*a]
			require.Equal(t, []string{"queued", "processing"}, []string{claim.From, claim.To})
			require.Equal(t, a, claim.Attempt)
			require.Equal(t, "processing", end.From)
			require.Equal(t, a, end.Attempt)
			require.Equal(t, claim.WorkerID, end.WorkerID, "the attempt's end names its worker")
			want := "queued"
			if a == r.Attempts {
				want = r.Status
			}
			require.Equal(t, want, end.To)
		}
		nEvents += len(ev)
	}
	var total int
	require.NoError(t, pool.QueryRow(ctx, "select count(*) from job_events").Scan(&total))
	require.Equal(t, nEvents, total, "only status events: heartbeats write none")
}
