package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// gcHang guards waits that must end; never an assertion about speed.
const gcHang = 10 * time.Second

type gcBundle struct {
	ctx     context.Context
	pool    *pgxpool.Pool
	gc      *jobs.GroupCommit
	batches atomic.Int32 // transactions that reached their commit
	// hold, if set, holds each batch before its commit until it is closed;
	// held gets the batch's backend pid.
	hold chan struct{}
	held chan int32
}

// setupGroupCommit gives a test its own database and a group commit whose
// batches start only on Flush or Close, so the test decides what shares a
// batch.
func setupGroupCommit(t *testing.T, hold bool) *gcBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	b := &gcBundle{ctx: context.Background(), pool: pool}
	if hold {
		b.hold, b.held = make(chan struct{}), make(chan int32, 10)
	}
	b.gc = jobs.NewGroupCommit(pool, jobs.GroupCommitOptions{
		Options: batcher.Options{Manual: true},
		BeforeCommit: func(ctx context.Context, tx pgx.Tx) error {
			b.batches.Add(1)
			if b.hold == nil {
				return nil
			}
			var pid int32
			if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
				return err
			}
			b.held <- pid
			<-b.hold
			return nil
		},
	})
	t.Cleanup(b.gc.Close)
	return b
}

// setupPlainGroupCommit is setupGroupCommit with no BeforeCommit hook, as
// the daemon runs it: a batch of unkeyed creates needs no explicit
// transaction then.
func setupPlainGroupCommit(t *testing.T) *gcBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	b := &gcBundle{ctx: context.Background(), pool: pool}
	b.gc = jobs.NewGroupCommit(pool, jobs.GroupCommitOptions{Options: batcher.Options{Manual: true}})
	t.Cleanup(b.gc.Close)
	return b
}

type createOutcome struct {
	job     jobs.Job
	created bool
	err     error
}

// submit starts a create and waits until it is pending, so that creates
// join the batch in the order they are submitted.
func (b *gcBundle) submit(t *testing.T, ctx context.Context, p jobs.CreateParams) <-chan createOutcome {
	t.Helper()
	n := b.gc.Pending()
	out := make(chan createOutcome, 1)
	go func() {
		j, created, err := b.gc.Create(ctx, p)
		out <- createOutcome{j, created, err}
	}()
	require.Eventually(t, func() bool { return b.gc.Pending() == n+1 }, gcHang, time.Millisecond)
	return out
}

func wait(t *testing.T, c <-chan createOutcome) createOutcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(gcHang):
		t.Fatal("create did not return")
		return createOutcome{}
	}
}

func job(url string) jobs.CreateParams {
	return jobs.CreateParams{SourceURL: url, Params: json.RawMessage(`{"start":1,"end":5}`)}
}

// committed reports whether the job exists for a reader outside the batch.
func committed(t *testing.T, b *gcBundle, id uuid.UUID) bool {
	t.Helper()
	var ok bool
	require.NoError(t, b.pool.QueryRow(b.ctx, "select exists (select 1 from jobs where id = $1)", id).Scan(&ok))
	return ok
}

func countByURL(t *testing.T, b *gcBundle, url string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, "select count(*) from jobs where source_url = $1", url).Scan(&n))
	return n
}

func TestGroupCommitPerCallerOutcomes(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, false)
	owner := uuid.NullUUID{UUID: newUser(t, b.pool), Valid: true}
	keyed := func(url, key string) jobs.CreateParams {
		p := job(url)
		p.OwnerID, p.IdempotencyKey = owner, key
		return p
	}

	first := b.submit(t, b.ctx, keyed(videoURL+"&a", "k1"))
	// Passes validation but breaks a foreign key in the database: only
	// this create fails, and the batch runs again without it.
	ghost := job(videoURL + "&ghost")
	ghost.APIKeyID = uuid.NullUUID{UUID: uuid.New(), Valid: true}
	broken := b.submit(t, b.ctx, ghost)
	replay := b.submit(t, b.ctx, keyed(videoURL+"&a", "k1"))
	// The same key with another body returns the first job, not
	// created, exactly as Repo.Create does (the HTTP API then answers
	// 409 for it).
	otherBody := b.submit(t, b.ctx, keyed(videoURL+"&other", "k1"))
	plain := b.submit(t, b.ctx, job(videoURL+"&plain"))

	// Invalid parameters fail at once and never join the batch.
	_, _, err := b.gc.Create(b.ctx, jobs.CreateParams{})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	require.Equal(t, 5, b.gc.Pending())

	b.gc.Flush()
	f, br, r, o, p := wait(t, first), wait(t, broken), wait(t, replay), wait(t, otherBody), wait(t, plain)

	require.NoError(t, f.err)
	require.True(t, f.created)
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(br.err))
	require.NoError(t, r.err)
	require.False(t, r.created)
	require.Equal(t, f.job, r.job, "a replay in the same batch returns the first job")
	require.NoError(t, o.err)
	require.False(t, o.created)
	require.Equal(t, f.job.ID, o.job.ID)
	require.NoError(t, p.err)
	require.True(t, p.created)

	require.True(t, committed(t, b, f.job.ID))
	require.True(t, committed(t, b, p.job.ID))
	require.Zero(t, countByURL(t, b, videoURL+"&ghost"))
	require.Zero(t, countByURL(t, b, videoURL+"&other"))
	require.EqualValues(t, 1, b.batches.Load(), "one commit for the batch")
	var xids int
	require.NoError(t, b.pool.QueryRow(b.ctx, "select count(distinct xmin::text) from jobs where id = any($1)",
		[]uuid.UUID{f.job.ID, p.job.ID}).Scan(&xids))
	require.Equal(t, 1, xids, "the batch's jobs were written by one transaction")
	require.Equal(t, []statusEvent{{To: "queued"}}, statusEvents(t, b.pool, f.job.ID))
}

