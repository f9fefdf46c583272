package jobsapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("OwnerAndKey", func(t *testing.T) {
		t.Parallel()
		owner := b.newUser(t)
		key, token := b.client(t, &owner)
		r := b.do(t, "POST", "/v1/jobs", token, map[string]any{
			"source_url": videoURL, "params": map[string]any{"start": 10, "end": 20},
			"max_attempts": 5, "expires_in_seconds": 3600,
		})
		var j job
		r.ok(t, http.StatusCreated, &j)
		require.Equal(t, "/v1/jobs/"+j.ID.String(), r.Header.Get("Location"))
		require.Equal(t, "queued", j.Status)
		require.Equal(t, "youtube", j.SourceType)
		require.Equal(t, owner, *j.OwnerID)
		require.Equal(t, key.ID, *j.APIKeyID)
		require.Equal(t, 5, j.MaxAttempts)
		require.JSONEq(t, `{"start":10,"end":20}`, string(j.Params))
		require.WithinDuration(t, time.Now().Add(time.Hour), *j.ExpiresAt, time.Minute)
	})

	t.Run("ServiceKeyUpload", func(t *testing.T) {
		t.Parallel()
		key, token := b.client(t, nil)
		j := b.createJob(t, token, map[string]any{"source_object": "keys/" + key.ID.String() + "/a.mp4"})
		require.Nil(t, j.OwnerID)
		require.Equal(t, key.ID, *j.APIKeyID)
		require.Equal(t, "upload", j.SourceType)
		require.Equal(t, 3, j.MaxAttempts)
		require.JSONEq(t, `{}`, string(j.Params))
	})

	t.Run("Idempotency", func(t *testing.T) {
		t.Parallel()
		owner := b.newUser(t)
		_, token := b.client(t, &owner)
		body := map[string]any{"source_url": videoURL, "params": map[string]any{"a": 1, "b": []int{1, 2}}}
		first := b.do(t, "POST", "/v1/jobs", token, body, "Idempotency-Key", "order-42")
		var j1 job
		first.ok(t, http.StatusCreated, &j1)
		require.Empty(t, first.Header.Get("Idempotent-Replayed"))

		// Same key, same owner: the same job, 200, the same body.
		again := b.do(t, "POST", "/v1/jobs", token,
			`{"params": {"b": [1, 2], "a": 1}, "source_url": "`+videoURL+`"}`, "Idempotency-Key", "order-42")
		var j2 job
		again.ok(t, http.StatusOK, &j2)
		require.Equal(t, j1.ID, j2.ID)
		require.JSONEq(t, string(first.Body), string(again.Body))
		require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		require.Equal(t, "/v1/jobs/"+j1.ID.String(), again.Header.Get("Location"))

		// Another key of the same owner shares the owner's idempotency scope.
		_, sibling := b.client(t, &owner)
		var j3 job
		b.do(t, "POST", "/v1/jobs", sibling, body, "Idempotency-Key", "order-42").ok(t, http.StatusOK, &j3)
		require.Equal(t, j1.ID, j3.ID)

		// Another owner's key: a different job.
		other := b.newUser(t)
		_, otherToken := b.client(t, &other)
		var j4 job
		b.do(t, "POST", "/v1/jobs", otherToken, body, "Idempotency-Key", "order-42").ok(t, http.StatusCreated, &j4)
		require.NotEqual(t, j1.ID, j4.ID)

		// Two service keys: each its own scope.
		_, svc1 := b.client(t, nil)
		_, svc2 := b.client(t, nil)
		var s1, s1again, s2 job
		b.do(t, "POST", "/v1/jobs", svc1, body, "Idempotency-Key", "order-42").ok(t, http.StatusCreated, &s1)
		b.do(t, "POST", "/v1/jobs", svc1, body, "Idempotency-Key", "order-42").ok(t, http.StatusOK, &s1again)
		b.do(t, "POST", "/v1/jobs", svc2, body, "Idempotency-Key", "order-42").ok(t, http.StatusCreated, &s2)
		require.Equal(t, s1.ID, s1again.ID)
		require.NotEqual(t, s1.ID, s2.ID)
		require.NotEqual(t, j1.ID, s1.ID)

		// The same key for a different request is refused, not answered
		// with the first job.
		b.do(t, "POST", "/v1/jobs", token, map[string]any{"source_url": videoURL, "params": map[string]any{"a": 2}},
			"Idempotency-Key", "order-42").fails(t, http.StatusConflict, apperr.Conflict)
		b.do(t, "POST", "/v1/jobs", token, map[string]any{"source_object": owner.String() + "/x.mp4"},
			"Idempotency-Key", "order-42").fails(t, http.StatusConflict, apperr.Conflict)

		// Without the header every create is new.
		a, c := b.createJob(t, token, body), b.createJob(t, token, body)
		require.NotEqual(t, a.ID, c.ID)
	})

	t.Run("ConcurrentReplays", func(t *testing.T) {
		t.Parallel()
		owner := b.newUser(t)
		_, token := b.client(t, &owner)
		const n = 8
		type result struct {
			status int
			id     uuid.UUID
		}
		results := make(chan result, n)
		for range n {
			go func() {
				var j job
				status := b.send("POST", "/v1/jobs", token, map[string]any{"source_url": videoURL}, &j, "Idempotency-Key", "burst")
				results <- result{status, j.ID}
			}()
		}
		created := 0
		ids := map[uuid.UUID]bool{}
		for range n {
			r := <-results
			require.Contains(t, []int{http.StatusCreated, http.StatusOK}, r.status)
			if r.status == http.StatusCreated {
				created++
			}
			ids[r.id] = true
		}
		require.Equal(t, 1, created)
		require.Len(t, ids, 1)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		_, token := b.client(t, nil)
		for name, body := range map[string]any{
			"NoSource":       map[string]any{},
			"BothSources":    map[string]any{"source_url": videoURL, "source_object": "a.mp4"},
			"BadURL":         map[string]any{"source_url": "ftp://example.com/x"},
			"ParamsNotObj":   map[string]any{"source_url": videoURL, "params": []int{1}},
			"MaxAttempts":    map[string]any{"source_url": videoURL, "max_attempts": 101},
			"ExpiresInZero":  map[string]any{"source_url": videoURL, "expires_in_seconds": 0},
			"UnknownField":   map[string]any{"source_url": videoURL, "priority": 1},
			"NotJSON":        "{",
			"WrongFieldType": map[string]any{"source_url": 7},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b.do(t, "POST", "/v1/jobs", token, body).fails(t, http.StatusBadRequest, apperr.InvalidInput)
			})
		}
		long := make([]byte, 256)
		for i := range long {
			long[i] = 'k'
		}
		b.do(t, "POST", "/v1/jobs", token, map[string]any{"source_url": videoURL}, "Idempotency-Key", string(long)).
			fails(t, http.StatusBadRequest, apperr.InvalidInput)
	})

	t.Run("Auth", func(t *testing.T) {
		t.Parallel()
		b.do(t, "POST", "/v1/jobs", "", map[string]any{"source_url": videoURL}).fails(t, http.StatusUnauthorized, apperr.Unauthorized)
		b.do(t, "POST", "/v1/jobs", "clp_nonsense", map[string]any{"source_url": videoURL}).fails(t, http.StatusUnauthorized, apperr.Unauthorized)
		_, readOnly := b.newKey(t, nil, apikeys.ScopeJobsRead)
		b.do(t, "POST", "/v1/jobs", readOnly, map[string]any{"source_url": videoURL}).fails(t, http.StatusForbidden, apperr.Forbidden)
		_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
		b.do(t, "POST", "/v1/jobs", worker, map[string]any{"source_url": videoURL}).fails(t, http.StatusForbidden, apperr.Forbidden)
	})
}

