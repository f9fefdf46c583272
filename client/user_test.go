package client_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/client"
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
)

const (
	testJWTSecret     = "super-secret-jwt-token-with-at-least-32-characters-long"
	testAnonKey       = "anon-key-for-tests"
	testWebhookSecret = "test-webhook-secret-0123456789"
)

// userEnv is a real daemon, and the PostgREST and Storage emulation on
// the same database.
type userEnv struct {
	*env
	rest *pgrstEmulator
}

func newUserEnv(t *testing.T) *userEnv {
	t.Helper()
	e := newEnv(t, func(c *config.Config) { c.WebhookSecret = testWebhookSecret })
	rest := newPgrstEmulator(t, e.pool, []byte(testJWTSecret), e.d.Config.StorageDir, e.url+"/webhooks/supabase", testWebhookSecret)
	return &userEnv{env: e, rest: rest}
}

func (u *userEnv) user(t *testing.T, id uuid.UUID) *client.User {
	t.Helper()
	c, err := client.NewUser(client.UserConfig{SupabaseURL: u.rest.url, AnonKey: testAnonKey, AccessToken: u.rest.token(id.String(), "authenticated"),
		Retry: client.RetryPolicy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	require.NoError(t, err)
	return c
}

// TestUserClient: a user's reads and writes through PostgREST, where RLS
// decides what each user sees and may do.
func TestUserClient(t *testing.T) {
	t.Parallel()
	e := newUserEnv(t)
	ctx := context.Background()
	a, b := e.newUser(t), e.newUser(t)
	ua, ub := e.user(t, a), e.user(t, b)
	require.Equal(t, a.String(), ua.UserID())

	var mine []string
	for i := range 5 {
		j, err := ua.CreateJob(ctx, client.UserJob{SourceURL: videoURL, Params: map[string]int{"n": i}})
		require.NoError(t, err)
		require.Equal(t, a.String(), *j.OwnerID, "owner_id comes from auth.uid()")
		require.Equal(t, client.StatusQueued, j.Status)
		mine = append(mine, j.ID)
	}
	theirs, err := ub.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "order-7"})
	require.NoError(t, err)
	replay, err := ub.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "order-7"})
	require.NoError(t, err, "a repeated create with the same key returns the first job")
	require.Equal(t, theirs.ID, replay.ID)
	_, err = ub.CreateJob(ctx, client.UserJob{SourceURL: "https://example.com/other", IdempotencyKey: "order-7"})
	require.ErrorIs(t, err, client.ErrConflict, "the same key for another request")
	_, err = ub.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "order-7", Params: map[string]int{"start": 1}})
	require.ErrorIs(t, err, client.ErrConflict, "the same key with other params")

	// Keyset pages of two: each of A's jobs once, newest first; none of B's.
	var listed []string
	for j, err := range ua.Jobs(ctx, client.UserListOptions{PageSize: 2}) {
		require.NoError(t, err)
		listed = append(listed, j.ID)
	}
	require.Equal(t, []string{mine[4], mine[3], mine[2], mine[1], mine[0]}, listed)

	// One job; another user's is not_found exactly like a missing one.
	j, err := ua.Job(ctx, mine[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"n":0}`, string(j.Params))
	_, err = ua.Job(ctx, theirs.ID)
	require.ErrorIs(t, err, client.ErrNotFound)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 406, ce.Status)
	require.Equal(t, "PGRST116", ce.PostgREST.Code)
	require.Equal(t, "The result contains 0 rows", ce.PostgREST.Details)

	// Cancel: own job, idempotent; another's is not_found.
	c1, err := ua.CancelJob(ctx, mine[1])
	require.NoError(t, err)
	require.Equal(t, client.StatusCanceled, c1.Status)
	c1, err = ua.CancelJob(ctx, mine[1])
	require.NoError(t, err)
	require.Equal(t, client.StatusCanceled, c1.Status)
	_, err = ua.CancelJob(ctx, theirs.ID)
	require.ErrorIs(t, err, client.ErrNotFound)

	// A worker runs mine[0] to done through the daemon; cancelling it
	// then is an illegal transition, refused by the database's trigger.
	w := newClient(t, e.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("w-user")
	claimed, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, mine[0], claimed[0].ID)
	_, err = w.Progress(ctx, mine[0], 50)
	require.NoError(t, err)
	_, err = w.Complete(ctx, mine[0], nil)
	require.NoError(t, err)
	_, err = ua.CancelJob(ctx, mine[0])
	require.ErrorIs(t, err, client.ErrInvalidTransition)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "CL001", ce.PostgREST.Code)
	require.Equal(t, 400, ce.Status)

	// Filter by status.
	var done []string
	for j, err := range ua.Jobs(ctx, client.UserListOptions{Statuses: []client.Status{client.StatusDone, client.StatusCanceled}}) {
		require.NoError(t, err)
		done = append(done, j.ID)
	}
	require.ElementsMatch(t, []string{mine[0], mine[1]}, done)

	// Events in order, the same the daemon serves; pages of one.
	api := newClient(t, e.url, e.key(t, &a, apikeys.ScopeJobsRead))
	var want, got []int64
	for ev, err := range api.Events(ctx, mine[0]) {
		require.NoError(t, err)
		want = append(want, ev.ID)
	}
	for ev, err := range ua.Events(ctx, mine[0], 1) {
		require.NoError(t, err)
		got = append(got, ev.ID)
	}
	require.Len(t, want, 4) // queued, processing, progress, done
	require.Equal(t, want, got)
	for _, err := range ub.Events(ctx, mine[0], 0) {
		t.Fatalf("B sees an event of A's job: %v", err)
	}

	// A check constraint (23514) is invalid_input.
	_, err = ua.CreateJob(ctx, client.UserJob{SourceURL: "ftp://example.com/x.mp4"})
	require.ErrorIs(t, err, client.ErrInvalidInput)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "23514", ce.PostgREST.Code)
	require.Equal(t, 400, ce.Status)
}

// TestUserClientAuth: bad tokens and roles map to unauthorized, and two
// users' clients used at once never see each other's rows (each has its
// own postgrest-go client, so no shared Authorization header).
func TestUserClientAuth(t *testing.T) {
	t.Parallel()
	e := newUserEnv(t)
	ctx := context.Background()

	anon, err := client.NewUser(client.UserConfig{SupabaseURL: e.rest.url, AnonKey: testAnonKey, AccessToken: e.rest.token(uuid.NewString(), "anon")})
	require.NoError(t, err)
	_, err = anon.JobsPage(ctx, client.UserListOptions{})
	require.ErrorIs(t, err, client.ErrUnauthorized, "42501 for anon is 401")
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "42501", ce.PostgREST.Code)

	forged := e.rest.token(uuid.NewString(), "authenticated")
	forged = forged[:len(forged)-4] + "AAAA"
	bad, err := client.NewUser(client.UserConfig{SupabaseURL: e.rest.url, AnonKey: testAnonKey, AccessToken: forged})
	require.NoError(t, err)
	_, err = bad.JobsPage(ctx, client.UserListOptions{})
	require.ErrorIs(t, err, client.ErrUnauthorized)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "PGRST301", ce.PostgREST.Code)
	require.NotContains(t, err.Error(), forged)

	_, err = client.NewUser(client.UserConfig{SupabaseURL: e.rest.url, AnonKey: testAnonKey, AccessToken: "not-a-jwt"})
	require.ErrorIs(t, err, client.ErrUnauthorized)

	users := []uuid.UUID{e.newUser(t), e.newUser(t), e.newUser(t)}
	clients := make([]*client.User, len(users))
	for i, id := range users {
		clients[i] = e.user(t, id)
		_, err := clients[i].CreateJob(ctx, client.UserJob{SourceURL: videoURL})
		require.NoError(t, err)
	}
	// A refreshed token makes a new User; the first keeps its own.
	other, err := clients[0].WithAccessToken(e.rest.token(users[1].String(), "authenticated"))
	require.NoError(t, err)
	require.Equal(t, users[1].String(), other.UserID())
	p1, err := other.JobsPage(ctx, client.UserListOptions{})
	require.NoError(t, err)
	require.Equal(t, users[1].String(), *p1.Jobs[0].OwnerID)

	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				p, err := clients[i].JobsPage(ctx, client.UserListOptions{})
				if err != nil || len(p.Jobs) != 1 || *p.Jobs[0].OwnerID != users[i].String() {
					t.Errorf("user %d saw %v, %v", i, p.Jobs, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestUserRequestShapes checks the requests the User client sends
// against PostgREST's documented syntax: paths, select, filters, logic
// trees, order, limit, the singular Accept type, Prefer, the schema
// profile headers, apikey and Authorization.
func TestUserRequestShapes(t *testing.T) {
	t.Parallel()
	e := newUserEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	ua := e.user(t, a)
	j, err := ua.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "k1"})
	require.NoError(t, err)
	_, err = ua.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "k2"})
	require.NoError(t, err)
	e.rest.reset()

	p, err := ua.JobsPage(ctx, client.UserListOptions{PageSize: 1, Statuses: []client.Status{client.StatusQueued, client.StatusDone}})
	require.NoError(t, err)
	require.NotNil(t, p.Next)
	_, err = ua.JobsPage(ctx, client.UserListOptions{PageSize: 1, Statuses: []client.Status{client.StatusQueued}, After: p.Next})
	require.NoError(t, err)
	_, err = ua.Job(ctx, j.ID)
	require.NoError(t, err)
	for _, err := range ua.Events(ctx, j.ID, 0) {
		require.NoError(t, err)
	}
	_, err = ua.CancelJob(ctx, j.ID)
	require.NoError(t, err)
	_, err = ua.CreateJob(ctx, client.UserJob{SourceURL: videoURL, IdempotencyKey: "k3", Params: map[string]int{"start": 1}})
	require.NoError(t, err)

	reqs := e.rest.requests()
	require.Len(t, reqs, 6)
	token := "Bearer " + e.rest.token(a.String(), "authenticated")
	for _, r := range reqs {
		require.Equal(t, testAnonKey, r.Header.Get("apikey"))
		require.Equal(t, strings.SplitN(token, ".", 2)[0], strings.SplitN(r.Header.Get("Authorization"), ".", 2)[0])
		require.Len(t, r.Header.Values("Authorization"), 1)
	}
	q := func(i int) url.Values {
		v, err := url.ParseQuery(reqs[i].Query)
		require.NoError(t, err)
		return v
	}
	at := p.Next.CreatedAt.UTC().Format("2006-01-02T15:04:05.999999Z07:00")

	require.Equal(t, "GET /rest/v1/jobs", reqs[0].Method+" "+reqs[0].Path)
	require.Equal(t, url.Values{"select": {"*"}, "status": {"in.(queued,done)"},
		"order": {"created_at.desc.nullslast,id.desc.nullslast"}, "limit": {"1"}}, q(0))
	require.Equal(t, "public", reqs[0].Header.Get("Accept-Profile"))

	require.Equal(t, url.Values{"select": {"*"}, "status": {"eq.queued"},
		"or":    {`(created_at.lt."` + at + `",and(created_at.eq."` + at + `",id.lt.` + p.Next.ID + `))`},
		"order": {"created_at.desc.nullslast,id.desc.nullslast"}, "limit": {"1"}}, q(1))

	require.Equal(t, url.Values{"select": {"*"}, "id": {"eq." + j.ID}}, q(2))
	require.Equal(t, "application/vnd.pgrst.object+json", reqs[2].Header.Values("Accept")[0])

	require.Equal(t, "GET /rest/v1/job_events", reqs[3].Method+" "+reqs[3].Path)
	require.Equal(t, url.Values{"select": {"*"}, "job_id": {"eq." + j.ID},
		"order": {"ts.asc.nullslast,id.asc.nullslast"}, "limit": {"500"}}, q(3))

	require.Equal(t, "PATCH /rest/v1/jobs", reqs[4].Method+" "+reqs[4].Path)
	require.Equal(t, url.Values{"id": {"eq." + j.ID}}, q(4))
	require.Equal(t, "return=representation", reqs[4].Header.Get("Prefer"))
	require.Equal(t, "public", reqs[4].Header.Get("Content-Profile"))

	require.Equal(t, "POST /rest/v1/jobs", reqs[5].Method+" "+reqs[5].Path)
	require.Empty(t, reqs[5].Query)
	require.Equal(t, "return=representation", reqs[5].Header.Get("Prefer"))
	require.Equal(t, "application/json", reqs[5].Header.Get("Content-Type"))
}

// TestUserUploadSource: a user's upload into sources/<uid>/ through
// Storage becomes a job through the database webhook, owned by the user,
// with the clip's params; a worker downloads the same bytes.
func TestUserUploadSource(t *testing.T) {
	t.Parallel()
	e := newUserEnv(t)
	ctx := context.Background()
	a := e.newUser(t)
	ua := e.user(t, a)

	video := bytes.Repeat([]byte{0, 1, 2, 3}, 4096)
	up, err := ua.UploadSource(ctx, "trips/beach clip.mp4", "video/mp4", bytes.NewReader(video), map[string]int{"start": 5, "end": 9})
	require.NoError(t, err)
	require.Equal(t, a.String()+"/trips/beach clip.mp4", up.Path)
	_, err = ua.UploadSource(ctx, "trips/beach clip.mp4", "video/mp4", bytes.NewReader(video), nil)
	require.ErrorIs(t, err, client.ErrConflict, "Storage's Duplicate (statusCode 409 under HTTP 400)")
	_, err = ua.UploadSource(ctx, "../other/x.mp4", "video/mp4", bytes.NewReader(video), nil)
	require.ErrorIs(t, err, client.ErrInvalidInput)

	var job client.Job
	require.Eventually(t, func() bool {
		job, err = ua.JobForSource(ctx, up.Path)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, a.String(), *job.OwnerID)
	require.Equal(t, "upload", job.SourceType)
	require.JSONEq(t, `{"start":5,"end":9}`, string(job.Params))

	w := newClient(t, e.url, e.key(t, nil, apikeys.ScopeWorker)).Worker("w-src")
	claimed, err := w.Claim(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, job.ID, claimed[0].ID)
	dl, err := w.DownloadSource(ctx, job.ID)
	require.NoError(t, err)
	defer dl.Close()
	got := new(bytes.Buffer)
	_, err = got.ReadFrom(dl)
	require.NoError(t, err)
	require.Equal(t, video, got.Bytes())
}
