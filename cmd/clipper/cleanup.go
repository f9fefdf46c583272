package main

import (
	"context"
	"fmt"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/retention"
)

func runCleanup(ctx context.Context, args []string) error {
	fs := newFlags("cleanup", "[--batch-size N] [--max-batches N] [--no-reap]", `Deletes jobs whose expires_at has passed (their events go with them, by
cascade), in short transactions of --batch-size jobs, soonest expiry first;
jobs a worker still holds are left alone. First it reaps stale jobs: a job
in processing whose heartbeat is older than CLIPPER_HEARTBEAT_TIMEOUT goes
back to the queue, or fails when it has no attempts left. Prints progress
after each batch; Ctrl-C stops after the current batch, keeping what was
deleted. The daemon does the same on a schedule (CLIPPER_CLEANUP_INTERVAL).`)
	batch := fs.Int("batch-size", retention.DefaultBatchSize, "jobs deleted per transaction (1 to 10000)")
	maxBatches := fs.Int("max-batches", 0, "stop after this many batches (0 = until nothing expired is left)")
	noReap := fs.Bool("no-reap", false, "skip requeueing jobs with stale heartbeats")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *batch > retention.MaxBatchSize {
		return usageError{fmt.Sprintf("--batch-size must be 1 to %d", retention.MaxBatchSize)}
	}
	cfg, err := config.Load()
	if err != nil {
		return usageError{"configuration: " + err.Error()}
	}
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, dsn, database.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()

	if !*noReap {
		reaped, err := jobs.New(pool).RequeueStale(ctx, cfg.HeartbeatTimeout, jobs.MaxClaim, cfg.JobRetention)
		if err != nil {
			return err
		}
		fmt.Printf("Reaped %d job(s) with heartbeats older than %s.\n", len(reaped), cfg.HeartbeatTimeout)
	}
	start := time.Now()
	res, err := retention.New(pool).CleanupExpired(ctx, retention.Options{
		BatchSize: *batch, MaxBatches: *maxBatches,
		OnBatch: func(r retention.Result) {
			fmt.Printf("  batch %d: %d jobs, %d events deleted so far\n", r.Batches, r.Jobs, r.Events)
		},
	})
	elapsed := time.Since(start).Round(time.Millisecond)
	if err != nil && ctx.Err() != nil {
		fmt.Printf("Interrupted: deleted %d expired job(s) and %d event(s) in %s before stopping.\n", res.Jobs, res.Events, elapsed)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Printf("Deleted %d expired job(s) and %d event(s) in %d batch(es), %s.\n", res.Jobs, res.Events, res.Batches, elapsed)
	return nil
}
