package watches_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/watches"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// hangGuard bounds every wait: a stuck test fails, it does not hang.
const hangGuard = 30 * time.Second

type bundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	listen *pgx.Conn
	events *events.Repo
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	listen, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { listen.Close(context.Background()) })
	_, err = listen.Exec(ctx, "listen clipper_job_events")
	require.NoError(t, err)
	return &bundle{ctx: ctx, pool: pool, listen: listen, events: events.New(pool)}
}

func (b *bundle) newJob(t *testing.T) uuid.UUID {
	t.Helper()
	j, _, err := jobs.New(b.pool).Create(b.ctx, jobs.CreateParams{SourceURL: "https://youtu.be/watched"})
	require.NoError(t, err)
	return j.ID
}

func (b *bundle) appendEvent(t *testing.T, job uuid.UUID) int64 {
	t.Helper()
	ev, err := b.events.Append(b.ctx, job, "log", json.RawMessage(`{"line":"x"}`))
	require.NoError(t, err)
	return ev.ID
}

// next returns the job id of the next notification, or "marker" for the
// marker that notified sends: NOTIFYs arrive in commit order, so a change
// that was not notified is proven by the marker arriving first.
func (b *bundle) next(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, hangGuard)
	defer cancel()
	n, err := b.listen.WaitForNotification(ctx)
	require.NoError(t, err)
	var p struct {
		JobID  string `json:"job_id"`
		Marker bool   `json:"marker"`
	}
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &p))
	if p.Marker {
		return "marker"
	}
	return p.JobID
}

func (b *bundle) marker(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `select pg_notify('clipper_job_events', '{"marker":true}')`)
	require.NoError(t, err)
}

func watchCount(t *testing.T, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "select count(*) from clipper_internal.job_watches where "+where, args...).Scan(&n))
	return n
}

// Only watched jobs are notified, and only while watched.
func TestOnlyWatchedJobsAreNotified(t *testing.T) {
	t.Parallel()
	b := setup(t)
	watched, other := b.newJob(t), b.newJob(t)

	b.appendEvent(t, watched)
	b.marker(t)
	require.Equal(t, "marker", b.next(t), "nobody streams the job: no NOTIFY")

	r := watches.New(b.pool, watches.Options{})
	release, err := r.Watch(b.ctx, watched)
	require.NoError(t, err)
	b.appendEvent(t, other)
	b.appendEvent(t, watched)
	require.Equal(t, watched.String(), b.next(t), "the watched job is notified, the other one is not")

	// Status changes by any writer go through the same trigger.
	claimed, err := jobs.New(b.pool).Claim(b.ctx, "w1", 2)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	require.Equal(t, watched.String(), b.next(t))
	b.marker(t)
	require.Equal(t, "marker", b.next(t), "one notification per watched job and statement")

	// A closed stream's watch goes at the next renewal.
	release()
	require.NoError(t, r.Renew(b.ctx))
	require.Equal(t, 0, watchCount(t, b.pool, "true"))
	b.appendEvent(t, watched)
	b.marker(t)
	require.Equal(t, "marker", b.next(t), "an unwatched job is not notified")
}

// Two streams of one job: the watch stays until both closed.
func TestWatchCountsStreams(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.newJob(t)
	r := watches.New(b.pool, watches.Options{})
	first, err := r.Watch(b.ctx, job)
	require.NoError(t, err)
	second, err := r.Watch(b.ctx, job)
	require.NoError(t, err)
	first()
	first() // release is idempotent
	require.NoError(t, r.Renew(b.ctx))
	require.Equal(t, []uuid.UUID{job}, r.Watching())
	require.Equal(t, 1, watchCount(t, b.pool, "job_id = $1 and daemon_id = $2", job, r.ID()))
	second()
	require.NoError(t, r.Renew(b.ctx))
	require.Empty(t, r.Watching())
	require.Equal(t, 0, watchCount(t, b.pool, "true"))
}

