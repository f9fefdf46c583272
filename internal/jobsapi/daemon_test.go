package jobsapi_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon/daemontest"
)

// setupDaemon runs `clipper serve` as assembled by internal/daemon, with
// its own auth, local storage, LISTEN connection and timeouts.
func setupDaemon(t *testing.T, opts ...func(*config.Config)) (*testBundle, *daemontest.Instance) {
	t.Helper()
	cfg := daemontest.Config(t)
	for _, f := range opts {
		f(&cfg)
	}
	// Start points signed URLs at the daemon's real address only when
	// the public URL is unset; Config derives one from the default address.
	cfg.PublicURL = ""
	d := daemontest.Start(t, cfg)
	pool, err := pgxpool.New(context.Background(), d.Config.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{
		MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32,
	}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return d.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
		30*time.Second, 20*time.Millisecond, "ready once LISTEN is connected")
	return &testBundle{url: d.URL, dsn: d.Config.DatabaseURL, pool: pool, keys: keys}, d
}

// TestDaemon walks the whole API through the real daemon: a client makes
// a job idempotently and watches it stream, a worker runs it through
// signed storage URLs while the LISTEN connection is killed, the client
// downloads the results and resumes its stream, and shutdown ends streams
// at once.
func TestDaemon(t *testing.T) {
	t.Parallel()
	b, d := setupDaemon(t)
	ownerA, ownerB := b.newUser(t), b.newUser(t)
	_, clientA := b.client(t, &ownerA)
	_, clientB := b.client(t, &ownerB)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)

	// Idempotent create: 201, then 200 with the same job; another owner's
	// same Idempotency-Key is another job.
	body := map[string]any{"source_url": videoURL, "params": map[string]any{"start": 3, "end": 9}}
	var j, replay, other job
	first := b.do(t, "POST", "/v1/jobs", clientA, body, "Idempotency-Key", "k-1")
	first.ok(t, http.StatusCreated, &j)
	second := b.do(t, "POST", "/v1/jobs", clientA, body, "Idempotency-Key", "k-1")
	second.ok(t, http.StatusOK, &replay)
	require.Equal(t, j.ID, replay.ID)
	require.JSONEq(t, string(first.Body), string(second.Body))
	b.do(t, "POST", "/v1/jobs", clientB, body, "Idempotency-Key", "k-1").ok(t, http.StatusCreated, &other)
	require.NotEqual(t, j.ID, other.ID)

	// Visibility and listing.
	path := "/v1/jobs/" + j.ID.String()
	b.do(t, "GET", path, clientB, nil).fails(t, http.StatusNotFound, apperr.NotFound)
	require.Equal(t, []any{j.ID, other.ID}, []any{b.listAll(t, clientA, "", 1)[0], b.listAll(t, clientB, "", 1)[0]})
	b.do(t, "GET", "/v1/jobs", "", nil).fails(t, http.StatusUnauthorized, apperr.Unauthorized)

	// A stream from the start.
	s := b.openStream(t, j.ID, clientA, "")
	require.JSONEq(t, `{"to":"queued"}`, string(s.nextEvent(t).Data))

	claimed := b.claim(t, worker, "w1", 10)
	require.Len(t, claimed, 2)
	claimedEv := s.nextEvent(t)
	require.Contains(t, string(claimedEv.Data), `"to":"processing"`)
	// The other job goes back to the queue for later.
	b.post(t, worker, other.ID, "fail", map[string]any{"worker_id": "w1", "error_code": "busy", "retryable": true}).
		ok(t, http.StatusOK, nil)

	b.post(t, worker, j.ID, "progress", map[string]any{"worker_id": "w1", "progress": 30}).ok(t, http.StatusOK, nil)
	require.Equal(t, "progress", s.nextEvent(t).Type)

	// Kill the daemon's LISTEN connection and report at once, while it
	// reconnects: the stream still gets everything.
	for pct := 40; pct <= 60; pct += 10 {
		var killed int
		require.NoError(t, b.pool.QueryRow(context.Background(), `select count(*) from (
			select pg_terminate_backend(pid) from pg_stat_activity
			where application_name = 'clipper-listen' and datname = current_database()) k`).Scan(&killed))
		require.GreaterOrEqual(t, killed, 1)
		b.post(t, worker, j.ID, "progress", map[string]any{"worker_id": "w1", "progress": pct}).ok(t, http.StatusOK, nil)
		ev := s.nextEvent(t)
		require.Equal(t, "progress", ev.Type)
		require.JSONEq(t, `{"progress":`+strconv.Itoa(pct)+`}`, string(ev.Data))
		require.Eventually(t, func() bool { return d.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
			30*time.Second, 10*time.Millisecond)
	}

	// Results through signed URLs of the local storage backend.
	keys := []string{j.ID.String() + "/clip.mp4"}
	var uploads struct {
		Uploads []signedURL `json:"uploads"`
	}
	b.post(t, worker, j.ID, "upload-urls", map[string]any{"worker_id": "w1", "keys": keys}).ok(t, http.StatusOK, &uploads)
	req, err := http.NewRequest("PUT", uploads.Uploads[0].URL, strings.NewReader("the clip"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": keys}).ok(t, http.StatusOK, nil)
	done := s.nextEvent(t)
	require.Contains(t, string(done.Data), `"to":"done"`)
	s.requireEnd(t, "done")

	var res results
	b.do(t, "GET", path+"/result", clientA, nil).ok(t, http.StatusOK, &res)
	require.Len(t, res.Results, 1)
	resp, err = http.Get(res.Results[0].URL)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "the clip", string(got))
	b.do(t, "GET", path+"/result", clientB, nil).fails(t, http.StatusNotFound, apperr.NotFound)

	// Resuming after the claim event gets exactly the rest.
	all := b.dbEventIDs(t, j.ID)
	r := b.openStream(t, j.ID, clientA, "", "Last-Event-ID", strconv.FormatInt(claimedEv.ID, 10))
	var resumed []int64
	for range len(all) - 2 {
		resumed = append(resumed, r.nextEvent(t).ID)
	}
	require.Equal(t, all[2:], resumed)
	r.requireEnd(t, "done")

	// The other job: claimed again, then failed for good.
	require.Len(t, b.claim(t, worker, "w2", 10), 1)
	var failed job
	b.post(t, worker, other.ID, "fail", map[string]any{"worker_id": "w2", "error_code": "bad_video"}).ok(t, http.StatusOK, &failed)
	require.Equal(t, "failed", failed.Status)
	require.Equal(t, 2, failed.Attempts)

	// Shutdown ends open streams at once (without end: clients should
	// reconnect elsewhere) instead of holding the server's drain.
	live := b.createJob(t, clientA, nil)
	ls := b.openStream(t, live.ID, clientA, "")
	ls.nextEvent(t)
	start := time.Now()
	d.Stop(t)
	ls.requireClosed(t)
	require.Less(t, time.Since(start), 10*time.Second)
}
