package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/retention"
	"github.com/clipper/clipper/internal/storage"
)

// cleanup measures deleting the expired jobs (and their events, by
// cascade) while writers keep creating jobs, against the same writers'
// latency without a cleanup running.
func (e *env) cleanup(ctx context.Context) error {
	repo := jobs.New(e.pool)
	const writers = 8
	// Writers stop between statements when stop closes, never by a
	// canceled context: canceling a statement mid-flight would measure
	// cancellation, and can leave pgx a connection that fails its next use.
	write := func(stop <-chan struct{}, lat *latencies) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					select {
					case <-stop:
						return
					default:
					}
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

	// At least a tenth of the loaded volume is expired (the load phase
	// expires some; at small volumes the earlier phases' jobs may be all
	// there is): expire done jobs, oldest first, until it is.
	if _, err := e.pool.Exec(ctx, `
		with need as (select greatest($1::int - (select count(*) from jobs where expires_at < now()), 0) as n)
		update jobs set expires_at = now() - interval '1 minute'
		where id in (select id from jobs where status = 'done' and (expires_at is null or expires_at >= now())
		             order by created_at limit (select n from need))`, e.opts.Jobs/10); err != nil {
		return err
	}

	base := &latencies{}
	stopBase := make(chan struct{})
	timer := time.AfterFunc(e.opts.Phase, func() { close(stopBase) })
	write(stopBase, base)
	timer.Stop()
	e.rep.add("writer_p95_ms", base.percentile(95), "ms")

	during := &latencies{}
	stopDuring := make(chan struct{})
	stopWriters := func() { close(stopDuring) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); write(stopDuring, during) }()
	prof := startProfile(ctx, e.pool)
	start := time.Now()
	maxBatches := 0
	if e.opts.Quick {
		maxBatches = 20
	}
	res, err := retention.New(e.pool).CleanupExpired(ctx, retention.Options{BatchSize: 1000, MaxBatches: maxBatches})
	elapsed := time.Since(start)
	if err != nil {
		stopWriters()
		wg.Wait()
		return err
	}
	// The deleted jobs' result objects wait in the outbox; the drain
	// deletes them through a storage backend (here the local one, where
	// they do not exist: the figure is the database's side of the work and
	// the backend's lookups, not Storage's speed).
	objStart := time.Now()
	objects, err := e.drainObjects(ctx)
	objElapsed := time.Since(objStart)
	stopWriters()
	wg.Wait()
	if err != nil {
		return err
	}
	e.logf("  cleanup deleted %d jobs and %d events in %s; the outbox drain handled %d objects in %s",
		res.Jobs, res.Events, elapsed.Round(time.Millisecond), objects, objElapsed.Round(time.Millisecond))
	e.rep.add("cleanup_events_per_s", float64(res.Events)/elapsed.Seconds(), "events/s")
	e.rep.add("cleanup_jobs_per_s", float64(res.Jobs)/elapsed.Seconds(), "jobs/s")
	e.rep.add("cleanup_objects_per_s", float64(objects)/objElapsed.Seconds(), "objects/s")
	e.rep.add("writer_p95_ms_during_cleanup", during.percentile(95), "ms")
	prof.finish(e, "cleanup")
	return nil
}

// drainObjects empties the object outbox through a local storage backend
// and returns how many names it handled.
func (e *env) drainObjects(ctx context.Context) (int64, error) {
	dir, err := os.MkdirTemp("", "clipper-bench-objects-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	local, err := storage.NewLocal(dir, "http://127.0.0.1", "bench-storage-signing-secret-0123456789", storage.LocalOptions{})
	if err != nil {
		return 0, err
	}
	res, err := retention.New(e.pool).DrainObjects(ctx, local, retention.DrainOptions{})
	if err != nil {
		return 0, err
	}
	if res.Failed > 0 {
		return 0, fmt.Errorf("object drain: %d failed: %s", res.Failed, res.LastError)
	}
	return res.Total() + res.Missing + res.InUse, nil
}
