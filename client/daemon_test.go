package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/client"
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon/daemontest"
)

// TestWorkerAndAPI runs a job through the real daemon with both clients:
// an idempotent create, a batch claim, heartbeats kept up in the
// background, progress and events, a result streamed to its signed
// upload URL with its Content-Type, completion, then the caller's view:
// listing in pages, events, the live stream, and the result's URL.
func TestWorkerAndAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	owner := e.newUser(t)
	api := newClient(t, e.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite))
	w := newClient(t, e.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("host-1/pid-7")

	first, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL, Params: map[string]int{"start": 1, "end": 4}, IdempotencyKey: "order-1"})
	require.NoError(t, err)
	require.False(t, first.Replayed)
	again, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL, Params: map[string]int{"start": 1, "end": 4}, IdempotencyKey: "order-1"})
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Job.ID, again.Job.ID)
	_, err = api.CreateJob(ctx, client.NewJob{SourceURL: videoURL, Params: map[string]int{"start": 2}, IdempotencyKey: "order-1"})
	require.ErrorIs(t, err, client.ErrConflict)
	for range 2 {
		_, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL}) // keys made by the SDK
		require.NoError(t, err)
	}

	// Keyset pages of one job each: every job once, newest first.
	var listed []string
	for j, err := range api.Jobs(ctx, client.ListOptions{PageSize: 1}) {
		require.NoError(t, err)
		listed = append(listed, j.ID)
	}
	require.Len(t, listed, 3)
	require.Equal(t, first.Job.ID, listed[2])

	jobs, err := w.Claim(ctx, 10)
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	require.Equal(t, first.Job.ID, jobs[0].ID, "oldest first")
	job := jobs[0]

	h := w.Hold(ctx, job.ID, client.HoldOptions{Interval: 50 * time.Millisecond})
	defer h.Stop()
	beat := *job.LastHeartbeatAt
	require.Eventually(t, func() bool {
		j, err := api.Job(ctx, job.ID)
		return err == nil && j.LastHeartbeatAt.After(beat)
	}, 10*time.Second, 20*time.Millisecond, "heartbeats are sent in the background")

	require.NoError(t, h.Progress(ctx, 40))
	_, err = w.Event(ctx, job.ID, "stage.encode", map[string]string{"codec": "h264"})
	require.NoError(t, err)

	clip := bytes.Repeat([]byte("clip-bytes "), 1000)
	up, err := w.UploadResult(ctx, job.ID, "clip.mp4", "video/mp4", bytes.NewReader(clip))
	require.NoError(t, err)
	require.Equal(t, "results", up.Bucket)
	// A plain reader (no length, no rewinding) streams too.
	up2, err := w.UploadResult(ctx, job.ID, "notes.txt", "text/plain", io.MultiReader(strings.NewReader("a"), strings.NewReader("b")))
	require.NoError(t, err)
	_, err = w.UploadResult(ctx, job.ID, "clip.mp4", "video/mp4", bytes.NewReader(clip))
	require.ErrorIs(t, err, client.ErrConflict, "an upload never replaces an object")

	done, err := w.Complete(ctx, job.ID, []string{up.Path, up2.Path})
	require.NoError(t, err)
	require.Equal(t, client.StatusDone, done.Status)
	again2, err := w.Complete(ctx, job.ID, []string{up.Path, up2.Path})
	require.NoError(t, err, "a repeated complete is answered with the done job")
	require.Equal(t, client.StatusDone, again2.Status)
	h.Stop()

	res, err := api.Results(ctx, job.ID, 300)
	require.NoError(t, err)
	require.Len(t, res.Results, 2)
	dl, err := api.Download(ctx, res.Results[0].URL)
	require.NoError(t, err)
	got, err := io.ReadAll(dl)
	dl.Close()
	require.NoError(t, err)
	require.Equal(t, clip, got)
	require.Equal(t, "video/mp4", dl.ContentType)

	var listedEvents []client.Event
	for ev, err := range api.Events(ctx, job.ID) {
		require.NoError(t, err)
		listedEvents = append(listedEvents, ev)
	}
	var streamed []client.Event
	for ev, err := range api.Stream(ctx, job.ID, client.StreamOptions{}) {
		require.NoError(t, err)
		streamed = append(streamed, ev)
	}
	require.Equal(t, eventIDs(listedEvents), eventIDs(streamed), "the stream ends after the final status")
	require.Equal(t, []string{"status", "status", "progress", "stage.encode", "status"}, eventTypes(streamed))

	_, err = api.Results(ctx, listed[0], 0)
	require.ErrorIs(t, err, client.ErrInvalidTransition, "no results before done")
	_, err = api.Job(ctx, "6d0e7e10-6c1f-4b2a-9c65-0d6a3f6c8a11")
	require.ErrorIs(t, err, client.ErrNotFound)
}

