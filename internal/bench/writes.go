package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
)

var clipParams = json.RawMessage(`{"start": 12.5, "end": 42, "format": "mp4", "captions": true}`)

func newJob(i int) jobs.CreateParams {
	return jobs.CreateParams{SourceURL: fmt.Sprintf("https://www.youtube.com/watch?v=bench%08d", i), Params: clipParams}
}

// createSingle: one Create per transaction from many clients, as an API
// under load does; bounded by the machine's commit rate.
func (e *env) createSingle(ctx context.Context) error {
	repo := jobs.New(e.pool)
	lat := &latencies{}
	prof := startProfile(ctx, e.pool)
	n, elapsed, err := runFor(ctx, e.opts.Clients, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
		t := time.Now()
		if _, _, err := repo.Create(ctx, newJob(w)); err != nil {
			return 0, err
		}
		lat.add(time.Since(t))
		return 1, nil
	})
	if err != nil {
		return err
	}
	e.rep.add("create_single", float64(n)/elapsed.Seconds(), "jobs/s")
	e.rep.add("create_single_p95_ms", lat.percentile(95), "ms")
	prof.finish(e, "create_single")
	return nil
}

// createBatch: COPY batches of 1000 from as many clients as cores.
func (e *env) createBatch(ctx context.Context) error {
	repo := jobs.New(e.pool)
	batch := make([]jobs.CreateParams, 1000)
	for i := range batch {
		batch[i] = newJob(i)
	}
	prof := startProfile(ctx, e.pool)
	n, elapsed, err := runFor(ctx, e.rep.Machine.Cores, e.opts.Phase, func(ctx context.Context, _ int) (int, error) {
		k, err := repo.CreateBatch(ctx, batch)
		return int(k), err
	})
	if err != nil {
		return err
	}
	e.rep.add("create_batch", float64(n)/elapsed.Seconds(), "jobs/s")
	prof.finish(e, "create_batch")
	return nil
}

// emptyQueue cancels every queued job, so that claims find the next
// phase's jobs only, then vacuums jobs: the cancel leaves as many dead
// rows as there were queued jobs (after the batch creates, over a hundred
// thousand), and a phase that starts on them measures autovacuum and
// index bloat rather than its own statements.
func (e *env) emptyQueue(ctx context.Context) error {
	if _, err := e.pool.Exec(ctx, "update jobs set status = 'canceled' where status = 'queued'"); err != nil {
		return err
	}
	_, err := e.pool.Exec(ctx, "vacuum (analyze) jobs")
	return err
}

// lifecycle: workers that each create a batch, claim it and complete every
// job; every transition writes its event. Counts completed jobs.
func (e *env) lifecycle(ctx context.Context) error {
	if err := e.emptyQueue(ctx); err != nil {
		return err
	}
	repo := jobs.New(e.pool)
	const batchSize = 100
	batch := make([]jobs.CreateParams, batchSize)
	for i := range batch {
		batch[i] = newJob(i)
	}
	prof := startProfile(ctx, e.pool)
	n, elapsed, err := runFor(ctx, e.opts.Workers, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
		if _, err := repo.CreateBatch(ctx, batch); err != nil {
			return 0, err
		}
		worker := fmt.Sprintf("bench-worker-%d", w)
		claimed, err := repo.Claim(ctx, worker, batchSize)
		if err != nil {
			return 0, err
		}
		if len(claimed) == 0 {
			return 0, nil
		}
		finished := make([]jobs.Completion, len(claimed))
		for i, j := range claimed {
			finished[i] = jobs.Completion{ID: j.ID, ResultKeys: []string{j.ID.String() + "/clip.mp4"}}
		}
		done, err := repo.CompleteMany(ctx, worker, finished, 24*time.Hour)
		return len(done), err
	})
	if err != nil {
		return err
	}
	e.rep.add("lifecycle", float64(n)/elapsed.Seconds(), "jobs/s")
	prof.finish(e, "lifecycle")
	return nil
}

// eventAppends: single appends from many clients (each on its own job, so
// they do not queue on one job's lock), then COPY batches.
func (e *env) eventAppends(ctx context.Context) error {
	repo := jobs.New(e.pool)
	ids := make([]uuid.UUID, e.opts.Clients)
	for i := range ids {
		j, _, err := repo.Create(ctx, newJob(i))
		if err != nil {
			return err
		}
		ids[i] = j.ID
	}
	ev := events.New(e.pool)
	data := json.RawMessage(`{"stage": "transcode", "frame": 1200, "fps": 29.97}`)
	lat := &latencies{}
	n, elapsed, err := runFor(ctx, e.opts.Clients, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
		t := time.Now()
		if _, err := ev.Append(ctx, ids[w], "log", data); err != nil {
			return 0, err
		}
		lat.add(time.Since(t))
		return 1, nil
	})
	if err != nil {
		return err
	}
	e.rep.add("event_append_single", float64(n)/elapsed.Seconds(), "events/s")
	e.rep.add("event_append_single_p95_ms", lat.percentile(95), "ms")

	n, elapsed, err = runFor(ctx, e.rep.Machine.Cores, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
		batch := make([]events.NewEvent, 1000)
		for i := range batch {
			// 10 jobs per batch, 100 events each, like workers flushing logs.
			batch[i] = events.NewEvent{JobID: ids[(w*10+i/100)%len(ids)], Type: "log", Data: data}
		}
		k, err := ev.AppendBatch(ctx, batch)
		return int(k), err
	})
	if err != nil {
		return err
	}
	e.rep.add("event_append_batch", float64(n)/elapsed.Seconds(), "events/s")
	return nil
}
