package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/metrics"
	"github.com/clipper/clipper/internal/storage"
	"github.com/clipper/clipper/webhooks"
)

// lockKey is the session advisory lock that elects the one replica that
// cleans up at a time.
const lockKey int64 = 0x636c6970_72657400 // "clipret\0"

// Scheduler runs cleanup and the stale-heartbeat reaper on a schedule, on
// one daemon replica at a time. A round reaps stale jobs, deletes expired
// jobs, deletes the objects that deleted jobs left in the outbox, prunes
// old webhook records, and reconciles uploads whose webhook never arrived.
type Scheduler struct {
	Pool             *pgxpool.Pool
	Interval         time.Duration // 0 disables the schedule
	BatchSize        int
	MaxBatches       int           // per round; 0 means until nothing expired is left
	HeartbeatTimeout time.Duration // processing jobs quiet for longer are reaped; 0 skips the reaper
	Retention        time.Duration // expires_at of jobs the reaper fails
	Log              *slog.Logger
	// Storage deletes the objects of deleted jobs; nil leaves them queued
	// in clipper_internal.object_deletions.
	Storage storage.Deleter
	// Objects bounds the outbox drain.
	Objects DrainOptions
	// Reconcile, if set, runs webhooks.Reconcile each round.
	Reconcile *webhooks.ReconcileOptions
	// OnBatch, if set, is called after each committed cleanup batch.
	OnBatch func(Result)
	// OnRound, if set, is called after each round this replica ran.
	OnRound func(Round)
}

// Round is what one scheduled run did.
type Round struct {
	Cleanup    Result
	Reaped     int
	Objects    Objects
	Pruned     Pruned
	Reconciled webhooks.ReconcileResult
}

// Run runs a round every Interval until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	if s.Interval <= 0 {
		return
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		round, ran, err := s.RunOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.Log.Warn("retention round failed", "error", err)
		case ran && (round.Cleanup.Jobs > 0 || round.Reaped > 0 || round.Objects.Total() > 0 ||
			round.Pruned != (Pruned{}) || round.Reconciled.Found > 0):
			s.Log.Info("retention round", "deleted_jobs", round.Cleanup.Jobs,
				"deleted_events", round.Cleanup.Events, "reaped_jobs", round.Reaped,
				"deleted_objects", round.Objects.Total(), "pending_objects", round.Objects.Pending,
				"pruned_deliveries", round.Pruned.Deliveries, "pruned_upload_jobs", round.Pruned.UploadJobs,
				"unreconciled_uploads", round.Reconciled.Found, "reconciled", round.Reconciled.Actions)
		}
		if ran && round.Objects.Failed > 0 {
			s.Log.Warn("object deletes failed; they stay queued and are retried with backoff",
				"failed", round.Objects.Failed, "pending", round.Objects.Pending, "error", round.Objects.LastError)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs one round if no other replica is running one; ran says
// whether this replica did. Cleanup commits batch by batch, so a canceled
// round keeps what it finished.
func (s *Scheduler) RunOnce(ctx context.Context) (round Round, ran bool, err error) {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return round, false, apperr.FromDB(err, "database")
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "select pg_try_advisory_lock($1)", lockKey).Scan(&ran); err != nil || !ran {
		return round, false, apperr.FromDB(err, "retention lock")
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "select pg_advisory_unlock($1)", lockKey); uerr != nil {
			// Closing the session releases the lock for certain.
			_ = conn.Conn().Close(uctx)
		}
	}()

	if s.HeartbeatTimeout > 0 {
		reaped, err := jobs.New(conn.Conn()).RequeueStale(ctx, s.HeartbeatTimeout, jobs.MaxClaim, s.Retention)
		round.Reaped = len(reaped)
		if err != nil {
			return round, true, err
		}
	}
	if s.OnRound != nil {
		defer func() { s.OnRound(round) }()
	}
	repo := New(conn.Conn())
	round.Cleanup, err = repo.CleanupExpired(ctx, Options{
		BatchSize: s.BatchSize, MaxBatches: s.MaxBatches, OnBatch: s.OnBatch})
	if err != nil {
		return round, true, err
	}
	if s.Storage != nil {
		if round.Objects, err = repo.DrainObjects(ctx, s.Storage, s.Objects); err != nil {
			return round, true, err
		}
	}
	if round.Pruned, err = repo.PruneWebhookRecords(ctx, s.webhookRetention(), s.BatchSize, s.MaxBatches); err != nil {
		return round, true, err
	}
	if s.Reconcile != nil {
		round.Reconciled, err = webhooks.Reconcile(ctx, conn.Conn(), *s.Reconcile)
	}
	return round, true, err
}

// webhookRetention is how long webhook deliveries are kept: as long as
// finished jobs are (CLIPPER_JOB_RETENTION), at least a day.
func (s *Scheduler) webhookRetention() time.Duration {
	return max(s.Retention, 24*time.Hour)
}

// ReconcileFromConfig returns the reconcile a daemon or `clipper cleanup`
// runs: it makes jobs only where the webhook receiver is enabled
// (CLIPPER_WEBHOOK_SECRET set: this deployment turns uploads into jobs by
// webhook); elsewhere it only reports the objects.
func ReconcileFromConfig(cfg config.Config) *webhooks.ReconcileOptions {
	return &webhooks.ReconcileOptions{Create: cfg.WebhookSecret != ""}
}

// RecordRound adds a round's counts to the daemon's metrics.
func RecordRound(m *metrics.Metrics, r Round) {
	m.CleanupDeletedJobs.Add(float64(r.Cleanup.Jobs))
	m.ReapedJobs.Add(float64(r.Reaped))
	m.AddObjects(r.Objects.Deleted, r.Objects.Failed, r.Objects.Pending)
	m.CleanupPrunedWebhookRows.WithLabelValues("webhook_deliveries").Add(float64(r.Pruned.Deliveries))
	m.CleanupPrunedWebhookRows.WithLabelValues("upload_jobs").Add(float64(r.Pruned.UploadJobs))
	if r.Reconciled.Found > 0 {
		m.ReconciledUploads.WithLabelValues("found").Add(float64(r.Reconciled.Found))
	}
	for action, n := range r.Reconciled.Actions {
		m.ReconciledUploads.WithLabelValues(string(action)).Add(float64(n))
	}
}
