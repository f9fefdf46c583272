package daemon

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/retention"
)

// register wires every feature's routes and background work. Each feature
// has its own block.
func (f *features) register(ctx context.Context, e *echo.Echo) error {
	// --- auth and keys admin ---

	// --- storage ---

	// --- jobs API ---

	// --- webhooks ---

	// --- retention ---
	sched := &retention.Scheduler{
		Pool: f.pool, Interval: f.cfg.CleanupInterval, BatchSize: f.cfg.CleanupBatchSize,
		HeartbeatTimeout: f.cfg.HeartbeatTimeout, Retention: f.cfg.JobRetention, Log: f.log,
		OnRound: func(r retention.Round) {
			f.metrics.CleanupDeletedJobs.Add(float64(r.Cleanup.Jobs))
			f.metrics.ReapedJobs.Add(float64(r.Reaped))
		},
	}
	f.background("retention", sched.Run)

	return nil
}
