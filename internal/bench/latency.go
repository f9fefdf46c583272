package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
)

// latency times the hot read queries, one at a time from one client, on
// the loaded database: what each costs the database and the round trip.
func (e *env) latency(ctx context.Context) error {
	// A sample of 2% of the pages is cheap at a million jobs, but on a
	// small table it can pick no page at all: then read the first jobs.
	ids, err := jobIDs(ctx, e.pool, "select id from jobs tablesample system (2) limit 10000")
	if err == nil && len(ids) == 0 {
		ids, err = jobIDs(ctx, e.pool, "select id from jobs limit 10000")
	}
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("bench: no jobs to read")
	}
	repo := jobs.New(e.pool)
	ev := events.New(e.pool)

	// A keyset page far from the start: half way down the done jobs.
	var deep jobs.Job
	var doneCount int
	if err := e.pool.QueryRow(ctx, "select count(*) from jobs where status = 'done'").Scan(&doneCount); err != nil {
		return err
	}
	var deepID uuid.UUID
	if err := e.pool.QueryRow(ctx, `select id from jobs where status = 'done'
		order by created_at desc, id desc offset $1 limit 1`, doneCount/2).Scan(&deepID); err != nil {
		return err
	}
	if deep, err = repo.Get(ctx, deepID); err != nil {
		return err
	}
	deepCursor := jobs.CursorAfter(deep)
	statuses := []jobs.Status{jobs.StatusQueued, jobs.StatusProcessing, jobs.StatusDone, jobs.StatusFailed, jobs.StatusCanceled}

	measure := func(name string, fn func() error) error {
		l := &latencies{}
		for i := range e.opts.Samples + e.opts.Samples/10 {
			t := time.Now()
			if err := fn(); err != nil {
				return err
			}
			if i >= e.opts.Samples/10 { // the first tenth warms caches
				l.add(time.Since(t))
			}
		}
		e.addLatency(name, l)
		return nil
	}
	pick := func() uuid.UUID { return ids[rand.IntN(len(ids))] }

	if err := measure("list_by_status", func() error {
		_, err := repo.ListByStatus(ctx, statuses[rand.IntN(len(statuses))], "", 50)
		return err
	}); err != nil {
		return err
	}
	if err := measure("list_by_status_deep", func() error {
		_, err := repo.ListByStatus(ctx, jobs.StatusDone, deepCursor, 50)
		return err
	}); err != nil {
		return err
	}
	if err := measure("get_job", func() error {
		_, err := repo.Get(ctx, pick())
		return err
	}); err != nil {
		return err
	}
	if err := measure("events_by_job", func() error {
		_, err := ev.ListByJob(ctx, pick(), 0, 100)
		return err
	}); err != nil {
		return err
	}
	// The cleanup's selection of expired jobs (a batch of 1000), rolled
	// back so the rows stay for the cleanup phase.
	return measure("expired_select", func() error {
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = dbgen.New(tx).LockExpiredJobs(ctx, 1000)
		return err
	})
}

func jobIDs(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string) ([]uuid.UUID, error) {
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}