func TestGetCancelAndVisibility(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ownerA, ownerB := b.newUser(t), b.newUser(t)
	_, keyA := b.client(t, &ownerA)
	_, keyA2 := b.client(t, &ownerA)
	_, keyB := b.client(t, &ownerB)
	_, svc := b.client(t, nil)
	_, svc2 := b.client(t, nil)
	_, admin := b.newKey(t, nil, apikeys.ScopeAdmin)
	_, writeOnly := b.newKey(t, &ownerA, apikeys.ScopeJobsWrite)

	jobA := b.createJob(t, keyA, nil)
	jobSvc := b.createJob(t, svc, nil)

	get := func(token string, id uuid.UUID) response { return b.do(t, "GET", "/v1/jobs/"+id.String(), token, nil) }

	var got job
	get(keyA, jobA.ID).ok(t, http.StatusOK, &got)
	require.Equal(t, jobA.ID, got.ID)
	get(keyA2, jobA.ID).ok(t, http.StatusOK, &got) // the owner's other key
	get(admin, jobA.ID).ok(t, http.StatusOK, &got)
	get(admin, jobSvc.ID).ok(t, http.StatusOK, &got)
	get(svc, jobSvc.ID).ok(t, http.StatusOK, &got)

	// Another owner's job reads exactly like a missing one.
	notFound := get(keyB, jobA.ID)
	notFound.fails(t, http.StatusNotFound, apperr.NotFound)
	missing := get(keyB, uuid.New())
	missing.fails(t, http.StatusNotFound, apperr.NotFound)
	require.JSONEq(t, string(missing.Body), string(notFound.Body))
	get(svc2, jobSvc.ID).fails(t, http.StatusNotFound, apperr.NotFound)
	get(keyA, jobSvc.ID).fails(t, http.StatusNotFound, apperr.NotFound)
	get(svc, jobA.ID).fails(t, http.StatusNotFound, apperr.NotFound)

	get(keyA, uuid.Nil).fails(t, http.StatusNotFound, apperr.NotFound)
	b.do(t, "GET", "/v1/jobs/not-a-uuid", keyA, nil).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.do(t, "POST", "/v1/jobs/not-a-uuid/cancel", keyA, nil).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	get(writeOnly, jobA.ID).fails(t, http.StatusForbidden, apperr.Forbidden)
	get("", jobA.ID).fails(t, http.StatusUnauthorized, apperr.Unauthorized)

	// Cancel: only by someone who sees the job; only once.
	cancel := func(token string, id uuid.UUID) response {
		return b.do(t, "POST", "/v1/jobs/"+id.String()+"/cancel", token, nil)
	}
	cancel(keyB, jobA.ID).fails(t, http.StatusNotFound, apperr.NotFound)
	_, readOnly := b.newKey(t, &ownerA, apikeys.ScopeJobsRead)
	cancel(readOnly, jobA.ID).fails(t, http.StatusForbidden, apperr.Forbidden)
	var canceled job
	cancel(writeOnly, jobA.ID).ok(t, http.StatusOK, &canceled)
	require.Equal(t, "canceled", canceled.Status)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), *canceled.ExpiresAt, time.Minute)
	cancel(keyA, jobA.ID).fails(t, http.StatusConflict, apperr.InvalidTransition)
	get(keyA, jobA.ID).ok(t, http.StatusOK, &got)
	require.Equal(t, "canceled", got.Status)
}