func TestGroupCommitReplayOfAnEarlierCommit(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, false)
	owner := uuid.NullUUID{UUID: newUser(t, b.pool), Valid: true}
	p := job(videoURL)
	p.OwnerID, p.IdempotencyKey = owner, "once"
	j, created, err := jobs.New(b.pool).Create(b.ctx, p)
	require.NoError(t, err)
	require.True(t, created)

	c1, c2 := b.submit(t, b.ctx, p), b.submit(t, b.ctx, p)
	b.gc.Flush()
	for _, c := range []<-chan createOutcome{c1, c2} {
		o := wait(t, c)
		require.NoError(t, o.err)
		require.False(t, o.created)
		require.Equal(t, j.ID, o.job.ID)
	}
	require.Equal(t, 1, countByURL(t, b, videoURL))
}

func TestGroupCommitCanceledCaller(t *testing.T) {
	t.Parallel()

	t.Run("WhilePending", func(t *testing.T) {
		t.Parallel()
		b := setupGroupCommit(t, false)
		a := b.submit(t, b.ctx, job(videoURL+"&a"))
		ctx, cancel := context.WithCancel(b.ctx)
		gone := b.submit(t, ctx, job(videoURL+"&gone"))
		c := b.submit(t, b.ctx, job(videoURL+"&c"))
		cancel()
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(wait(t, gone).err))
		require.Equal(t, 2, b.gc.Pending())
		b.gc.Flush()
		for _, ch := range []<-chan createOutcome{a, c} {
			o := wait(t, ch)
			require.NoError(t, o.err)
			require.True(t, committed(t, b, o.job.ID))
		}
		require.Zero(t, countByURL(t, b, videoURL+"&gone"), "a caller that left before its batch wrote nothing")
	})

	t.Run("WhileCommitting", func(t *testing.T) {
		t.Parallel()
		b := setupGroupCommit(t, true)
		a := b.submit(t, b.ctx, job(videoURL+"&a"))
		ctx, cancel := context.WithCancel(b.ctx)
		late := b.submit(t, ctx, job(videoURL+"&late"))
		b.gc.Flush()
		<-b.held
		cancel()
		// The canceled caller gets its error at once, never a job: its
		// batch has not committed yet.
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(wait(t, late).err))
		close(b.hold)
		o := wait(t, a)
		require.NoError(t, o.err, "the others of the batch still commit")
		require.True(t, committed(t, b, o.job.ID))
	})
}

// A batch whose connection dies before its commit (the daemon's backend
// terminated, as in a crash) acknowledges nothing: every caller gets an
// error and none of its jobs exist; what was acknowledged before stays.
func TestGroupCommitConnectionLostMidBatch(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, true)
	before := b.submit(t, b.ctx, job(videoURL+"&before"))
	b.gc.Flush()
	<-b.held
	b.hold <- struct{}{}
	acked := wait(t, before)
	require.NoError(t, acked.err)

	a := b.submit(t, b.ctx, job(videoURL+"&a"))
	c := b.submit(t, b.ctx, job(videoURL+"&c"))
	b.gc.Flush()
	pid := <-b.held
	var killed bool
	require.NoError(t, b.pool.QueryRow(b.ctx, "select pg_terminate_backend($1)", pid).Scan(&killed))
	require.True(t, killed)
	close(b.hold)

	for _, ch := range []<-chan createOutcome{a, c} {
		o := wait(t, ch)
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(o.err))
	}
	require.Zero(t, countByURL(t, b, videoURL+"&a"))
	require.Zero(t, countByURL(t, b, videoURL+"&c"))
	require.True(t, committed(t, b, acked.job.ID), "an acknowledged job survives")

	// The group commit goes on with a new connection.
	again := b.submit(t, b.ctx, job(videoURL+"&again"))
	b.gc.Flush()
	<-b.held
	o := wait(t, again)
	require.NoError(t, o.err)
	require.True(t, committed(t, b, o.job.ID))
}

