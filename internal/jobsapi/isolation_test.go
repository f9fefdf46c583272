package jobsapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

// uploadSource asks for a source upload URL with token, PUTs content to it
// and returns the object's path (the source_object to create a job with).
func (b *testBundle) uploadSource(t *testing.T, token, name, content string) string {
	t.Helper()
	var u signedURL
	b.do(t, "POST", "/v1/uploads", token, map[string]any{"name": name}).ok(t, http.StatusOK, &u)
	require.Equal(t, "sources", u.Bucket)
	req, err := http.NewRequest("PUT", u.URL, strings.NewReader(content))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return u.Path
}

// A jobs:write key gets upload URLs only into its own folder: its owner's,
// or keys/<key id>/ for a key without an owner.
func TestSourceUpload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.newUser(t)
	ownedKey, owned := b.client(t, &owner)
	serviceKey, service := b.client(t, nil)
	_, reader := b.newKey(t, &owner, apikeys.ScopeJobsRead)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)

	t.Run("IntoOwnersFolder", func(t *testing.T) {
		path := b.uploadSource(t, owned, "clips/in.mp4", "v1")
		require.Equal(t, owner.String()+"/clips/in.mp4", path)
		j := b.createJob(t, owned, map[string]any{"source_object": path})
		require.Equal(t, ownedKey.ID, *j.APIKeyID)
	})

	t.Run("IntoKeysFolder", func(t *testing.T) {
		path := b.uploadSource(t, service, "in.mp4", "v2")
		require.Equal(t, "keys/"+serviceKey.ID.String()+"/in.mp4", path)
		b.createJob(t, service, map[string]any{"source_object": path})
	})

	t.Run("BadNames", func(t *testing.T) {
		for _, name := range []string{"", "../x.mp4", "a//b.mp4", "a/./b.mp4", "/abs.mp4", "dir/", "vidéo.mp4", "a\\b.mp4", "a\nb"} {
			b.do(t, "POST", "/v1/uploads", service, map[string]any{"name": name}).
				fails(t, http.StatusBadRequest, apperr.InvalidInput)
		}
		b.do(t, "POST", "/v1/uploads", service, map[string]any{"name": "a.mp4", "ttl_seconds": 3601}).
			fails(t, http.StatusBadRequest, apperr.InvalidInput)
	})

	t.Run("NeedsJobsWrite", func(t *testing.T) {
		for _, token := range []string{reader, worker} {
			b.do(t, "POST", "/v1/uploads", token, map[string]any{"name": "a.mp4"}).
				fails(t, http.StatusForbidden, apperr.Forbidden)
		}
		b.do(t, "POST", "/v1/uploads", "", map[string]any{"name": "a.mp4"}).
			fails(t, http.StatusUnauthorized, apperr.Unauthorized)
	})
}

// No key creates a job on a source outside its own folder, and object
// names are what Supabase Storage accepts.
func TestCreateSourceIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	userA, userB := b.newUser(t), b.newUser(t)
	_, clientA := b.client(t, &userA)
	_, clientB := b.client(t, &userB)
	serviceKey, service := b.client(t, nil)
	otherKey, _ := b.client(t, nil)
	private := b.uploadSource(t, clientB, "private.mp4", "B's video")

	for name, c := range map[string]struct {
		token, source string
	}{
		"AOnBsUpload":           {clientA, private},
		"AEscapesWithDotDot":    {clientA, userA.String() + "/../" + private},
		"AOnAKeysFolder":        {clientA, "keys/" + serviceKey.ID.String() + "/x.mp4"},
		"KeyOnBsUpload":         {service, private},
		"KeyOnAnotherKeyFolder": {service, "keys/" + otherKey.ID.String() + "/x.mp4"},
		"KeyAtBucketRoot":       {service, "x.mp4"},
		"NonASCII":              {clientA, userA.String() + "/vidéo.mp4"},
		"EmptySegment":          {clientA, userA.String() + "//x.mp4"},
		"Backslash":             {clientA, userA.String() + `/a\b.mp4`},
	} {
		t.Run(name, func(t *testing.T) {
			b.do(t, "POST", "/v1/jobs", c.token, map[string]any{"source_object": c.source}).
				fails(t, http.StatusBadRequest, apperr.InvalidInput)
		})
	}
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), `select count(*) from jobs`).Scan(&n))
	require.Zero(t, n, "no job was made")

	// Every name Storage accepts is fine in the key's folder.
	b.createJob(t, clientA, map[string]any{"source_object": userA.String() + "/a b/(1) it's $5 & @home;+,=?!*:-_.mp4"})
}

// Results live under the job's prefix: upload URLs are signed only there
// and complete accepts only keys there.
func TestResultKeysBoundToJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j1 := b.createJob(t, client, nil)
	j2 := b.createJob(t, client, nil)
	require.Len(t, b.claim(t, worker, "w1", 2), 2)

	bad := map[string][]string{
		"BucketRoot":     {"clip.mp4"},
		"OtherJob":       {j2.ID.String() + "/clip.mp4"},
		"OtherJobByDots": {j1.ID.String() + "/../" + j2.ID.String() + "/clip.mp4"},
		"OneOfTwo":       {j1.ID.String() + "/a.mp4", "b.mp4"},
		"NonASCII":       {j1.ID.String() + "/clip–1.mp4"},
		"PrefixOnly":     {j1.ID.String() + "/"},
		"RandomJob":      {uuid.NewString() + "/clip.mp4"},
	}
	for name, keys := range bad {
		t.Run(name, func(t *testing.T) {
			b.post(t, worker, j1.ID, "upload-urls", map[string]any{"worker_id": "w1", "keys": keys}).
				fails(t, http.StatusBadRequest, apperr.InvalidInput)
			b.post(t, worker, j1.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": keys}).
				fails(t, http.StatusBadRequest, apperr.InvalidInput)
		})
	}
	var got job
	b.do(t, "GET", "/v1/jobs/"+j1.ID.String(), client, nil).ok(t, http.StatusOK, &got)
	require.Equal(t, "processing", got.Status, "no bad complete went through")

	keys := []string{j1.ID.String() + "/clip.mp4"}
	b.post(t, worker, j1.ID, "upload-urls", map[string]any{"worker_id": "w1", "keys": keys}).ok(t, http.StatusOK, nil)
	b.post(t, worker, j1.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": keys}).ok(t, http.StatusOK, &got)
	require.Equal(t, keys, got.ResultKeys)
}

// The original attack, end to end through the real daemon: user B uploads
// a private video; user A's key asks for a job on it, which the worker
// would have fetched with the service key and A would have downloaded the
// clip of. It is refused, and no job exists for any worker to run.
func TestDaemonRefusesJobOnAnotherUsersUpload(t *testing.T) {
	t.Parallel()
	b, _ := setupDaemon(t)
	userA, userB := b.newUser(t), b.newUser(t)
	_, clientA := b.client(t, &userA)
	_, clientB := b.client(t, &userB)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)

	private := b.uploadSource(t, clientB, "private.mp4", "B's private video")
	require.Equal(t, userB.String()+"/private.mp4", private)

	for _, source := range []string{private, userA.String() + "/../" + private} {
		b.do(t, "POST", "/v1/jobs", clientA, map[string]any{"source_object": source}).
			fails(t, http.StatusBadRequest, apperr.InvalidInput)
	}
	require.Empty(t, b.claim(t, worker, "w1", 10), "no job to run on B's upload")

	// B's own job on it works.
	j := b.createJob(t, clientB, map[string]any{"source_object": private})
	require.Equal(t, private, *j.SourceObject)
}
