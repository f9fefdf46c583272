package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/pgtest"
)

// gcHang guards waits that must end; never an assertion about speed.
const gcHang = 10 * time.Second

type gcBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	gc   *events.GroupCommit
	hold chan struct{} // if set, each batch waits on it before its commit
	held chan int32    // gets each held batch's backend pid
}

// setupGroupCommit gives a test its own database and a group commit whose
// batches start only on Flush or Close.
func setupGroupCommit(t *testing.T, hold bool) *gcBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	b := &gcBundle{ctx: context.Background(), pool: pool}
	opts := events.GroupCommitOptions{Options: batcher.Options{Manual: true}}
	if hold {
		b.hold, b.held = make(chan struct{}), make(chan int32, 10)
		opts.BeforeCommit = func(ctx context.Context, tx pgx.Tx) error {
			var pid int32
			if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
				return err
			}
			b.held <- pid
			<-b.hold
			return nil
		}
	}
	b.gc = events.NewGroupCommit(pool, opts)
	t.Cleanup(b.gc.Close)
	return b
}

type appendOutcome struct {
	ev  events.Event
	err error
}

// submit starts an append and waits until it is pending, so appends join
// the batch in the order they are submitted.
func (b *gcBundle) submit(t *testing.T, job uuid.UUID, typ string) <-chan appendOutcome {
	t.Helper()
	n := b.gc.Pending()
	out := make(chan appendOutcome, 1)
	go func() {
		ev, err := b.gc.Append(b.ctx, job, typ, json.RawMessage(`{"n": 1}`))
		out <- appendOutcome{ev, err}
	}()
	require.Eventually(t, func() bool { return b.gc.Pending() == n+1 }, gcHang, time.Millisecond)
	return out
}

func waitAppend(t *testing.T, c <-chan appendOutcome) appendOutcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(gcHang):
		t.Fatal("append did not return")
		return appendOutcome{}
	}
}

func TestGroupCommitAppends(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, false)
	jobA, jobB := newJob(t, b.pool), newJob(t, b.pool)
	// A rule in the database that refuses one event (as a trigger or
	// policy could): only that append fails, the batch runs again
	// without it.
	_, err := b.pool.Exec(b.ctx, `
		create function refuse_boom() returns trigger language plpgsql as $$
		begin
		  if new.type = 'boom' then raise exception 'refused' using errcode = 'P0001'; end if;
		  return new;
		end $$;
		create trigger refuse_boom before insert on job_events for each row execute function refuse_boom();`)
	require.NoError(t, err)

	a1 := b.submit(t, jobA, "worker.one")
	missing := b.submit(t, uuid.New(), "worker.lost")
	boom := b.submit(t, jobB, "boom")
	bee := b.submit(t, jobB, "worker.bee")
	a2 := b.submit(t, jobA, "worker.two")

	_, err = b.gc.Append(b.ctx, jobA, "status", nil)
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	require.Equal(t, 5, b.gc.Pending(), "an invalid event never joins a batch")

	b.gc.Flush()
	o1, om, ob, obee, o2 := waitAppend(t, a1), waitAppend(t, missing), waitAppend(t, boom), waitAppend(t, bee), waitAppend(t, a2)
	require.NoError(t, o1.err)
	require.NoError(t, o2.err)
	require.NoError(t, obee.err)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(om.err))
	require.Error(t, ob.err)
	require.Less(t, o1.ev.ID, o2.ev.ID, "a job's events keep their arrival order")

	repo := events.New(b.pool)
	list, err := repo.ListByJob(b.ctx, jobA, 0, 0)
	require.NoError(t, err)
	var types []string
	for _, e := range list {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"status", "worker.one", "worker.two"}, types)
	list, err = repo.ListByJob(b.ctx, jobB, 0, 0)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, obee.ev, list[1])
}

func TestGroupCommitAppendConnectionLost(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, true)
	job := newJob(t, b.pool)
	before := countEvents(t, b.pool)
	a, c := b.submit(t, job, "worker.a"), b.submit(t, job, "worker.c")
	b.gc.Flush()
	pid := <-b.held
	_, err := b.pool.Exec(b.ctx, "select pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	close(b.hold)
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(waitAppend(t, a).err))
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(waitAppend(t, c).err))
	require.Equal(t, before, countEvents(t, b.pool), "nothing of the lost batch was written")

	again := b.submit(t, job, "worker.again")
	b.gc.Close()
	<-b.held
	o := waitAppend(t, again)
	require.NoError(t, o.err, "Close commits what is pending")
	require.Equal(t, before+1, countEvents(t, b.pool))
}

// A batch's appends go in one multi-row insert; each caller still gets
// exactly its own event, as stored, and each job's events keep their
// arrival order.
func TestGroupCommitManyAppends(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, false)
	jobs := []uuid.UUID{newJob(t, b.pool), newJob(t, b.pool), newJob(t, b.pool)}
	var outs []<-chan appendOutcome
	for i := range 12 {
		outs = append(outs, b.submit(t, jobs[(i*7)%3], fmt.Sprintf("worker.step%d", i)))
	}
	b.gc.Flush()
	got := map[uuid.UUID][]events.Event{}
	for i, c := range outs {
		o := waitAppend(t, c)
		require.NoError(t, o.err)
		require.Equal(t, fmt.Sprintf("worker.step%d", i), o.ev.Type, "append %d got its own event", i)
		require.Equal(t, jobs[(i*7)%3], o.ev.JobID)
		got[o.ev.JobID] = append(got[o.ev.JobID], o.ev)
	}
	for _, job := range jobs {
		list, err := events.New(b.pool).ListByJob(b.ctx, job, 0, 0)
		require.NoError(t, err)
		require.Equal(t, got[job], list[1:], "what the callers got is the job's stream, in arrival order")
	}
}