// A writer under way when a stream opens: Watch waits for it to commit,
// so the stream's first read (after Watch) has its event, and the next
// write is notified. Nothing falls between the two.
func TestWatchWaitsForWritersUnderWay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.newJob(t)
	repo := jobs.New(b.pool)
	_, err := repo.Claim(b.ctx, "w1", 1)
	require.NoError(t, err)

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	_, err = repo.WithDB(tx).Progress(b.ctx, job, "w1", 40)
	require.NoError(t, err)

	r := watches.New(b.pool, watches.Options{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Watch(b.ctx, job)
		done <- err
	}()
	// The watch waits on the job's row lock, which the writer holds.
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, b.pool.QueryRow(b.ctx, `select exists (select 1 from pg_stat_activity
			where wait_event_type = 'Lock' and query like '%clipper_internal.job_watches%')`).Scan(&waiting))
		return waiting
	}, hangGuard, 10*time.Millisecond, "Watch waits for the writer under way")
	select {
	case err := <-done:
		t.Fatalf("Watch returned while a writer of the job was under way: %v", err)
	default:
	}
	require.NoError(t, tx.Commit(b.ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(hangGuard):
		t.Fatal("Watch did not return after the writer committed")
	}

	// The first read sees the writer's event; it was not notified (its
	// trigger ran before the watch existed), and need not be.
	evs, err := b.events.ListByJob(b.ctx, job, 0, 0)
	require.NoError(t, err)
	require.Equal(t, "progress", evs[len(evs)-1].Type)
	b.marker(t)
	require.Equal(t, "marker", b.next(t))
	// Every later write is notified.
	_, err = repo.Progress(b.ctx, job, "w1", 60)
	require.NoError(t, err)
	require.Equal(t, job.String(), b.next(t))
}

// A daemon that died leaves watches behind: they stop counting when their
// lease runs out, and any live daemon's renewal deletes them. A daemon
// that stops cleanly deletes its own at once.
func TestDeadDaemonsWatchesExpire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.newJob(t)
	dead := uuid.New()
	_, err := b.pool.Exec(b.ctx, `insert into clipper_internal.job_watches (job_id, daemon_id, expires_at)
		values ($1, $2, now() - interval '1 second')`, job, dead)
	require.NoError(t, err)
	b.appendEvent(t, job)
	b.marker(t)
	require.Equal(t, "marker", b.next(t), "an expired watch is not a watch")

	live := watches.New(b.pool, watches.Options{})
	require.NoError(t, live.Renew(b.ctx))
	require.Equal(t, 0, watchCount(t, b.pool, "daemon_id = $1", dead), "renewal sweeps expired watches")

	// Run drops this process's watches when it stops.
	ctx, stop := context.WithCancel(b.ctx)
	ran := make(chan struct{})
	go func() { live.Run(ctx); close(ran) }()
	_, err = live.Watch(b.ctx, job)
	require.NoError(t, err)
	require.Equal(t, 1, watchCount(t, b.pool, "daemon_id = $1", live.ID()))
	stop()
	select {
	case <-ran:
	case <-time.After(hangGuard):
		t.Fatal("Run did not stop")
	}
	require.Equal(t, 0, watchCount(t, b.pool, "daemon_id = $1", live.ID()))
}

// Watching a job that does not exist (deleted meanwhile) writes nothing
// and is no error.
func TestWatchMissingJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := watches.New(b.pool, watches.Options{})
	release, err := r.Watch(b.ctx, uuid.New())
	require.NoError(t, err)
	release()
	require.Equal(t, 0, watchCount(t, b.pool, "true"))
}

// A renewal never drops the watch of a stream that opened while it ran,
// and it leases the open streams' watches anew.
func TestRenewKeepsOpenWatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.newJob(t)
	r := watches.New(b.pool, watches.Options{Lease: time.Hour})
	_, err := r.Watch(b.ctx, job)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, "update clipper_internal.job_watches set expires_at = now() + interval '1 second'")
	require.NoError(t, err)
	require.NoError(t, r.Renew(b.ctx))
	require.Equal(t, 1, watchCount(t, b.pool, "job_id = $1 and expires_at > now() + interval '59 minutes'", job))
}