func eventIDs(evs []client.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func eventTypes(evs []client.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// TestHoldLostWhenCanceled: a job canceled while a worker holds it ends
// the Hold's context with a lost-job error, and the worker's reports say
// so too.
func TestHoldLostWhenCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	owner := e.newUser(t)
	api := newClient(t, e.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite))
	w := newClient(t, e.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("w-cancel")

	created, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL})
	require.NoError(t, err)
	jobs, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	h := w.Hold(ctx, jobs[0].ID, client.HoldOptions{Interval: 50 * time.Millisecond})
	defer h.Stop()
	require.NoError(t, h.Context().Err())
	require.NoError(t, h.Err())

	canceled, err := api.CancelJob(ctx, created.Job.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusCanceled, canceled.Status)

	select {
	case <-h.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the Hold did not notice the cancel")
	}
	require.True(t, client.IsJobLost(h.Err()))
	require.ErrorIs(t, context.Cause(h.Context()), client.ErrInvalidTransition)
	_, err = w.Complete(ctx, jobs[0].ID, nil)
	require.True(t, client.IsJobLost(err))
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusConflict, ce.Status)
	require.Equal(t, 1, ce.Attempts, "a lost job is never retried")

	_, err = api.CancelJob(ctx, created.Job.ID)
	require.ErrorIs(t, err, client.ErrInvalidTransition)
}

