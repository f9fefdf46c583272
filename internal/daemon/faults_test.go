package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgcluster"
)

// hangGuard is how long any request may take before the test calls it
// hung: far beyond every deadline the daemon is configured with.
const hangGuard = 30 * time.Second

var guarded = &http.Client{Timeout: hangGuard}

type answer struct {
	status int
	code   string
	jobID  uuid.UUID
	err    error
}

// call sends a request and decodes the envelope; err is set when there
// was no answer at all (the hang guard).
func call(url, method, path, key string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := guarded.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	var env struct {
		Code string `json:"code"`
		Data struct {
			ID uuid.UUID `json:"id"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	return answer{status: resp.StatusCode, code: env.Code, jobID: env.Data.ID}
}

// cheapHash keeps argon2id out of the way of the deadlines under test.
var cheapHash = apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

var jobBody = map[string]any{"source_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}

// postgresProcesses returns the postmaster of dataDir and its children.
func postgresProcesses(t *testing.T, dataDir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	require.NoError(t, err)
	postmaster, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	require.NoError(t, err)
	pids := []int{postmaster}
	dirs, err := filepath.Glob("/proc/[0-9]*/status")
	require.NoError(t, err)
	for _, path := range dirs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if ppid, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
				if n, _ := strconv.Atoi(strings.TrimSpace(ppid)); n == postmaster {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
					pids = append(pids, pid)
				}
				break
			}
		}
		f.Close()
	}
	return pids
}

func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// TestFrozenDatabase stops every PostgreSQL process (SIGSTOP, what a
// network partition looks like to the daemon) under load: requests in
// flight and new ones answer 503 unavailable within their deadline
// instead of hanging for as long as the freeze lasts; once the server
// runs again the daemon recovers, every job acknowledged with 201 exists
// and none is half-written (each has its creation event).
func TestFrozenDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "clipper-freeze-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Fast: true})
	require.NoError(t, err)
	var frozen []int
	t.Cleanup(func() {
		signalAll(frozen, syscall.SIGCONT)
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Stop(sctx)
	})
	dsn, err := database.CreateDatabase(ctx, cluster.DSN("postgres"), "clipper_freeze", "")
	require.NoError(t, err)
	_, err = migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)

	cfg := daemontest.Config(t)
	cfg.DatabaseURL = dsn
	cfg.RequestTimeout = 2 * time.Second
	cfg.DBStatementTimeout = time.Second
	cfg.DBConnectTimeout = 2 * time.Second
	cfg.DBAcquireTimeout = time.Second
	d := daemontest.Start(t, cfg)

	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: cheapHash})
	require.NoError(t, err)
	_, key, err := keys.Create(ctx, apikeys.CreateParams{Name: "load",
		Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite}})
	require.NoError(t, err)
	// The deadlines are short: on a busy machine a request may miss one
	// even before the freeze. That is a 503 too, and allowed.
	require.Eventually(t, func() bool {
		return call(d.URL, "POST", "/v1/jobs", key, jobBody).status == http.StatusCreated
	}, hangGuard, 50*time.Millisecond, "the daemon serves before the freeze")

	// Load: clients creating jobs until told to stop.
	var (
		mu      sync.Mutex
		answers []answer
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := call(d.URL, "POST", "/v1/jobs", key, jobBody)
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let the load start; not an assertion

	frozen = postgresProcesses(t, cluster.DataDir())
	signalAll(frozen, syscall.SIGSTOP)
	// While frozen, reads and writes answer 503 unavailable: each within
	// the hang guard, though the freeze lasts until all have answered.
	for range 3 {
		for _, r := range []struct{ method, path string }{{"GET", "/v1/jobs"}, {"POST", "/v1/jobs"}} {
			a := call(d.URL, r.method, r.path, key, jobBody)
			require.NoError(t, a.err, "%s %s hung while the database was frozen", r.method, r.path)
			require.Equal(t, http.StatusServiceUnavailable, a.status, "%s %s", r.method, r.path)
			require.Equal(t, "unavailable", a.code)
		}
	}
	close(stop)
	wg.Wait()
	signalAll(frozen, syscall.SIGCONT)

	// Recovery.
	require.Eventually(t, func() bool {
		return call(d.URL, "GET", "/v1/jobs", key, nil).status == http.StatusOK
	}, hangGuard, 100*time.Millisecond, "the daemon recovers once the database runs again")

	var acked []uuid.UUID
	byStatus := map[int]int{}
	for _, a := range answers {
		require.NoError(t, a.err, "a request under load hung while the database was frozen")
		byStatus[a.status]++
		if a.status == http.StatusCreated {
			acked = append(acked, a.jobID)
		} else {
			require.Equal(t, http.StatusServiceUnavailable, a.status, "under load: 201 or 503, nothing else")
		}
	}
	t.Logf("answers under load: %v", byStatus)
	require.NotZero(t, byStatus[http.StatusServiceUnavailable], "some load requests met the freeze")

	var found, orphans int
	require.NoError(t, pool.QueryRow(ctx, "select count(*) from jobs where id = any($1)", acked).Scan(&found))
	require.Equal(t, len(acked), found, "every acknowledged job survived")
	require.NoError(t, pool.QueryRow(ctx, `select count(*) from jobs j
		where not exists (select 1 from job_events e where e.job_id = j.id)`).Scan(&orphans))
	require.Zero(t, orphans, "no job without its creation event")
}

// TestFrozenListenConnection freezes only the daemon's LISTEN backend
// (SIGSTOP on its pid): the connection still looks up, and a revocation
// notified meanwhile never arrives. The daemon's active probe notices
// the silence, and from then on a cached key is trusted only for the
// short disconnected window: the revoked key is refused.
func TestFrozenListenConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := daemontest.Config(t)
	cfg.ListenProbeInterval = 300 * time.Millisecond
	cfg.ListenProbeTimeout = 300 * time.Millisecond
	cfg.KeyDisconnectedTTL = 500 * time.Millisecond
	d := daemontest.Start(t, cfg)
	require.Eventually(t, func() bool { return d.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
		hangGuard, 20*time.Millisecond)

	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: cheapHash})
	require.NoError(t, err)
	k, key, err := keys.Create(ctx, apikeys.CreateParams{Name: "soon revoked", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, d.Do(t, "GET", "/v1/jobs", key, nil).Status)

	var pid int
	require.NoError(t, pool.QueryRow(ctx, `select pid from pg_stat_activity
		where application_name = 'clipper-listen' and datname = current_database()`).Scan(&pid))
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Skip("the test server's backends are not local processes")
	}
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	_, err = keys.Revoke(ctx, k.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return d.Do(t, "GET", "/v1/jobs", key, nil).Status == http.StatusUnauthorized
	}, hangGuard, 50*time.Millisecond, "a revoked key is refused while the LISTEN backend is frozen")

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	require.Eventually(t, func() bool { return d.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
		hangGuard, 50*time.Millisecond, "LISTEN reconnects once the backend runs again")
}