func TestGroupCommitCloseCommitsPending(t *testing.T) {
	t.Parallel()
	b := setupGroupCommit(t, false)
	var pending []<-chan createOutcome
	for _, s := range []string{"&1", "&2", "&3"} {
		pending = append(pending, b.submit(t, b.ctx, job(videoURL+s)))
	}
	b.gc.Close()
	for _, ch := range pending {
		o := wait(t, ch)
		require.NoError(t, o.err)
		require.True(t, committed(t, b, o.job.ID))
	}
	_, _, err := b.gc.Create(b.ctx, job(videoURL+"&after"))
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
}

// A batch's unkeyed creates go in one multi-row insert, its own
// transaction (or within the batch's transaction when a BeforeCommit hook
// needs one); each caller still gets exactly its own job, with its own
// values, as Repo.Create would have written it, and a create the database
// refuses fails alone.
func TestGroupCommitManyUnkeyedCreates(t *testing.T) {
	t.Parallel()
	for _, hooked := range []bool{false, true} {
		t.Run(fmt.Sprintf("hook=%v", hooked), func(t *testing.T) {
			t.Parallel()
			var b *gcBundle
			if hooked {
				b = setupGroupCommit(t, false)
			} else {
				b = setupPlainGroupCommit(t)
			}
			manyUnkeyedCreates(t, b)
			if hooked {
				require.EqualValues(t, 1, b.batches.Load(), "one commit for the batch")
			}
		})
	}
}

func manyUnkeyedCreates(t *testing.T, b *gcBundle) {
	owner := uuid.NullUUID{UUID: newUser(t, b.pool), Valid: true}
	runAt := time.Now().Add(time.Hour).Round(time.Microsecond)
	var outs []<-chan createOutcome
	var want []jobs.CreateParams
	var ghost <-chan createOutcome
	for i := range 12 {
		if i == 5 {
			// Passes validation but breaks a foreign key in the
			// database: only this create fails.
			p := job(videoURL + "&ghost")
			p.APIKeyID = uuid.NullUUID{UUID: uuid.New(), Valid: true}
			ghost = b.submit(t, b.ctx, p)
		}
		p := job(fmt.Sprintf("%s&many=%d", videoURL, i))
		p.Params = json.RawMessage(fmt.Sprintf(`{"start":%d}`, i))
		switch i % 3 {
		case 1:
			p.OwnerID, p.MaxAttempts = owner, 7
		case 2:
			at := runAt.Add(time.Duration(i) * time.Second)
			p.RunAt = &at
		}
		want = append(want, p)
		outs = append(outs, b.submit(t, b.ctx, p))
	}
	b.gc.Flush()
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(wait(t, ghost).err))
	require.Zero(t, countByURL(t, b, videoURL+"&ghost"))
	ids := map[uuid.UUID]bool{}
	var created []uuid.UUID
	for i, c := range outs {
		o := wait(t, c)
		require.NoError(t, o.err)
		require.True(t, o.created)
		require.False(t, ids[o.job.ID], "every caller gets a job of its own")
		ids[o.job.ID] = true
		created = append(created, o.job.ID)
		// What the caller got is what the database holds.
		stored, err := jobs.New(b.pool).Get(b.ctx, o.job.ID)
		require.NoError(t, err)
		require.Equal(t, stored, o.job)
		require.Equal(t, want[i].SourceURL, *o.job.SourceURL)
		require.JSONEq(t, string(want[i].Params), string(o.job.Params))
		require.Equal(t, want[i].OwnerID, o.job.OwnerID)
		if want[i].MaxAttempts != 0 {
			require.Equal(t, want[i].MaxAttempts, o.job.MaxAttempts)
		}
		if want[i].RunAt != nil {
			require.True(t, want[i].RunAt.Equal(o.job.RunAt))
		}
		require.Equal(t, []statusEvent{{To: "queued"}}, statusEvents(t, b.pool, o.job.ID))
	}
	var xids int
	require.NoError(t, b.pool.QueryRow(b.ctx, "select count(distinct xmin::text) from jobs where id = any($1)", created).Scan(&xids))
	require.Equal(t, 1, xids, "the batch's jobs were written by one transaction")
}
