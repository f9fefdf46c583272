package jobsapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

type signedURL struct {
	Bucket    string    `json:"bucket"`
	Path      string    `json:"path"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

type results struct {
	JobID   uuid.UUID   `json:"job_id"`
	Status  string      `json:"status"`
	Results []signedURL `json:"results"`
}

func (b *testBundle) claim(t *testing.T, token, workerID string, limit int) []job {
	t.Helper()
	var resp struct {
		Jobs []job `json:"jobs"`
	}
	b.do(t, "POST", "/v1/worker/claim", token, map[string]any{"worker_id": workerID, "limit": limit}).ok(t, http.StatusOK, &resp)
	require.NotNil(t, resp.Jobs)
	return resp.Jobs
}

func (b *testBundle) post(t *testing.T, token string, id uuid.UUID, action string, body any) response {
	t.Helper()
	return b.do(t, "POST", "/v1/jobs/"+id.String()+"/"+action, token, body)
}

func TestWorkerFlow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.newUser(t)
	_, client := b.client(t, &owner)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)

	require.Empty(t, b.claim(t, worker, "w1", 5))
	created := b.createJob(t, client, map[string]any{"source_url": videoURL, "max_attempts": 2})

	claimed := b.claim(t, worker, "w1", 5)
	require.Len(t, claimed, 1)
	j := claimed[0]
	require.Equal(t, created.ID, j.ID)
	require.Equal(t, "processing", j.Status)
	require.Equal(t, 1, j.Attempts)
	require.Equal(t, "w1", *j.WorkerID)
	require.Empty(t, b.claim(t, worker, "w2", 5), "a processing job is not claimed twice")

	b.post(t, worker, j.ID, "heartbeat", map[string]any{"worker_id": "w1"}).ok(t, http.StatusOK, nil)
	var p job
	b.post(t, worker, j.ID, "progress", map[string]any{"worker_id": "w1", "progress": 40}).ok(t, http.StatusOK, &p)
	require.Equal(t, 40, p.Progress)

	// A worker's own event.
	var ev event
	b.post(t, worker, j.ID, "events", map[string]any{"type": "stage.download", "data": map[string]any{"bytes": 1024}}).
		ok(t, http.StatusCreated, &ev)
	require.Equal(t, "stage.download", ev.Type)
	require.JSONEq(t, `{"bytes":1024}`, string(ev.Data))

	// Results are not there before the job is done.
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result", client, nil).fails(t, http.StatusConflict, apperr.InvalidTransition)

	// The worker uploads its results through signed upload URLs.
	keys := []string{j.ID.String() + "/clips/1.mp4", j.ID.String() + "/clips/2.mp4"}
	var uploads struct {
		Uploads []signedURL `json:"uploads"`
	}
	b.post(t, worker, j.ID, "upload-urls", map[string]any{"worker_id": "w1", "keys": keys}).ok(t, http.StatusOK, &uploads)
	require.Len(t, uploads.Uploads, 2)
	for i, u := range uploads.Uploads {
		require.Equal(t, "results", u.Bucket)
		require.Equal(t, keys[i], u.Path)
		require.WithinDuration(t, time.Now().Add(time.Minute), u.ExpiresAt, 10*time.Second)
		req, err := http.NewRequest("PUT", u.URL, strings.NewReader("clip "+keys[i]))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	var done job
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": keys}).ok(t, http.StatusOK, &done)
	require.Equal(t, "done", done.Status)
	require.Equal(t, 100, done.Progress)
	require.Equal(t, keys, done.ResultKeys)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *done.ExpiresAt, time.Minute, "retention sets expires_at")

	// The client downloads them through signed download URLs.
	var res results
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result", client, nil).ok(t, http.StatusOK, &res)
	require.Equal(t, j.ID, res.JobID)
	require.Equal(t, "done", res.Status)
	require.Len(t, res.Results, 2)
	for i, u := range res.Results {
		require.Equal(t, "results", u.Bucket)
		require.Equal(t, keys[i], u.Path)
		require.WithinDuration(t, time.Now().Add(time.Minute), u.ExpiresAt, 10*time.Second)
		resp, err := http.Get(u.URL)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "clip "+keys[i], string(body))
	}
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result?ttl_seconds=600", client, nil).ok(t, http.StatusOK, &res)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), res.Results[0].ExpiresAt, 10*time.Second)
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result?ttl_seconds=3600", client, nil).ok(t, http.StatusOK, &res)
	for _, q := range []string{"3601", "0", "-1", "1.5", "x"} {
		b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result?ttl_seconds="+url.QueryEscape(q), client, nil).
			fails(t, http.StatusBadRequest, apperr.InvalidInput)
	}
	// Another owner sees no results.
	other := b.newUser(t)
	_, otherClient := b.client(t, &other)
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result", otherClient, nil).fails(t, http.StatusNotFound, apperr.NotFound)

	// The finished job takes no more reports, except the same complete
	// again (a retry after a lost answer).
	var again job
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": keys}).ok(t, http.StatusOK, &again)
	require.Equal(t, done.ID, again.ID)
	require.Equal(t, "done", again.Status)
	b.post(t, worker, j.ID, "heartbeat", map[string]any{"worker_id": "w1"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w2", "result_keys": keys}).fails(t, http.StatusConflict, apperr.InvalidTransition)

	// The trace, as the client reads it.
	var evs eventsPage
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/events", client, nil).ok(t, http.StatusOK, &evs)
	require.Equal(t, []string{"status", "status", "progress", "stage.download", "status"}, types(evs.Events))
	require.JSONEq(t, `{"from":"processing","to":"done","attempt":1,"worker_id":"w1","result_keys":`+mustJSON(t, keys)+`}`,
		string(evs.Events[4].Data))
}

func TestWorkerSourceURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)

	// The client uploads its source into its own folder.
	path := b.uploadSource(t, client, "talk.mp4", "source video")
	require.Equal(t, "keys/"+key.ID.String()+"/talk.mp4", path)

	j := b.createJob(t, client, map[string]any{"source_object": path})
	b.post(t, worker, j.ID, "source-url", map[string]any{"worker_id": "w1"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
	require.Len(t, b.claim(t, worker, "w1", 1), 1)
	var u signedURL
	b.post(t, worker, j.ID, "source-url", map[string]any{"worker_id": "w1", "ttl_seconds": 300}).ok(t, http.StatusOK, &u)
	require.Equal(t, "sources", u.Bucket)
	require.Equal(t, path, u.Path)
	require.WithinDuration(t, time.Now().Add(5*time.Minute), u.ExpiresAt, 10*time.Second)
	resp, err := http.Get(u.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "source video", string(body))
	b.post(t, worker, j.ID, "source-url", map[string]any{"worker_id": "w2"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
}

func TestWorkerRetryThenFail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, map[string]any{"source_url": videoURL, "max_attempts": 3})
	require.Len(t, b.claim(t, worker, "w1", 1), 1)

	var retried job
	b.post(t, worker, j.ID, "fail", map[string]any{
		"worker_id": "w1", "error_code": "download_failed", "error_message": "HTTP 503 from origin",
		"retryable": true, "retry_delay_seconds": 0,
	}).ok(t, http.StatusOK, &retried)
	require.Equal(t, "queued", retried.Status)
	require.Nil(t, retried.WorkerID)
	require.Equal(t, "download_failed", *retried.ErrorCode)
	require.Nil(t, retried.ExpiresAt)

	// A retry delay keeps the job out of the queue until it passes.
	again := b.claim(t, worker, "w2", 1)
	require.Len(t, again, 1)
	require.Equal(t, 2, again[0].Attempts)
	b.post(t, worker, j.ID, "fail", map[string]any{
		"worker_id": "w2", "error_code": "download_failed", "retryable": true, "retry_delay_seconds": 3600,
	}).ok(t, http.StatusOK, &retried)
	require.Equal(t, "queued", retried.Status)
	require.WithinDuration(t, time.Now().Add(time.Hour), retried.RunAt, time.Minute)
	require.Empty(t, b.claim(t, worker, "w2", 1))
	_, err := b.pool.Exec(context.Background(), "update jobs set run_at = now() where id = $1", j.ID)
	require.NoError(t, err)

	require.Len(t, b.claim(t, worker, "w3", 1), 1)
	var failed job
	b.post(t, worker, j.ID, "fail", map[string]any{
		"worker_id": "w3", "error_code": "bad_video", "error_message": "no video stream", "retryable": false,
	}).ok(t, http.StatusOK, &failed)
	require.Equal(t, "failed", failed.Status)
	require.Equal(t, 3, failed.Attempts)
	require.Equal(t, "bad_video", *failed.ErrorCode)
	require.Equal(t, "no video stream", *failed.ErrorMessage)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *failed.ExpiresAt, time.Minute)
	require.Empty(t, b.claim(t, worker, "w4", 1))
	b.do(t, "GET", "/v1/jobs/"+j.ID.String()+"/result", client, nil).fails(t, http.StatusConflict, apperr.InvalidTransition)

	// Retryable, but out of attempts: failed for good.
	j2 := b.createJob(t, client, map[string]any{"source_url": videoURL, "max_attempts": 1})
	require.Len(t, b.claim(t, worker, "w1", 1), 1)
	b.post(t, worker, j2.ID, "fail", map[string]any{"worker_id": "w1", "error_code": "oom", "retryable": true}).
		ok(t, http.StatusOK, &failed)
	require.Equal(t, "failed", failed.Status)
}

func TestWorkerErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	_, admin := b.newKey(t, nil, apikeys.ScopeAdmin)
	j := b.createJob(t, client, nil)
	id := j.ID

	// Nothing is held before a claim.
	for action, body := range map[string]any{
		"heartbeat": map[string]any{"worker_id": "w1"},
		"progress":  map[string]any{"worker_id": "w1", "progress": 10},
		"complete":  map[string]any{"worker_id": "w1", "result_keys": []string{id.String() + "/a.mp4"}},
		"fail":      map[string]any{"worker_id": "w1", "error_code": "x"},
	} {
		b.post(t, worker, id, action, body).fails(t, http.StatusConflict, apperr.InvalidTransition)
	}

	require.Len(t, b.claim(t, worker, "w1", 1), 1)
	// Another worker's reports are refused.
	b.post(t, worker, id, "heartbeat", map[string]any{"worker_id": "w2"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
	b.post(t, worker, id, "complete", map[string]any{"worker_id": "w2"}).fails(t, http.StatusConflict, apperr.InvalidTransition)

	// Bad input.
	for _, c := range []struct {
		action string
		body   any
	}{
		{"heartbeat", map[string]any{}},
		{"heartbeat", map[string]any{"worker_id": "w1", "extra": 1}},
		{"progress", map[string]any{"worker_id": "w1"}},
		{"progress", map[string]any{"worker_id": "w1", "progress": 101}},
		{"progress", map[string]any{"worker_id": "w1", "progress": -1}},
		{"fail", map[string]any{"worker_id": "w1"}},
		{"fail", map[string]any{"worker_id": "w1", "error_code": "x", "retry_delay_seconds": -1}},
		{"fail", map[string]any{"worker_id": "w1", "error_code": "x", "retry_delay_seconds": 1 << 40}},
		{"complete", map[string]any{"worker_id": "w1", "result_keys": []string{""}}},
		{"events", map[string]any{"type": "status"}},
		{"events", map[string]any{"type": "progress"}},
		{"events", map[string]any{"type": "end"}},
		{"events", map[string]any{"type": "Bad Type"}},
		{"events", map[string]any{"type": "log", "data": []int{1}}},
	} {
		b.post(t, worker, id, c.action, c.body).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	}
	b.do(t, "POST", "/v1/worker/claim", worker, map[string]any{"worker_id": "w1", "limit": 0}).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.do(t, "POST", "/v1/worker/claim", worker, map[string]any{"limit": 1}).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.do(t, "POST", "/v1/jobs/nope/heartbeat", worker, map[string]any{"worker_id": "w1"}).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, worker, uuid.New(), "heartbeat", map[string]any{"worker_id": "w1"}).fails(t, http.StatusNotFound, apperr.NotFound)
	b.post(t, worker, uuid.New(), "events", map[string]any{"type": "log"}).fails(t, http.StatusNotFound, apperr.NotFound)

	// Signed URLs only for the holding worker, and a source URL only for
	// an uploaded job.
	b.post(t, worker, id, "upload-urls", map[string]any{"worker_id": "w2", "keys": []string{id.String() + "/a.mp4"}}).
		fails(t, http.StatusConflict, apperr.InvalidTransition)
	b.post(t, worker, id, "upload-urls", map[string]any{"worker_id": "w1", "keys": []string{}}).
		fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, worker, id, "upload-urls", map[string]any{"worker_id": "w1", "keys": []string{"../x"}}).
		fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, worker, id, "upload-urls", map[string]any{"worker_id": "w1", "keys": []string{"a.mp4"}, "ttl_seconds": 3601}).
		fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, worker, id, "source-url", map[string]any{"worker_id": "w1"}).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, worker, id, "source-url", map[string]any{}).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.post(t, client, id, "upload-urls", map[string]any{"worker_id": "w1", "keys": []string{id.String() + "/a.mp4"}}).
		fails(t, http.StatusForbidden, apperr.Forbidden)

	// Scopes: a client key cannot act as a worker; admin can.
	b.do(t, "POST", "/v1/worker/claim", client, map[string]any{"worker_id": "w1"}).fails(t, http.StatusForbidden, apperr.Forbidden)
	b.post(t, client, id, "heartbeat", map[string]any{"worker_id": "w1"}).fails(t, http.StatusForbidden, apperr.Forbidden)
	b.post(t, client, id, "events", map[string]any{"type": "log"}).fails(t, http.StatusForbidden, apperr.Forbidden)
	b.post(t, "", id, "heartbeat", map[string]any{"worker_id": "w1"}).fails(t, http.StatusUnauthorized, apperr.Unauthorized)
	b.post(t, admin, id, "heartbeat", map[string]any{"worker_id": "w1"}).ok(t, http.StatusOK, nil)

	// A canceled job: its worker learns at the next report.
	b.post(t, client, id, "cancel", nil).ok(t, http.StatusOK, nil)
	b.post(t, worker, id, "heartbeat", map[string]any{"worker_id": "w1"}).fails(t, http.StatusConflict, apperr.InvalidTransition)
	b.post(t, worker, id, "progress", map[string]any{"worker_id": "w1", "progress": 50}).fails(t, http.StatusConflict, apperr.InvalidTransition)
}

type eventsPage struct {
	Events    []event `json:"events"`
	NextAfter int64   `json:"next_after"`
}

func types(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
