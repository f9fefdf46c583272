package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/jobs"
)

// lockKey is the session advisory lock that elects the one replica that
// cleans up at a time.
const lockKey int64 = 0x636c6970_72657400 // "clipret\0"

// Scheduler runs cleanup and the stale-heartbeat reaper on a schedule, on
// one daemon replica at a time.
type Scheduler struct {
	Pool             *pgxpool.Pool
	Interval         time.Duration // 0 disables the schedule
	BatchSize        int
	MaxBatches       int           // per round; 0 means until nothing expired is left
	HeartbeatTimeout time.Duration // processing jobs quiet for longer are reaped; 0 skips the reaper
	Retention        time.Duration // expires_at of jobs the reaper fails
	Log              *slog.Logger
	// OnBatch, if set, is called after each committed cleanup batch.
	OnBatch func(Result)
	// OnRound, if set, is called after each round this replica ran.
	OnRound func(Round)
}

// Round is what one scheduled run did.
type Round struct {
	Cleanup Result
	Reaped  int
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
		case ran && (round.Cleanup.Jobs > 0 || round.Reaped > 0):
			s.Log.Info("retention round", "deleted_jobs", round.Cleanup.Jobs,
				"deleted_events", round.Cleanup.Events, "reaped_jobs", round.Reaped)
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
	round.Cleanup, err = New(conn.Conn()).CleanupExpired(ctx, Options{
		BatchSize: s.BatchSize, MaxBatches: s.MaxBatches, OnBatch: s.OnBatch})
	if s.OnRound != nil {
		s.OnRound(round)
	}
	return round, true, err
}
