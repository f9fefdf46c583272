package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/retention"
	"github.com/clipper/clipper/internal/storage"
	"github.com/clipper/clipper/webhooks"
)

func runCleanup(ctx context.Context, args []string) error {
	fs := newFlags("cleanup", "[--batch-size N] [--max-batches N] [--no-reap] [--reconcile-min-age D] [--reconcile-max-age D]", `Deletes jobs whose expires_at has passed (their events go with them, by
cascade), in short transactions of --batch-size jobs, soonest expiry first;
jobs a worker still holds are left alone. First it reaps stale jobs: a job
in processing whose heartbeat is older than CLIPPER_HEARTBEAT_TIMEOUT goes
back to the queue, or fails when it has no attempts left. Then it deletes
the storage objects of deleted jobs (their results, and their source when
no other job names it) through the configured storage backend
(CLIPPER_STORAGE_BACKEND: run it with the daemon's storage settings); a
failed delete stays queued and is retried with a backoff. Then it prunes
webhook records older than CLIPPER_JOB_RETENTION, and reconciles uploads to
the sources bucket whose webhook never arrived: with CLIPPER_WEBHOOK_SECRET
set it makes their jobs as the webhook would, otherwise it lists them.
Prints progress after each batch. Ctrl-C stops at once: the batches
already committed stay deleted, the one under way rolls back, and objects
whose delete was under way are deleted again by the next run. It takes the
same lock as the daemon's scheduled cleanup (CLIPPER_CLEANUP_INTERVAL), so
the two never run at once.`)
	batch := fs.Int("batch-size", retention.DefaultBatchSize, "jobs deleted per transaction (1 to 10000)")
	maxBatches := fs.Int("max-batches", 0, "stop after this many batches (0 = until nothing expired is left)")
	noReap := fs.Bool("no-reap", false, "skip requeueing jobs with stale heartbeats")
	minAge := fs.Duration("reconcile-min-age", webhooks.DefaultReconcileMinAge, "reconcile only uploads at least this old (their webhook may be in flight)")
	maxAge := fs.Duration("reconcile-max-age", webhooks.DefaultReconcileMaxAge, "reconcile only uploads at most this old")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *batch > retention.MaxBatchSize {
		return usageError{fmt.Sprintf("--batch-size must be 1 to %d", retention.MaxBatchSize)}
	}
	if *maxBatches < 0 {
		return usageError{"--max-batches must not be negative"}
	}
	if *minAge < 0 || *maxAge <= *minAge {
		return usageError{"--reconcile-max-age must be above --reconcile-min-age, and both not negative"}
	}
	cfg, err := config.Load()
	if err != nil {
		return usageError{"configuration: " + err.Error()}
	}
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	store, err := storage.FromConfig(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, dsn, database.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()

	reconcile := retention.ReconcileFromConfig(cfg)
	reconcile.MinAge, reconcile.MaxAge = *minAge, *maxAge
	sched := &retention.Scheduler{
		Pool: pool, BatchSize: *batch, MaxBatches: *maxBatches,
		HeartbeatTimeout: cfg.HeartbeatTimeout, Retention: cfg.JobRetention,
		Storage: store, Reconcile: reconcile,
		OnBatch: func(r retention.Result) {
			fmt.Printf("  batch %d: %d jobs, %d events deleted so far\n", r.Batches, r.Jobs, r.Events)
		},
	}
	if *noReap {
		sched.HeartbeatTimeout = 0
	}
	start := time.Now()
	round, ran, err := sched.RunOnce(ctx)
	elapsed := time.Since(start).Round(time.Millisecond)
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Printf("Interrupted: deleted %d expired job(s), %d event(s) and %d object(s) in %s before stopping.\n",
			round.Cleanup.Jobs, round.Cleanup.Events, round.Objects.Total(), elapsed)
		return nil
	case err != nil:
		return err
	case !ran:
		return fmt.Errorf("another cleanup (a daemon's or another clipper cleanup) is running; try again later")
	}
	if !*noReap {
		fmt.Printf("Reaped %d job(s) with heartbeats older than %s.\n", round.Reaped, cfg.HeartbeatTimeout)
	}
	fmt.Printf("Deleted %d expired job(s) and %d event(s) in %d batch(es), %s.\n",
		round.Cleanup.Jobs, round.Cleanup.Events, round.Cleanup.Batches, elapsed)
	printObjects(round.Objects, cfg.StorageBackend)
	fmt.Printf("Pruned %d webhook delivery record(s) and %d upload record(s).\n",
		round.Pruned.Deliveries, round.Pruned.UploadJobs)
	printReconciled(round.Reconciled, reconcile.Create)
	return nil
}

func printObjects(o retention.Objects, backend string) {
	fmt.Printf("Deleted %d object(s) of deleted jobs from %s storage (sources %d, results %d); %d already gone, %d source(s) still used by another job.\n",
		o.Total(), backend, o.Deleted[storage.BucketSources], o.Deleted[storage.BucketResults], o.Missing, o.InUse)
	if o.Failed > 0 {
		fmt.Printf("Could not delete %d object(s): %s. They stay queued and are retried with a backoff.\n", o.Failed, o.LastError)
	}
	if o.Pending > 0 {
		fmt.Printf("%d object(s) wait in clipper_internal.object_deletions.\n", o.Pending)
	}
}

func printReconciled(r webhooks.ReconcileResult, created bool) {
	switch {
	case r.Found == 0:
		fmt.Println("Every upload to sources has its job (no webhook delivery missing).")
	case created:
		var parts []string
		for _, a := range slices.Sorted(maps.Keys(r.Actions)) {
			parts = append(parts, fmt.Sprintf("%s %d", a, r.Actions[a]))
		}
		fmt.Printf("Reconciled %d upload(s) whose webhook never arrived: %s.\n", r.Found, strings.Join(parts, ", "))
	default:
		fmt.Printf("%d upload(s) to sources have no job (CLIPPER_WEBHOOK_SECRET is not set, so none was made):\n", r.Found)
		for _, n := range r.Names {
			fmt.Printf("  sources/%s\n", n)
		}
	}
}
