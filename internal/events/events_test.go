package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/watches"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	ctx  context.Context
	tx   pgx.Tx
	repo *events.Repo
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	tx := pgtest.Tx(t)
	return &testBundle{ctx: context.Background(), tx: tx, repo: events.New(tx)}
}

func newJob(t *testing.T, db database.DB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, db.QueryRow(context.Background(),
		"insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/x') returning id").Scan(&id))
	return id
}

func countEvents(t *testing.T, db database.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), "select count(*) from job_events").Scan(&n))
	return n
}

func TestAppend(t *testing.T) {
	t.Parallel()

	t.Run("Appends", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := newJob(t, b.tx)
		ev, err := b.repo.Append(b.ctx, job, "worker.download_started", json.RawMessage(`{"bytes": 1024}`))
		require.NoError(t, err)
		require.Positive(t, ev.ID)
		require.Equal(t, job, ev.JobID)
		require.Equal(t, "worker.download_started", ev.Type)
		require.JSONEq(t, `{"bytes":1024}`, string(ev.Data))
		require.False(t, ev.TS.IsZero())

		empty, err := b.repo.Append(b.ctx, job, "note", nil)
		require.NoError(t, err)
		require.JSONEq(t, `{}`, string(empty.Data))
		require.Greater(t, empty.ID, ev.ID)

		got, err := b.repo.ListByJob(b.ctx, job, 0, 0)
		require.NoError(t, err)
		require.Len(t, got, 3) // the creation status event first
		require.Equal(t, "status", got[0].Type)
		require.Equal(t, ev, got[1])
		require.Equal(t, empty, got[2])
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := newJob(t, b.tx)
		before := countEvents(t, b.tx)
		for name, c := range map[string]struct {
			typ  string
			data string
		}{
			"EmptyType":     {"", `{}`},
			"UpperCase":     {"Worker", `{}`},
			"LeadingDigit":  {"1log", `{}`},
			"Dash":          {"worker-log", `{}`},
			"TooLong":       {"a" + strings.Repeat("b", 64), `{}`},
			"StatusType":    {"status", `{}`},
			"ProgressType":  {"progress", `{"progress":5}`},
			"DataArray":     {"log", `[1]`},
			"DataString":    {"log", `"x"`},
			"DataNull":      {"log", `null`},
			"DataBroken":    {"log", `{"a":`},
			"DataTooLarge":  {"log", `{"a":"` + strings.Repeat("x", 64<<10) + `"}`},
			"DataNULEscape": {"log", `{"a":"\u0000"}`}, // refused by jsonb itself
		} {
			_, err := b.repo.Append(b.ctx, job, c.typ, json.RawMessage(c.data))
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
			require.Equal(t, before, countEvents(t, b.tx), name)
		}
		// The longest allowed type.
		_, err := b.repo.Append(b.ctx, job, "a"+strings.Repeat("b", 63), nil)
		require.NoError(t, err)
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.repo.Append(b.ctx, uuid.New(), "log", nil)
		apperrtest.RequireCode(t, err, apperr.NotFound)
	})

	t.Run("DeletedJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := newJob(t, b.tx)
		_, err := b.repo.Append(b.ctx, job, "log", nil)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, "delete from jobs where id = $1", job)
		require.NoError(t, err)
		require.Zero(t, countEvents(t, b.tx), "events go with their job")
		_, err = b.repo.Append(b.ctx, job, "log", nil)
		apperrtest.RequireCode(t, err, apperr.NotFound)
		_, err = b.repo.ListByJob(b.ctx, job, 0, 0)
		apperrtest.RequireCode(t, err, apperr.NotFound)
		require.Zero(t, countEvents(t, b.tx))
	})

	// An append waits for a transaction that is changing the job, so the
	// event that commits first also comes first in the stream.
	t.Run("WaitsForJobWriters", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		job := newJob(t, pool)
		_, err := jobs.New(pool).Claim(ctx, "w1", 1)
		require.NoError(t, err)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = jobs.New(tx).Progress(ctx, job, "w1", 30)
		require.NoError(t, err)

		ev := appendBlocked(t, ctx, pool, job, func() { require.NoError(t, tx.Commit(ctx)) })
		got, err := events.New(pool).ListByJob(ctx, job, 0, 0)
		require.NoError(t, err)
		require.Len(t, got, 4)
		require.Equal(t, []string{"status", "status", "progress", "worker.log"},
			[]string{got[0].Type, got[1].Type, got[2].Type, got[3].Type})
		require.Equal(t, ev.ID, got[3].ID)
		require.True(t, got[3].TS.After(got[2].TS))
	})

	// Two appends to one job serialize too. Their foreign key checks alone
	// (FOR KEY SHARE) would not: without Append's lock the second could
	// commit an earlier (ts, id) after the first.
	t.Run("AppendsSerialize", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		job := newJob(t, pool)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		first, err := events.New(tx).Append(ctx, job, "first", nil)
		require.NoError(t, err)

		second := appendBlocked(t, ctx, pool, job, func() { require.NoError(t, tx.Commit(ctx)) })
		require.Greater(t, second.ID, first.ID)
		require.True(t, second.TS.After(first.TS))
	})

	t.Run("LockedConflict", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		job := newJob(t, pool)
		holder, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer holder.Rollback(ctx) //nolint:errcheck
		_, err = holder.Exec(ctx, "update jobs set progress = 1 where id = $1", job)
		require.NoError(t, err)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "set local lock_timeout = '100ms'")
		require.NoError(t, err)
		_, err = events.New(tx).Append(ctx, job, "log", nil)
		apperrtest.RequireCode(t, err, apperr.Conflict)
	})
}

