package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/pgtest"
)

// TestKilledDaemonLosesNothingAcknowledged runs `clipper serve` as a
// process of its own, with group commit on, under 16 clients creating
// jobs and appending events, and kills it with SIGKILL while requests are
// in flight. Whatever the moment of the kill: every job and event the
// daemon acknowledged (201) exists, every job has its creation event, and
// nothing is half-written.
func TestKilledDaemonLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the daemon as a process")
	}
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{
		MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}})
	require.NoError(t, err)
	limit := int32(1_000_000)
	_, token, err := keys.Create(ctx, apikeys.CreateParams{Name: "kill", RateLimitPerMinute: &limit,
		Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite, apikeys.ScopeWorker}})
	require.NoError(t, err)
	var eventJob uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/kill')
		returning id`).Scan(&eventJob))

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"CLIPPER_TEST_RUN=serve", "DATABASE_URL="+dsn, "DATABASE_URL_FILE=",
		"CLIPPER_ADDR=127.0.0.1:0", "CLIPPER_LOG_FORMAT=json", "CLIPPER_LOG_LEVEL=info",
		"CLIPPER_STORAGE_DIR="+t.TempDir(), "CLIPPER_STORAGE_SIGNING_SECRET=kill-test-storage-signing-secret-0123456789",
		// A wide window, so that batches are pending when the kill comes.
		"CLIPPER_GROUP_COMMIT_WINDOW=20ms", "CLIPPER_CLEANUP_INTERVAL=0",
		// Deadlines a loaded machine cannot trip (as daemontest.Config).
		"CLIPPER_REQUEST_TIMEOUT=2m", "CLIPPER_DB_STATEMENT_TIMEOUT=1m",
		"CLIPPER_DB_CONNECT_TIMEOUT=1m", "CLIPPER_DB_ACQUIRE_TIMEOUT=1m")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "clipper daemon listening" {
				urls <- line.URL
			}
		}
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-exited:
		t.Fatalf("the daemon exited before listening: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the daemon did not start listening within 2 minutes")
	}

	client := &http.Client{Timeout: time.Minute}
	post := func(path string, body any) (int, []byte, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			return 0, nil, err // cut off by the kill: not acknowledged
		}
		return resp.StatusCode, buf.Bytes(), nil
	}

	// One request first: the key is verified once and cached before the
	// clients start (16 concurrent first uses could meet the cap on
	// verifications in flight).
	code, body, err := post("/v1/jobs", map[string]any{"source_url": "https://youtu.be/kill-warm-up"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, "%s", body)

	var (
		mu         sync.Mutex
		jobsAcked  []uuid.UUID
		eventAcked []int64
		acked      atomic.Int64
		killed     = make(chan struct{})
		killOnce   sync.Once
		wg         sync.WaitGroup
	)
	// The kill comes after a number of acknowledgements, not after a time.
	const killAfter = 300
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var code int
				var body []byte
				var err error
				if w%4 == 0 {
					code, body, err = post("/v1/jobs/"+eventJob.String()+"/events",
						map[string]any{"type": "worker.log", "data": map[string]any{"w": w, "i": i}})
				} else {
					code, body, err = post("/v1/jobs", map[string]any{"source_url": fmt.Sprintf("https://youtu.be/kill-%d-%d", w, i)})
				}
				if err != nil {
					select {
					case <-killed:
						return // the daemon is gone
					default:
						t.Errorf("request failed before the kill: %v", err)
						return
					}
				}
				if code != http.StatusCreated {
					t.Errorf("status %d: %s", code, body)
					return
				}
				var env struct {
					Data struct {
						ID json.RawMessage `json:"id"`
					} `json:"data"`
				}
				if err := json.Unmarshal(body, &env); err != nil {
					t.Errorf("answer %s: %v", body, err)
					return
				}
				mu.Lock()
				if w%4 == 0 {
					var id int64
					_ = json.Unmarshal(env.Data.ID, &id)
					eventAcked = append(eventAcked, id)
				} else {
					var id uuid.UUID
					_ = json.Unmarshal(env.Data.ID, &id)
					jobsAcked = append(jobsAcked, id)
				}
				mu.Unlock()
				if acked.Add(1) == killAfter {
					killOnce.Do(func() {
						close(killed)
						_ = cmd.Process.Kill()
					})
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("the clients did not finish within 5 minutes")
	}
	select {
	case <-killed:
	default:
		t.Fatal("the clients stopped before the kill")
	}

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, jobsAcked)
	require.NotEmpty(t, eventAcked)
	var missing int
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from unnest($1::uuid[]) a(id)
		where not exists (select 1 from jobs j where j.id = a.id)`, jobsAcked).Scan(&missing))
	require.Zero(t, missing, "every acknowledged job exists")
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from unnest($1::bigint[]) a(id)
		where not exists (select 1 from job_events e where e.id = a.id and e.job_id = $2)`, eventAcked, eventJob).Scan(&missing))
	require.Zero(t, missing, "every acknowledged event exists")
	var bare int
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from jobs j
		where not exists (select 1 from job_events e where e.job_id = j.id and e.type = 'status')`).Scan(&bare))
	require.Zero(t, bare, "every job has its creation event")
	t.Logf("%d jobs and %d events acknowledged before the kill", len(jobsAcked), len(eventAcked))
}