// TestRetries: 429 (after Retry-After) and 503 answers are retried, with
// backoff, up to the bound; a lost answer is retried only for calls that
// are safe to repeat, and a create repeated after a lost answer makes no
// second job.
func TestRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	f := newFaults(t, e.url)
	owner := e.newUser(t)
	api := newClient(t, f.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite))
	w := newClient(t, f.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("w-retry")

	// A create whose answer is lost is sent again with the same
	// Idempotency-Key: one job.
	lost := rule{match: "POST /v1/jobs", n: 1, status: http.StatusBadGateway, afterUpstream: true}
	f.add(lost)
	c, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL})
	require.NoError(t, err)
	require.Equal(t, 2, f.count("POST /v1/jobs"))
	n := 0
	for _, err := range api.Jobs(ctx, client.ListOptions{}) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 1, n, "the retried create made no second job")

	// 503 twice, then the daemon: one request reaches it.
	f.add(func() rule { r := unavailable(); r.match, r.n = "/claim", 2; return r }())
	jobs, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, c.Job.ID, jobs[0].ID)
	require.Equal(t, 1, f.count("/claim"))

	// 429 with Retry-After: 1 is waited out, then retried.
	f.add(func() rule { r := rateLimited("1"); r.match, r.n = "/heartbeat", 1; return r }())
	start := time.Now()
	_, err = w.Heartbeat(ctx, c.Job.ID)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After is honoured")

	// A Retry-After beyond the policy's bound is returned, not waited.
	f.add(func() rule { r := rateLimited("3600"); r.match, r.n = "/heartbeat", 1; return r }())
	_, err = w.Heartbeat(ctx, c.Job.ID)
	require.ErrorIs(t, err, client.ErrRateLimited)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, time.Hour, ce.RetryAfter)
	require.Equal(t, 1, ce.Attempts)

	// Bounded: a daemon that keeps answering 503 gets MaxAttempts tries.
	before := f.count("/progress")
	f.add(func() rule { r := unavailable(); r.match, r.n = "/progress", 100; return r }())
	_, err = w.Progress(ctx, c.Job.ID, 10)
	require.ErrorIs(t, err, client.ErrUnavailable)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 5, ce.Attempts)
	require.Equal(t, before, f.count("/progress"))
	f.mu.Lock()
	f.rules = nil
	f.mu.Unlock()

	// Fail is not repeated after a lost answer: the first one went
	// through (the job is back in the queue) and the error says so.
	f.add(rule{match: "/fail", n: 1, status: http.StatusBadGateway, afterUpstream: true})
	_, err = w.Fail(ctx, c.Job.ID, client.Failure{Code: "download_failed", Retryable: true})
	require.ErrorIs(t, err, client.ErrUnavailable)
	require.Equal(t, 1, f.count("/fail"))
	j, err := api.Job(ctx, c.Job.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusQueued, j.Status)

	// A 500 on a claim is not retried either (it may have taken jobs).
	f.add(rule{match: "/claim", n: 1, status: http.StatusInternalServerError, body: `{"ok":false,"code":"internal","message":"internal error"}`})
	_, err = w.Claim(ctx, 1)
	require.ErrorIs(t, err, client.ErrInternal)
	require.Equal(t, 1, f.count("/claim"), "the 500 came from the proxy; the claim was not sent again")

	// A cancel whose answer was lost: the retry finds the job canceled.
	f.add(rule{match: "/cancel", n: 1, status: http.StatusBadGateway, afterUpstream: true})
	canceled, err := api.CancelJob(ctx, c.Job.ID)
	require.NoError(t, err)
	require.Equal(t, client.StatusCanceled, canceled.Status)
	require.Equal(t, 2, f.count("/cancel"))

	// Context ends the waiting.
	f.add(func() rule { r := unavailable(); r.match, r.n = "/v1/jobs", 100; return r }())
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	slow, err := client.New(client.Config{BaseURL: f.url, APIKey: "clp_x", Retry: client.RetryPolicy{MinBackoff: time.Hour, MaxBackoff: time.Hour}})
	require.NoError(t, err)
	_, err = slow.JobsPage(cctx, client.ListOptions{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestStreamAcrossRestart: a live stream survives the daemon restarting
// in the middle of it: the client reconnects with Last-Event-ID and sees
// every event, including those written while no daemon ran, exactly once
// and in order.
func TestStreamAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := daemontest.Config(t)
	addr := freeAddr(t)
	stop := runDaemonOn(t, cfg, addr)
	e := envFor(t, nil, "http://"+addr, cfg.DatabaseURL)
	// The stream goes through a proxy that stays up while the daemon
	// restarts behind it, to see what each reconnect asks for.
	f := newFaults(t, "http://"+addr)
	base := f.url
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	owner := e.newUser(t)
	apiKey := e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite)
	workerKey := e.key(t, nil, apikeys.ScopeWorker)
	api := newClient(t, base, apiKey)
	w := newClient(t, base, workerKey).Worker("w-restart")

	created, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL})
	require.NoError(t, err)
	_, err = w.Claim(ctx, 1)
	require.NoError(t, err)

	type item struct {
		ev  client.Event
		err error
	}
	got := make(chan item, 100)
	go func() {
		defer close(got)
		for ev, err := range api.Stream(ctx, created.Job.ID, client.StreamOptions{}) {
			got <- item{ev, err}
		}
	}()
	next := func() client.Event {
		t.Helper()
		select {
		case it, ok := <-got:
			require.True(t, ok, "stream ended early")
			require.NoError(t, it.err)
			return it.ev
		case <-time.After(30 * time.Second):
			t.Fatal("no event within 30s")
		}
		return client.Event{}
	}
	var seen []client.Event
	seen = append(seen, next(), next()) // queued, processing
	_, err = w.Progress(ctx, created.Job.ID, 30)
	require.NoError(t, err)
	seen = append(seen, next())

	stop() // the daemon shuts down: its streams end without "end"
	// While no daemon runs, a worker's progress lands in the database
	// (as another replica would write it).
	_, err = e.pool.Exec(ctx, "update jobs set progress = 60, last_heartbeat_at = now() where id = $1", created.Job.ID)
	require.NoError(t, err)

	runDaemonOn(t, cfg, addr)
	_, err = w.Progress(ctx, created.Job.ID, 90)
	require.NoError(t, err)
	_, err = w.Complete(ctx, created.Job.ID, nil)
	require.NoError(t, err)
	for it := range got {
		require.NoError(t, it.err)
		seen = append(seen, it.ev)
	}

	var all []client.Event
	for ev, err := range api.Events(ctx, created.Job.ID) {
		require.NoError(t, err)
		all = append(all, ev)
	}
	require.Equal(t, eventIDs(all), eventIDs(seen), "no gap, no duplicate")
	var streams []http.Header // the stream's requests, not Events' pages
	for _, h := range f.sent("GET /v1/jobs/" + created.Job.ID + "/events") {
		if h.Get("Accept") == "text/event-stream" {
			streams = append(streams, h)
		}
	}
	require.GreaterOrEqual(t, len(streams), 2, "the stream reconnected")
	require.Empty(t, streams[0].Get("Last-Event-ID"))
	last := streams[len(streams)-1].Get("Last-Event-ID")
	require.Equal(t, strconv.FormatInt(seen[2].ID, 10), last, "the reconnect resumes after the last event seen")
	var progress []int
	for _, ev := range seen {
		if ev.Type == "progress" {
			var d struct{ Progress int }
			require.NoError(t, json.Unmarshal(ev.Data, &d))
			progress = append(progress, d.Progress)
		}
	}
	require.Equal(t, []int{30, 60, 90}, progress)
}

func TestStreamRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.newUser(t)
	api := newClient(t, e.url, e.key(t, &owner, apikeys.ScopeJobsRead))
	n := 0
	for _, err := range api.Stream(context.Background(), "6d0e7e10-6c1f-4b2a-9c65-0d6a3f6c8a11", client.StreamOptions{}) {
		require.ErrorIs(t, err, client.ErrNotFound)
		n++
	}
	require.Equal(t, 1, n)
	bad := newClient(t, e.url, "clp_nope")
	_, err := bad.JobsPage(context.Background(), client.ListOptions{})
	require.ErrorIs(t, err, client.ErrUnauthorized)
	require.False(t, strings.Contains(err.Error(), "clp_nope"), "errors never hold the key")
	require.False(t, errors.Is(err, client.ErrNotFound))
}

// TestTransferRetries: uploads to and downloads from signed URLs are
// retried on 503 when the body can be sent again (an io.Seeker), sent once
// otherwise; a missing object is not a lost job.
func TestTransferRetries(t *testing.T) {
	t.Parallel()
	proxyAddr := freeAddr(t)
	e := newEnv(t, func(c *config.Config) { c.PublicURL = "http://" + proxyAddr })
	f := newFaultsOn(t, e.url, proxyAddr)
	ctx := context.Background()
	owner := e.newUser(t)
	api := newClient(t, f.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite))
	w := newClient(t, f.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("w-transfer")
	_, err := api.CreateJob(ctx, client.NewJob{SourceURL: videoURL})
	require.NoError(t, err)
	jobs, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	id := jobs[0].ID

	storage503 := rule{status: http.StatusServiceUnavailable, n: 2,
		body: `{"ok":false,"code":"unavailable","message":"storage unavailable"}`}
	storage503.match = "/clip.bin"
	f.add(storage503)
	data := bytes.Repeat([]byte{7}, 70000)
	up, err := w.UploadResult(ctx, id, "clip.bin", "application/octet-stream", bytes.NewReader(data))
	require.NoError(t, err, "a seekable body is rewound and sent again")
	require.Equal(t, 1, f.count("/clip.bin"))

	f.add(func() rule { r := storage503; r.match, r.n = "/plain.bin", 1; return r }())
	_, err = w.UploadResult(ctx, id, "plain.bin", "", io.MultiReader(bytes.NewReader(data)))
	require.ErrorIs(t, err, client.ErrUnavailable, "a plain reader is sent once")
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Transfer)
	require.Equal(t, 1, ce.Attempts)

	_, err = w.Complete(ctx, id, []string{up.Path})
	require.NoError(t, err)
	res, err := api.Results(ctx, id, 0)
	require.NoError(t, err)
	f.add(func() rule { r := storage503; r.match, r.n = "/clip.bin", 2; return r }())
	dl, err := api.Download(ctx, res.Results[0].URL)
	require.NoError(t, err)
	got, err := io.ReadAll(dl)
	dl.Close()
	require.NoError(t, err)
	require.Equal(t, data, got)

	gone := strings.Replace(res.Results[0].URL, "/clip.bin", "/nope.bin", 1)
	_, err = api.Download(ctx, gone)
	require.Error(t, err)
	require.False(t, client.IsJobLost(err), "a refused or missing object is not a lost job")

	// A signed URL's token never reaches an error message.
	_, err = api.Download(ctx, "http://"+freeAddr(t)+"/storage/v1/object/sign/results/x.bin?token=s3cr3t-token")
	require.ErrorIs(t, err, client.ErrUnavailable)
	require.NotContains(t, err.Error(), "s3cr3t-token")
	err = api.Upload(ctx, "http://"+freeAddr(t)+"/storage/v1/object/upload/sign/results/x.bin?token=s3cr3t-token", "", strings.NewReader("x"))
	require.ErrorIs(t, err, client.ErrUnavailable)
	require.NotContains(t, err.Error(), "s3cr3t-token")
}

