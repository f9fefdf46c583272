package main

import (
	"context"
	"fmt"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/retention"
)

func runCleanup(ctx context.Context, args []string) error {
	fs := newFlags("cleanup", "[--batch-size N] [--max-batches N] [--no-reap]", `Deletes jobs whose expires_at has passed (their events go with them, by
cascade), in short transactions of --batch-size jobs, soonest expiry first;
jobs a worker still holds are left alone. First it reaps stale jobs: a job
in processing whose heartbeat is older than CLIPPER_HEARTBEAT_TIMEOUT goes
back to the queue, or fails when it has no attempts left. Prints progress
after each batch. Ctrl-C stops at once: the batches already committed stay
deleted, the one under way rolls back. It takes the same lock as the
daemon's scheduled cleanup (CLIPPER_CLEANUP_INTERVAL), so the two never
run at once.`)
	batch := fs.Int("batch-size", retention.DefaultBatchSize, "jobs deleted per transaction (1 to 10000)")
	maxBatches := fs.Int("max-batches", 0, "stop after this many batches (0 = until nothing expired is left)")
	noReap := fs.Bool("no-reap", false, "skip requeueing jobs with stale heartbeats")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *batch > retention.MaxBatchSize {
		return usageError{fmt.Sprintf("--batch-size must be 1 to %d", retention.MaxBatchSize)}
	}
	if *maxBatches < 0 {
		return usageError{"--max-batches must not be negative"}
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

	sched := &retention.Scheduler{
		Pool: pool, BatchSize: *batch, MaxBatches: *maxBatches,
		HeartbeatTimeout: cfg.HeartbeatTimeout, Retention: cfg.JobRetention,
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
		fmt.Printf("Interrupted: deleted %d expired job(s) and %d event(s) in %s before stopping.\n",
			round.Cleanup.Jobs, round.Cleanup.Events, elapsed)
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
	return nil
}
