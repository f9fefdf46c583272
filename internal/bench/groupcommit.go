package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
)

// groupCommitWindow is the daemon's default CLIPPER_GROUP_COMMIT_WINDOW.
const groupCommitWindow = time.Millisecond

// groupCommit measures single job creates and single event appends from
// opts.Clients clients with group commit off and on, back to back so that
// both see the same machine: in process (jobs.Repo.Create against
// jobs.GroupCommit, events.Repo.Append against events.GroupCommit) and
// over HTTP (POST /v1/jobs on a daemon with CLIPPER_GROUP_COMMIT_WINDOW 0
// and 1ms).
func (e *env) groupCommit(ctx context.Context) error {
	repo := jobs.New(e.pool)
	gcJobs := jobs.NewGroupCommit(e.pool, jobs.GroupCommitOptions{Options: batcher.Options{Window: groupCommitWindow}})
	defer gcJobs.Close()
	for _, v := range []struct {
		name   string
		create func(context.Context, jobs.CreateParams) (jobs.Job, bool, error)
	}{{"off", repo.Create}, {"on", gcJobs.Create}} {
		lat := &latencies{}
		prof := startProfile(ctx, e.pool)
		n, elapsed, err := runFor(ctx, e.opts.Clients, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
			t := time.Now()
			if _, _, err := v.create(ctx, newJob(w)); err != nil {
				return 0, err
			}
			lat.add(time.Since(t))
			return 1, nil
		})
		if err != nil {
			return fmt.Errorf("create_single group commit %s: %w", v.name, err)
		}
		e.rep.add("create_single_gc_"+v.name, float64(n)/elapsed.Seconds(), "jobs/s")
		e.rep.add("create_single_gc_"+v.name+"_p95_ms", lat.percentile(95), "ms")
		prof.finish(e, "create_single_gc_"+v.name)
	}

	// Each client appends to its own job, as in the event appends phase.
	ids := make([]uuid.UUID, e.opts.Clients)
	for i := range ids {
		j, _, err := repo.Create(ctx, newJob(i))
		if err != nil {
			return err
		}
		ids[i] = j.ID
	}
	evRepo := events.New(e.pool)
	gcEvents := events.NewGroupCommit(e.pool, events.GroupCommitOptions{Options: batcher.Options{Window: groupCommitWindow}})
	defer gcEvents.Close()
	data := json.RawMessage(`{"stage": "transcode", "frame": 1200, "fps": 29.97}`)
	for _, v := range []struct {
		name   string
		append func(context.Context, uuid.UUID, string, json.RawMessage) (events.Event, error)
	}{{"off", evRepo.Append}, {"on", gcEvents.Append}} {
		lat := &latencies{}
		prof := startProfile(ctx, e.pool)
		n, elapsed, err := runFor(ctx, e.opts.Clients, e.opts.Phase, func(ctx context.Context, w int) (int, error) {
			t := time.Now()
			if _, err := v.append(ctx, ids[w], "log", data); err != nil {
				return 0, err
			}
			lat.add(time.Since(t))
			return 1, nil
		})
		if err != nil {
			return fmt.Errorf("event_append_single group commit %s: %w", v.name, err)
		}
		e.rep.add("event_append_single_gc_"+v.name, float64(n)/elapsed.Seconds(), "events/s")
		e.rep.add("event_append_single_gc_"+v.name+"_p95_ms", lat.percentile(95), "ms")
		prof.finish(e, "event_append_single_gc_"+v.name)
	}

	if e.opts.SkipHTTP {
		return nil
	}
	for _, v := range []struct {
		name   string
		window time.Duration
	}{{"off", 0}, {"on", groupCommitWindow}} {
		if err := e.httpCreates(ctx, v.name, v.window); err != nil {
			return fmt.Errorf("http_create_job group commit %s: %w", v.name, err)
		}
	}
	return nil
}

// httpCreates runs a daemon with the given group commit window and
// measures POST /v1/jobs from opts.Clients clients.
func (e *env) httpCreates(ctx context.Context, name string, window time.Duration) error {
	keys, err := apikeys.NewRepo(e.pool, apikeys.Options{})
	if err != nil {
		return err
	}
	limit := int32(1_000_000)
	_, token, err := keys.Create(ctx, apikeys.CreateParams{Name: "bench group commit",
		Scopes: []apikeys.Scope{apikeys.ScopeJobsWrite}, RateLimitPerMinute: &limit})
	if err != nil {
		return err
	}
	base, stop, err := e.startDaemon(ctx, func(cfg *config.Config) {
		cfg.DBMaxConns = int32(e.opts.Clients + 8)
		cfg.GroupCommitWindow = window
	})
	if err != nil {
		return err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * e.opts.Clients, MaxConnsPerHost: 2 * e.opts.Clients},
		Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]any{"source_url": "https://www.youtube.com/watch?v=gcbench", "params": clipParams})
	post := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/jobs", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /v1/jobs: status %d", resp.StatusCode)
		}
		return nil
	}
	// Warm the key cache (one argon2id verification) and connections.
	if err := post(ctx); err != nil {
		return err
	}
	lat := &latencies{}
	prof := startProfile(ctx, e.pool)
	n, elapsed, err := runFor(ctx, e.opts.Clients, e.opts.Phase, func(ctx context.Context, _ int) (int, error) {
		t := time.Now()
		if err := post(ctx); err != nil {
			return 0, err
		}
		lat.add(time.Since(t))
		return 1, nil
	})
	if err != nil {
		return err
	}
	e.rep.add(fmt.Sprintf("http_create_job_rps_%dc_gc_%s", e.opts.Clients, name), float64(n)/elapsed.Seconds(), "req/s")
	e.rep.add(fmt.Sprintf("http_create_job_%dc_gc_%s_p95_ms", e.opts.Clients, name), lat.percentile(95), "ms")
	prof.finish(e, fmt.Sprintf("http_create_job_%dc_gc_%s", e.opts.Clients, name))
	return nil
}
