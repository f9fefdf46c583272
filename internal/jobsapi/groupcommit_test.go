package jobsapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/jobsapi"
)

// post sends a request from any goroutine; a failed request comes back
// as status 0.
func (b *testBundle) postAsync(path, token string, body any, headers ...string) response {
	buf, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, b.url+path, bytes.NewReader(buf))
	if err != nil {
		return response{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Creates and event appends of one batch each get their own answer: a
// replay in the same batch returns the first job, a reused key with
// another body is a conflict, an invalid request fails alone.
func TestGroupCommitOverHTTP(t *testing.T) {
	t.Parallel()
	manual := batcher.Options{Manual: true}
	var creates *jobs.GroupCommit
	var appends *events.GroupCommit
	b := setup(t, func(o *options) {
		o.deps = func(d *jobsapi.Deps) {
			creates = jobs.NewGroupCommit(d.DB, jobs.GroupCommitOptions{Options: manual})
			appends = events.NewGroupCommit(d.DB, events.GroupCommitOptions{Options: manual})
			d.Creates, d.Appends = creates, appends
		}
	})
	t.Cleanup(func() { creates.Close(); appends.Close() })
	owner := b.newUser(t)
	_, token := b.client(t, &owner)

	// Each request waits in the batch before the next is sent, so the
	// batch holds them in this order.
	send := func(pending func() int, path string, body any, headers ...string) <-chan response {
		n := pending()
		out := make(chan response, 1)
		go func() { out <- b.postAsync(path, token, body, headers...) }()
		require.Eventually(t, func() bool { return pending() == n+1 }, 10*time.Second, time.Millisecond)
		return out
	}
	body := map[string]any{"source_url": videoURL, "params": map[string]any{"start": 1}}
	first := send(creates.Pending, "/v1/jobs", body, jobsapi.HeaderIdempotencyKey, "k1")
	replay := send(creates.Pending, "/v1/jobs", body, jobsapi.HeaderIdempotencyKey, "k1")
	other := send(creates.Pending, "/v1/jobs", map[string]any{"source_url": videoURL + "&t=2"}, jobsapi.HeaderIdempotencyKey, "k1")
	plain := send(creates.Pending, "/v1/jobs", body)
	b.do(t, http.MethodPost, "/v1/jobs", token, map[string]any{"params": map[string]any{}}).
		fails(t, http.StatusBadRequest, apperr.InvalidInput)
	require.Equal(t, 4, creates.Pending())
	creates.Flush()

	var j1, j2, j4 job
	(<-first).ok(t, http.StatusCreated, &j1)
	r := <-replay
	r.ok(t, http.StatusOK, &j2)
	require.Equal(t, "true", r.Header.Get(jobsapi.HeaderReplayed))
	require.Equal(t, j1.ID, j2.ID)
	(<-other).fails(t, http.StatusConflict, apperr.Conflict)
	(<-plain).ok(t, http.StatusCreated, &j4)
	require.NotEqual(t, j1.ID, j4.ID)
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), "select count(*) from jobs").Scan(&n))
	require.Equal(t, 2, n)

	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	wsend := func(path string, body any) <-chan response {
		n := appends.Pending()
		out := make(chan response, 1)
		go func() { out <- b.postAsync(path, worker, body) }()
		require.Eventually(t, func() bool { return appends.Pending() == n+1 }, 10*time.Second, time.Millisecond)
		return out
	}
	e1 := wsend("/v1/jobs/"+j1.ID.String()+"/events", map[string]any{"type": "worker.stage", "data": map[string]any{"n": 1}})
	e2 := wsend("/v1/jobs/00000000-0000-0000-0000-000000000001/events", map[string]any{"type": "worker.stage"})
	appends.Flush()
	var ev events.Event
	(<-e1).ok(t, http.StatusCreated, &ev)
	require.Equal(t, j1.ID, ev.JobID)
	(<-e2).fails(t, http.StatusNotFound, apperr.NotFound)
}
