package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/jobs"
)

// http measures the daemon end to end: a real `clipper serve` in this
// process on loopback, a real API key (argon2id at the default cost,
// verified once and then cached), and concurrent clients.
func (e *env) http(ctx context.Context) error {
	// One of the load phase's owners; at small volumes it may hold no jobs
	// yet, so give it some to read.
	owner := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	var owned int
	if err := e.pool.QueryRow(ctx, "select count(*) from (select 1 from jobs where owner_id = $1 limit 1000) s", owner).Scan(&owned); err != nil {
		return err
	}
	if owned < 1000 {
		batch := make([]jobs.CreateParams, 1000-owned)
		for i := range batch {
			batch[i] = newJob(i)
			batch[i].OwnerID = uuid.NullUUID{UUID: owner, Valid: true}
		}
		if _, err := jobs.New(e.pool).CreateBatch(ctx, batch); err != nil {
			return err
		}
	}
	keys, err := apikeys.NewRepo(e.pool, apikeys.Options{})
	if err != nil {
		return err
	}
	limit := int32(1_000_000)
	_, token, err := keys.Create(ctx, apikeys.CreateParams{OwnerID: &owner, Name: "bench",
		Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite}, RateLimitPerMinute: &limit})
	if err != nil {
		return err
	}
	rows, err := e.pool.Query(ctx, "select id from jobs where owner_id = $1 limit 1000", owner)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}

	base, stop, err := e.startDaemon(ctx, nil)
	if err != nil {
		return err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}, Timeout: 10 * time.Second}
	call := func(ctx context.Context, method, path string, body []byte, want int) error {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
		}
		return nil
	}
	// Warm the key cache and connections.
	if err := call(ctx, "GET", "/v1/jobs/"+ids[0].String(), nil, http.StatusOK); err != nil {
		return err
	}

	// Throughput at saturation (16 clients on this process's loopback), then
	// latency at a moderate load (4 clients), where queueing behind the
	// machine's two cores does not dominate the figure.
	getJob := func(lat *latencies) func(ctx context.Context, _ int) (int, error) {
		return func(ctx context.Context, _ int) (int, error) {
			t := time.Now()
			if err := call(ctx, "GET", "/v1/jobs/"+ids[rand.IntN(len(ids))].String(), nil, http.StatusOK); err != nil {
				return 0, err
			}
			lat.add(time.Since(t))
			return 1, nil
		}
	}
	saturated := &latencies{}
	n, elapsed, err := runFor(ctx, 16, e.opts.Phase, getJob(saturated))
	if err != nil {
		return err
	}
	e.rep.add("http_get_job_rps", float64(n)/elapsed.Seconds(), "req/s")
	e.rep.add("http_get_job_saturated_p95_ms", saturated.percentile(95), "ms")
	get := &latencies{}
	if _, _, err := runFor(ctx, 4, e.opts.Phase, getJob(get)); err != nil {
		return err
	}
	e.addLatency("http_get_job", get)

	body, _ := json.Marshal(map[string]any{"source_url": "https://www.youtube.com/watch?v=httpbench", "params": clipParams})
	create := &latencies{}
	n, elapsed, err = runFor(ctx, 4, e.opts.Phase, func(ctx context.Context, _ int) (int, error) {
		t := time.Now()
		if err := call(ctx, "POST", "/v1/jobs", body, http.StatusCreated); err != nil {
			return 0, err
		}
		create.add(time.Since(t))
		return 1, nil
	})
	if err != nil {
		return err
	}
	e.rep.add("http_create_job_rps", float64(n)/elapsed.Seconds(), "req/s")
	e.addLatency("http_create_job", create)
	return nil
}