type page struct {
	Jobs       []job   `json:"jobs"`
	NextCursor *string `json:"next_cursor"`
}

// listAll follows next_cursor to the end and returns the ids in order.
func (b *testBundle) listAll(t *testing.T, token, query string, limit int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	cursor := ""
	for range 100 {
		path := "/v1/jobs?limit=" + jsonID(int64(limit)) + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var p page
		b.do(t, "GET", path, token, nil).ok(t, http.StatusOK, &p)
		require.LessOrEqual(t, len(p.Jobs), limit)
		for _, j := range p.Jobs {
			ids = append(ids, j.ID)
		}
		if p.NextCursor == nil {
			return ids
		}
		require.Len(t, p.Jobs, limit, "a page before the last is full")
		cursor = *p.NextCursor
	}
	t.Fatalf("listing did not end")
	return nil
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ownerA, ownerB := b.newUser(t), b.newUser(t)
	_, keyA := b.client(t, &ownerA)
	_, keyA2 := b.client(t, &ownerA)
	_, keyB := b.client(t, &ownerB)
	_, svc := b.client(t, nil)
	_, admin := b.newKey(t, nil, apikeys.ScopeAdmin)

	var a []uuid.UUID // newest first
	for i := range 7 {
		token := keyA
		if i%2 == 1 {
			token = keyA2 // the owner's jobs, whichever key made them
		}
		a = append([]uuid.UUID{b.createJob(t, token, nil).ID}, a...)
	}
	jobB := b.createJob(t, keyB, nil)
	jobSvc := b.createJob(t, svc, nil)
	for _, id := range []uuid.UUID{a[1], a[4]} {
		b.do(t, "POST", "/v1/jobs/"+id.String()+"/cancel", keyA, nil).ok(t, http.StatusOK, nil)
	}

	require.Equal(t, a, b.listAll(t, keyA, "", 3))
	require.Equal(t, a, b.listAll(t, keyA2, "", 7))
	require.Equal(t, a, b.listAll(t, keyA, "", 200))
	require.Equal(t, []uuid.UUID{a[1], a[4]}, b.listAll(t, keyA, "&status=canceled", 1))
	require.Equal(t, []uuid.UUID{a[0], a[2], a[3], a[5], a[6]}, b.listAll(t, keyA, "&status=queued", 2))
	require.Empty(t, b.listAll(t, keyA, "&status=done", 2))
	require.Equal(t, []uuid.UUID{jobB.ID}, b.listAll(t, keyB, "", 10))
	require.Equal(t, []uuid.UUID{jobSvc.ID}, b.listAll(t, svc, "", 10))
	require.Equal(t, []uuid.UUID{jobSvc.ID}, b.listAll(t, svc, "&status=queued", 10))

	// Admin: every owner's jobs, one status at a time.
	all := b.listAll(t, admin, "&status=queued", 2)
	require.Len(t, all, 7)
	require.Equal(t, []uuid.UUID{jobSvc.ID, jobB.ID}, all[:2])
	b.do(t, "GET", "/v1/jobs", admin, nil).fails(t, http.StatusBadRequest, apperr.InvalidInput)

	// The default page.
	var p page
	b.do(t, "GET", "/v1/jobs", keyA, nil).ok(t, http.StatusOK, &p)
	require.Len(t, p.Jobs, 7)
	require.Nil(t, p.NextCursor)
	require.Contains(t, string(b.do(t, "GET", "/v1/jobs", keyA, nil).Body), `"next_cursor":null`)

	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?status=running", "?cursor=abc", "?cursor=AAAA"} {
		r := b.do(t, "GET", "/v1/jobs"+q, keyA, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "query %s: %s", q, r.Body)
	}
	_, writeOnly := b.newKey(t, &ownerA, apikeys.ScopeJobsWrite)
	b.do(t, "GET", "/v1/jobs", writeOnly, nil).fails(t, http.StatusForbidden, apperr.Forbidden)
}
