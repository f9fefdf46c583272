package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/retention"
	"github.com/clipper/clipper/webhooks"
)

// uploadWithWebhook starts a daemon, installs the sources webhook with a
// stand-in pg_net that keeps the calls instead of sending them, and
// returns a function that uploads an object as Storage does (a row in
// storage.objects) and returns its id and the call it made.
func uploadWithWebhook(t *testing.T) (*pgxpool.Pool, func(name string) (uuid.UUID, stubCall)) {
	t.Helper()
	ctx := context.Background()
	cfg := daemontest.Config(t)
	cfg.WebhookSecret = "reconcile-" + randomSecret(t)
	d := daemontest.Start(t, cfg)
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, stubHTTPRequest)
	require.NoError(t, err)
	out, err := runScript(t, cfg.DatabaseURL, "install.sql",
		map[string]string{"webhook_url": d.URL + webhooks.Route, "webhook_secret": cfg.WebhookSecret})
	require.NoError(t, err, out)
	owner := uuid.New()
	_, err = pool.Exec(ctx, `insert into auth.users (id) values ($1)`, owner)
	require.NoError(t, err)

	return pool, func(name string) (uuid.UUID, stubCall) {
		t.Helper()
		var id uuid.UUID
		require.NoError(t, pool.QueryRow(ctx, `insert into storage.objects (bucket_id, name, owner, owner_id, user_metadata)
			values ('sources', $1, $2, $3, '{"clip": {"start": 7}}') returning id`,
			owner.String()+"/"+name, owner, owner.String()).Scan(&id))
		calls := takeCalls(t, pool)
		require.Len(t, calls, 1)
		return id, calls[0]
	}
}

func age(t *testing.T, pool *pgxpool.Pool, object uuid.UUID, d time.Duration) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `update storage.objects set created_at = now() - make_interval(secs => $2) where id = $1`,
		object, d.Seconds())
	require.NoError(t, err)
}

type uploadJob struct {
	ID             uuid.UUID
	Owner          uuid.NullUUID
	Params         json.RawMessage
	IdempotencyKey *string
}

func jobsOf(t *testing.T, pool *pgxpool.Pool, object uuid.UUID) []uploadJob {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select j.id, j.owner_id, j.params, j.idempotency_key
		from jobs j join storage.objects o on o.name = j.source_object where o.id = $1 and j.source_type = 'upload'`, object)
	require.NoError(t, err)
	defer rows.Close()
	var out []uploadJob
	for rows.Next() {
		var j uploadJob
		require.NoError(t, rows.Scan(&j.ID, &j.Owner, &j.Params, &j.IdempotencyKey))
		out = append(out, j)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestReconcileMakesTheJobOfALostDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, upload := uploadWithWebhook(t)
	object, dropped := upload("lost.mp4") // pg_net lost this delivery
	sched := &retention.Scheduler{Pool: pool, Retention: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reconcile: &webhooks.ReconcileOptions{Create: true}}

	// Just uploaded: its delivery may be in flight, so it is left alone.
	round, _, err := sched.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, round.Reconciled.Found)
	require.Empty(t, jobsOf(t, pool, object))

	// Past the window, the daemon's round makes the job the webhook would have.
	age(t, pool, object, 5*time.Minute)
	round, _, err = sched.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, round.Reconciled.Found)
	require.Equal(t, map[webhooks.Action]int{webhooks.ActionJobCreated: 1}, round.Reconciled.Actions)
	got := jobsOf(t, pool, object)
	require.Len(t, got, 1)
	require.True(t, got[0].Owner.Valid, "owned by the uploader, as by the webhook")
	require.JSONEq(t, `{"start": 7}`, string(got[0].Params))
	require.Equal(t, "storage:"+object.String(), *got[0].IdempotencyKey)
	var key, action string
	require.NoError(t, pool.QueryRow(ctx, `select delivery_key, action from clipper_internal.webhook_deliveries
		where record_id = $1`, object.String()).Scan(&key, &action))
	require.Equal(t, "reconcile:"+object.String(), key)
	require.Equal(t, "job_created", action)

	// The delivery turns up after all: the same job.
	res := deliverCall(t, dropped)
	require.Equal(t, "job_exists", res.Data.Action)
	require.Equal(t, got[0].ID, *res.Data.JobID)
	require.Len(t, jobsOf(t, pool, object), 1)

	// Nothing left to reconcile.
	round, _, err = sched.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, round.Reconciled.Found)

	// Too old for the window (e.g. uploads from before the webhooks were
	// installed): not made into jobs.
	old, _ := upload("ancient.mp4")
	age(t, pool, old, 48*time.Hour)
	round, _, err = sched.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, round.Reconciled.Found)
}

func TestReconcileRacingTheDeliveryMakesOneJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, upload := uploadWithWebhook(t)
	for i := range 5 {
		object, call := upload("race-" + string(rune('a'+i)) + ".mp4")
		var wg sync.WaitGroup
		var rec webhooks.ReconcileResult
		var err error
		// A window that takes the upload at once, so the two run together.
		wg.Go(func() {
			rec, err = webhooks.Reconcile(ctx, pool, webhooks.ReconcileOptions{Create: true, MinAge: time.Nanosecond})
		})
		delivered := deliverCall(t, call)
		wg.Wait()
		require.NoError(t, err)
		jobs := jobsOf(t, pool, object)
		require.Len(t, jobs, 1, "one job, whoever came first (reconcile: %+v, delivery: %+v)", rec, delivered.Data)
		require.Equal(t, jobs[0].ID, *delivered.Data.JobID)
	}
}

func TestReconcileOnlyReportsWithoutWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, upload := uploadWithWebhook(t)
	object, _ := upload("report.mp4")
	age(t, pool, object, 10*time.Minute)
	_, err := pool.Exec(ctx, `insert into storage.objects (bucket_id, name, created_at)
		values ('sources', 'folder/.emptyFolderPlaceholder', now() - interval '10 minutes')`)
	require.NoError(t, err)

	res, err := webhooks.Reconcile(ctx, pool, webhooks.ReconcileOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, res.Found, "folder markers are not uploads")
	require.Len(t, res.Names, 1)
	require.Contains(t, res.Names[0], "/report.mp4")
	require.Empty(t, jobsOf(t, pool, object))
}
