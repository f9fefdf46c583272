package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/watches"
)

// progress: workers each report progress on a job they hold, one report
// per transaction, as workers do. First with no stream open (the database
// notifies nothing), then with every job watched as a stream would watch
// it (each report notifies, as every report did before notifications were
// limited to streamed jobs).
func (e *env) progress(ctx context.Context) error {
	held, worker, err := e.holdJobs(ctx, e.opts.Workers, uuid.NullUUID{})
	if err != nil {
		return err
	}
	repo := jobs.New(e.pool)
	run := func(metric string) error {
		prof := startProfile(ctx, e.pool)
		pct := make([]int, len(held))
		n, elapsed, err := runFor(ctx, len(held), e.opts.Phase, func(ctx context.Context, w int) (int, error) {
			pct[w] = (pct[w] + 1) % 101
			if _, err := repo.Progress(ctx, held[w], worker, pct[w]); err != nil {
				return 0, err
			}
			return 1, nil
		})
		if err != nil {
			return err
		}
		e.rep.add(metric, float64(n)/elapsed.Seconds(), "reports/s")
		prof.finish(e, metric)
		return nil
	}
	if err := run("progress_unwatched"); err != nil {
		return err
	}
	reg := watches.New(e.pool, watches.Options{})
	var releases []func()
	for _, id := range held {
		release, err := reg.Watch(ctx, id)
		if err != nil {
			return err
		}
		releases = append(releases, release)
	}
	if err := run("progress_all_watched"); err != nil {
		return err
	}
	// The "streams" close; the renewal drops their watches.
	for _, release := range releases {
		release()
	}
	return reg.Renew(ctx)
}

// holdJobs creates n jobs (owned by owner, if valid) and claims them for
// one bench worker, from an empty queue.
func (e *env) holdJobs(ctx context.Context, n int, owner uuid.NullUUID) ([]uuid.UUID, string, error) {
	if err := e.emptyQueue(ctx); err != nil {
		return nil, "", err
	}
	repo := jobs.New(e.pool)
	batch := make([]jobs.CreateParams, n)
	for i := range batch {
		batch[i] = newJob(i)
		batch[i].OwnerID = owner
	}
	if _, err := repo.CreateBatch(ctx, batch); err != nil {
		return nil, "", err
	}
	const worker = "bench-progress"
	claimed, err := repo.Claim(ctx, worker, n)
	if err != nil {
		return nil, "", err
	}
	if len(claimed) != n {
		return nil, "", fmt.Errorf("claimed %d of %d jobs", len(claimed), n)
	}
	ids := make([]uuid.UUID, n)
	for i, j := range claimed {
		ids[i] = j.ID
	}
	return ids, worker, nil
}

// streamLatency: one SSE stream through the daemon on a job a worker
// reports progress on, one report at a time: the time from the start of a
// report to its event arriving on the stream (commit, NOTIFY, the stream's
// read, SSE). Other workers report on other jobs meanwhile, unstreamed.
func (e *env) streamLatency(ctx context.Context) error {
	owner := uuid.MustParse("00000000-0000-4000-8000-000000000002")
	held, worker, err := e.holdJobs(ctx, e.opts.Workers+1, uuid.NullUUID{UUID: owner, Valid: true})
	if err != nil {
		return err
	}
	streamed, others := held[0], held[1:]
	keys, err := apikeys.NewRepo(e.pool, apikeys.Options{})
	if err != nil {
		return err
	}
	_, token, err := keys.Create(ctx, apikeys.CreateParams{OwnerID: &owner, Name: "bench-stream",
		Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	if err != nil {
		return err
	}
	base, stop, err := e.startDaemon(ctx, nil)
	if err != nil {
		return err
	}
	defer stop()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, "GET", base+"/v1/jobs/"+streamed.String()+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("event stream: status %d", resp.StatusCode)
	}
	arrived := make(chan int, 16) // progress values, in arrival order
	go func() {
		defer close(arrived)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Type string `json:"type"`
				Data struct {
					Progress int `json:"progress"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil && ev.Type == "progress" {
				select {
				case arrived <- ev.Data.Progress:
				case <-sctx.Done():
					return
				}
			}
		}
	}()

	repo := jobs.New(e.pool)
	// Background load: the other workers report progress, unstreamed.
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	go func() {
		pct := make([]int, len(others))
		_, _, err := runFor(lctx, len(others), time.Hour, func(ctx context.Context, w int) (int, error) {
			pct[w] = (pct[w] + 1) % 101
			_, err := repo.Progress(context.WithoutCancel(ctx), others[w], worker, pct[w])
			return 1, err
		})
		loadDone <- err
	}()
	lat := &latencies{}
	deadline := time.Now().Add(e.opts.Phase)
	for i := 1; i <= 100 && (i <= 5 || time.Now().Before(deadline)); i++ {
		t := time.Now()
		if _, err := repo.Progress(ctx, streamed, worker, i); err != nil {
			stopLoad()
			return err
		}
		if err := waitFor(ctx, arrived, i); err != nil {
			stopLoad()
			return err
		}
		lat.add(time.Since(t))
	}
	stopLoad()
	if err := <-loadDone; err != nil {
		return err
	}
	e.addLatency("stream_event_latency", lat)
	return nil
}

// waitFor reads arrived until want, within a deadline far above any
// stream's re-read interval: a lost notification shows as a slow figure,
// a broken stream as an error.
func waitFor(ctx context.Context, arrived <-chan int, want int) error {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case got, ok := <-arrived:
			if !ok {
				return fmt.Errorf("event stream ended before progress %d arrived", want)
			}
			if got == want {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("progress %d did not arrive on the event stream within a minute", want)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
