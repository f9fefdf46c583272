package bench

import (
	"context"
	"sync"
	"time"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/retention"
)

// cleanup measures deleting the expired jobs (and their events, by
// cascade) while writers keep creating jobs, against the same writers'
// latency without a cleanup running.
func (e *env) cleanup(ctx context.Context) error {
	repo := jobs.New(e.pool)
	const writers = 8
	write := func(ctx context.Context, lat *latencies) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					t := time.Now()
					if _, _, err := repo.Create(ctx, newJob(w)); err != nil {
						return
					}
					lat.add(time.Since(t))
				}
			}()
		}
		wg.Wait()
	}

	base := &latencies{}
	bctx, cancel := context.WithTimeout(ctx, e.opts.Phase)
	write(bctx, base)
	cancel()
	e.rep.add("writer_p95_ms", base.percentile(95), "ms")

	during := &latencies{}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); write(wctx, during) }()
	start := time.Now()
	maxBatches := 0
	if e.opts.Quick {
		maxBatches = 20
	}
	res, err := retention.New(e.pool).CleanupExpired(ctx, retention.Options{BatchSize: 1000, MaxBatches: maxBatches})
	elapsed := time.Since(start)
	stopWriters()
	wg.Wait()
	if err != nil {
		return err
	}
	e.logf("  cleanup deleted %d jobs and %d events in %s", res.Jobs, res.Events, elapsed.Round(time.Millisecond))
	e.rep.add("cleanup_events_per_s", float64(res.Events)/elapsed.Seconds(), "events/s")
	e.rep.add("cleanup_jobs_per_s", float64(res.Jobs)/elapsed.Seconds(), "jobs/s")
	e.rep.add("writer_p95_ms_during_cleanup", during.percentile(95), "ms")
	return nil
}