// TestKeysAdmin: a keys:admin key makes, lists, rotates and revokes keys;
// the tokens it gets work, and a revoked one stops at once.
func TestKeysAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	admin := newClient(t, e.url, e.key(t, nil, apikeys.ScopeAdmin))
	owner := e.newUser(t).String()

	// A key grants only scopes it holds, and only admin crosses owners.
	keysAdmin := newClient(t, e.url, e.key(t, nil, apikeys.ScopeKeysAdmin))
	_, err := keysAdmin.CreateKey(ctx, client.NewAPIKey{Name: "reader", Scopes: []string{"jobs:read"}, OwnerID: &owner})
	require.ErrorIs(t, err, client.ErrForbidden)

	issued, err := admin.CreateKey(ctx, client.NewAPIKey{Name: "reader", Scopes: []string{"jobs:read"}, OwnerID: &owner})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(issued.Token, "clp_"+issued.Key.LookupID+"_"))
	reader := newClient(t, e.url, issued.Token)
	_, err = reader.JobsPage(ctx, client.ListOptions{})
	require.NoError(t, err)
	_, err = reader.CreateJob(ctx, client.NewJob{SourceURL: videoURL})
	require.ErrorIs(t, err, client.ErrForbidden)

	keys, err := admin.Keys(ctx, owner)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Equal(t, issued.Key.ID, keys[0].ID)

	rot, err := admin.RotateKey(ctx, issued.Key.ID, 0)
	require.NoError(t, err)
	require.Equal(t, issued.Key.ID, *rot.Key.RotatedFrom)
	require.Equal(t, issued.Key.ID, rot.Previous.ID)
	_, err = newClient(t, e.url, rot.Token).JobsPage(ctx, client.ListOptions{})
	require.NoError(t, err)

	revoked, err := admin.RevokeKey(ctx, rot.Key.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	again, err := admin.RevokeKey(ctx, rot.Key.ID)
	require.NoError(t, err)
	require.Equal(t, revoked.RevokedAt, again.RevokedAt)
	_, err = newClient(t, e.url, rot.Token).JobsPage(ctx, client.ListOptions{})
	require.ErrorIs(t, err, client.ErrUnauthorized)
	got, err := admin.Key(ctx, rot.Key.ID)
	require.NoError(t, err)
	require.NotNil(t, got.RevokedAt)
}

// An API-key client uploads a source into its key's folder and makes a
// job of it; the worker reads the same bytes back. A source elsewhere is
// refused.
func TestUploadSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	owner := e.newUser(t)
	api := newClient(t, e.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite))
	w := newClient(t, e.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("host-2/pid-9")

	data := []byte("a source of a few bytes")
	u, err := api.UploadSource(ctx, "talk.mp4", "video/mp4", bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, owner.String()+"/talk.mp4", u.Path)
	_, err = api.UploadSource(ctx, "talk.mp4", "video/mp4", bytes.NewReader(data))
	require.ErrorIs(t, err, client.ErrConflict, "an upload never replaces an object")

	_, err = api.CreateJob(ctx, client.NewJob{SourceObject: uuid.NewString() + "/talk.mp4"})
	require.ErrorIs(t, err, client.ErrInvalidInput, "a source outside the key's folder")
	created, err := api.CreateJob(ctx, client.NewJob{SourceObject: u.Path})
	require.NoError(t, err)

	jobs, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, created.Job.ID, jobs[0].ID)
	src, err := w.DownloadSource(ctx, created.Job.ID)
	require.NoError(t, err)
	defer src.Close()
	got, err := io.ReadAll(src)
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.Equal(t, "video/mp4", src.ContentType)
}