// appendBlocked appends to job from another session, checks that the
// append waits on a lock until release runs, and returns its event.
func appendBlocked(t *testing.T, ctx context.Context, pool *pgxpool.Pool, job uuid.UUID, release func()) events.Event {
	t.Helper()
	return blocked(t, ctx, pool, release, func() (events.Event, error) {
		return events.New(pool).Append(ctx, job, "worker.log", json.RawMessage(`{"line":"started"}`))
	})
}

// blocked runs write in another session, checks that it waits on a lock
// until release runs, and returns its result.
func blocked(t *testing.T, ctx context.Context, pool *pgxpool.Pool, release func(), write func() (events.Event, error)) events.Event {
	t.Helper()
	type result struct {
		ev  events.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := write()
		done <- result{ev, err}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting == 1
	}, 30*time.Second, 10*time.Millisecond, "the append waits on the job's row lock")
	select {
	case r := <-done:
		t.Fatalf("append finished while the job was locked: %+v", r)
	default:
	}
	release()
	r := <-done
	require.NoError(t, r.err)
	return r.ev
}

func TestAppendBatch(t *testing.T) {
	t.Parallel()

	t.Run("Copies", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, dsn := pgtest.NewPool(t)
		repo := events.New(pool)
		a, bJob := newJob(t, pool), newJob(t, pool)

		listener, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer listener.Close(ctx)
		_, err = listener.Exec(ctx, "listen clipper_job_events")
		require.NoError(t, err)
		// Only streamed jobs are notified (internal/watches).
		watched := watches.New(pool, watches.Options{})
		for _, job := range []uuid.UUID{a, bJob} {
			_, err = watched.Watch(ctx, job)
			require.NoError(t, err)
		}

		var batch []events.NewEvent
		for i := range 50 {
			job := a
			if i%3 == 0 {
				job = bJob
			}
			batch = append(batch, events.NewEvent{JobID: job, Type: "worker.frame", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		}
		n, err := repo.AppendBatch(ctx, batch)
		require.NoError(t, err)
		require.EqualValues(t, 50, n)

		// Per job, the batch's order is kept.
		for _, job := range []uuid.UUID{a, bJob} {
			got, err := repo.ListByJob(ctx, job, 0, 0)
			require.NoError(t, err)
			var want []int
			for i, e := range batch {
				if e.JobID == job {
					want = append(want, i)
				}
			}
			require.Len(t, got, 1+len(want))
			for k, e := range got[1:] {
				var d struct{ I int }
				require.NoError(t, json.Unmarshal(e.Data, &d))
				require.Equal(t, want[k], d.I)
			}
		}

		// COPY fires the statement trigger: one notification per job.
		seen := map[string]bool{}
		for range 2 {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			note, err := listener.WaitForNotification(wctx)
			cancel()
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(note.Payload), &m))
			seen[m["job_id"].(string)] = true
		}
		require.Equal(t, map[string]bool{a.String(): true, bJob.String(): true}, seen)
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := newJob(t, b.tx)
		gone := newJob(t, b.tx)
		_, err := b.tx.Exec(b.ctx, "delete from jobs where id = $1", gone)
		require.NoError(t, err)
		before := countEvents(t, b.tx)

		_, err = b.repo.AppendBatch(b.ctx, []events.NewEvent{{JobID: job, Type: "log"}, {JobID: gone, Type: "log"}})
		apperrtest.RequireCode(t, err, apperr.NotFound)
		require.Equal(t, before, countEvents(t, b.tx))

		_, err = b.repo.AppendBatch(b.ctx, []events.NewEvent{{JobID: job, Type: "log"}, {JobID: job, Type: "Bad"}})
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		require.Contains(t, apperr.EnvelopeOf(err).Message, "event 1")
		require.Equal(t, before, countEvents(t, b.tx))

		_, err = b.repo.AppendBatch(b.ctx, []events.NewEvent{{JobID: job, Type: "log", Data: json.RawMessage(`{"a":"\u0000"}`)}})
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		require.Equal(t, before, countEvents(t, b.tx))

		n, err := b.repo.AppendBatch(b.ctx, nil)
		require.NoError(t, err)
		require.Zero(t, n)

		_, err = b.repo.AppendBatch(b.ctx, make([]events.NewEvent, events.MaxBatch+1))
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	})

	t.Run("SerializesWithAppends", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		a, bJob := newJob(t, pool), newJob(t, pool)
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		first, err := events.New(tx).Append(ctx, bJob, "first", nil)
		require.NoError(t, err)

		blocked(t, ctx, pool, func() { require.NoError(t, tx.Commit(ctx)) }, func() (events.Event, error) {
			_, err := events.New(pool).AppendBatch(ctx, []events.NewEvent{{JobID: a, Type: "batch"}, {JobID: bJob, Type: "batch"}})
			return events.Event{}, err
		})
		got, err := events.New(pool).ListByJob(ctx, bJob, first.ID, 0)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, "batch", got[0].Type)
		require.Greater(t, got[0].ID, first.ID)
	})

	// Batches over the same jobs in opposite orders lock in one order.
	t.Run("NoDeadlock", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		repo := events.New(pool)
		ids := make([]uuid.UUID, 6)
		for i := range ids {
			ids[i] = newJob(t, pool)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Go(func() {
				for i := range 40 {
					var batch []events.NewEvent
					for k := range ids {
						id := ids[k]
						if (w+i)%2 == 1 {
							id = ids[len(ids)-1-k]
						}
						batch = append(batch, events.NewEvent{JobID: id, Type: "log"})
					}
					if _, err := repo.AppendBatch(ctx, batch); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, len(ids)+4*40*len(ids), countEvents(t, pool))
	})
}

func TestListByJob(t *testing.T) {
	t.Parallel()

	t.Run("StreamOrderAndResume", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		jr := jobs.New(b.tx)
		j, _, err := jr.Create(b.ctx, jobs.CreateParams{SourceURL: "https://youtu.be/x"})
		require.NoError(t, err)
		other := newJob(t, b.tx)
		_, err = jr.Claim(b.ctx, "w1", 2)
		require.NoError(t, err)

		want := []string{"status", "status"}
		for i := range 10 {
			_, err := b.repo.Append(b.ctx, j.ID, "log", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
			require.NoError(t, err)
			want = append(want, "log")
			if i == 4 {
				_, err = jr.Progress(b.ctx, j.ID, "w1", 50)
				require.NoError(t, err)
				want = append(want, "progress")
				_, err = b.repo.AppendBatch(b.ctx, []events.NewEvent{{JobID: j.ID, Type: "batch"}, {JobID: other, Type: "batch"}})
				require.NoError(t, err)
				want = append(want, "batch")
			}
		}
		_, err = jr.Complete(b.ctx, j.ID, "w1", nil, time.Hour)
		require.NoError(t, err)
		want = append(want, "status")

		var (
			got   []events.Event
			after int64
		)
		for {
			page, err := b.repo.ListByJob(b.ctx, j.ID, after, 4)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 4)
			got = append(got, page...)
			after = page[len(page)-1].ID
		}
		types := make([]string, len(got))
		for i, e := range got {
			types[i] = e.Type
			require.Equal(t, j.ID, e.JobID)
			if i > 0 {
				require.True(t, e.TS.After(got[i-1].TS) || (e.TS.Equal(got[i-1].TS) && e.ID > got[i-1].ID))
				require.Greater(t, e.ID, got[i-1].ID)
			}
		}
		require.Equal(t, want, types)

		// Resuming from the middle gives the rest.
		rest, err := b.repo.ListByJob(b.ctx, j.ID, got[5].ID, 0)
		require.NoError(t, err)
		require.Equal(t, got[6:], rest)
	})

	t.Run("Limits", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := newJob(t, b.tx)
		batch := make([]events.NewEvent, events.MaxListLimit+10)
		for i := range batch {
			batch[i] = events.NewEvent{JobID: job, Type: "log"}
		}
		_, err := b.repo.AppendBatch(b.ctx, batch)
		require.NoError(t, err)
		got, err := b.repo.ListByJob(b.ctx, job, 0, 0)
		require.NoError(t, err)
		require.Len(t, got, events.DefaultListLimit)
		got, err = b.repo.ListByJob(b.ctx, job, 0, 1<<30)
		require.NoError(t, err)
		require.Len(t, got, events.MaxListLimit)
		_, err = b.repo.ListByJob(b.ctx, job, 0, -1)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = b.repo.ListByJob(b.ctx, job, -1, 0)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	})

	t.Run("UnknownPosition", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job, other := newJob(t, b.tx), newJob(t, b.tx)
		ev, err := b.repo.Append(b.ctx, other, "log", nil)
		require.NoError(t, err)
		_, err = b.repo.ListByJob(b.ctx, job, ev.ID, 0)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = b.repo.ListByJob(b.ctx, uuid.New(), ev.ID, 0)
		apperrtest.RequireCode(t, err, apperr.NotFound)
		_, err = b.repo.ListByJob(b.ctx, uuid.New(), 0, 0)
		apperrtest.RequireCode(t, err, apperr.NotFound)
		// At the end of a live stream: empty, not an error.
		last, err := b.repo.Append(b.ctx, job, "log", nil)
		require.NoError(t, err)
		got, err := b.repo.ListByJob(b.ctx, job, last.ID, 0)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	// The listing is a range scan of the primary key (job_id, ts, id),
	// already in order: no sort, whatever the table's size.
	t.Run("UsesPrimaryKey", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		dsn := pgtest.NewDatabase(t)
		cfg, err := pgxpool.ParseConfig(dsn)
		require.NoError(t, err)
		tr := &tracer{}
		cfg.ConnConfig.Tracer = tr
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		job := newJob(t, pool)
		first, err := events.New(pool).Append(ctx, job, "log", nil)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, "set enable_seqscan = off; set enable_bitmapscan = off")
		require.NoError(t, err)

		for _, after := range []int64{0, first.ID} {
			tr.reset()
			_, err = events.New(pool).ListByJob(ctx, job, after, 10)
			require.NoError(t, err)
			sql, args := tr.find("ListJobEvents")
			require.NotEmpty(t, sql)
			var plan string
			rows, err := pool.Query(ctx, "explain "+sql, args...)
			require.NoError(t, err)
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan += line + "\n"
			}
			require.NoError(t, rows.Err())
			require.Contains(t, plan, "job_events_pkey", plan)
			require.NotContains(t, plan, "Sort", plan)
		}
	})
}

type tracer struct {
	mu      sync.Mutex
	queries []pgx.TraceQueryStartData
}

func (tr *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = append(tr.queries, d)
	return ctx
}

func (tr *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr *tracer) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = nil
}

func (tr *tracer) find(name string) (string, []any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, q := range tr.queries {
		if strings.Contains(q.SQL, "-- name: "+name+" ") {
			return q.SQL, q.Args
		}
	}
	return "", nil
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	call := func(ctx context.Context, repo *events.Repo) map[string]error {
		id := uuid.New()
		errs := map[string]error{}
		_, errs["Append"] = repo.Append(ctx, id, "log", nil)
		_, errs["AppendBatch"] = repo.AppendBatch(ctx, []events.NewEvent{{JobID: id, Type: "log"}})
		_, errs["ListByJob"] = repo.ListByJob(ctx, id, 0, 0)
		_, errs["ListByJobAfter"] = repo.ListByJob(ctx, id, 5, 0)
		return errs
	}

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for name, err := range call(ctx, events.New(pgtest.SharedPool(t))) {
			t.Run(name, func(t *testing.T) { apperrtest.RequireCode(t, err, apperr.Unavailable) })
		}
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		pool, err := pgxpool.New(context.Background(), "postgres://clipper@127.0.0.1:1/clipper?connect_timeout=2")
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		for name, err := range call(context.Background(), events.New(pool)) {
			t.Run(name, func(t *testing.T) { apperrtest.RequireCode(t, err, apperr.Unavailable) })
		}
	})
}
