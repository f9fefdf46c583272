package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/pgtest"
)

// throttleBundle is an Authenticator over real keys in PostgreSQL behind
// a real echo server, with a clock that moves only when told.
type throttleBundle struct {
	a     *auth.Authenticator
	keys  *apikeys.Repo
	e     *echo.Echo
	clock *clock
}

func setupThrottle(t *testing.T, opts func(*auth.Options)) throttleBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{
		MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32,
	}})
	require.NoError(t, err)
	b := throttleBundle{keys: keys, clock: &clock{now: time.Now()}}
	o := auth.Options{Keys: keys, Limiter: auth.NewLimiter(pool), Now: b.clock.Now, DefaultRateLimit: 1_000_000}
	opts(&o)
	b.a, err = auth.New(o)
	require.NoError(t, err)
	b.e = httpapi.New(httpapi.Options{})
	b.e.GET("/jobs", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, b.a.Require(apikeys.ScopeJobsRead))
	return b
}

func (b throttleBundle) newKey(t *testing.T) (apikeys.Key, string) {
	t.Helper()
	k, plain, err := b.keys.Create(context.Background(), apikeys.CreateParams{Name: "t", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	require.NoError(t, err)
	return k, plain
}

// get sends GET /jobs with token from the client address ip.
func (b throttleBundle) get(token, ip string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/jobs", nil)
	req.RemoteAddr = ip + ":40000"
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	return rec
}

func randomSecret(t *testing.T) string {
	t.Helper()
	tok, err := apikeys.Generate()
	require.NoError(t, err)
	_, secret, err := apikeys.Parse(tok.Plaintext())
	require.NoError(t, err)
	return secret
}

// TestFloodOfBadSecrets is the argon2id denial of service: every request
// carries a new random secret (with a valid checksum) for a real lookup
// id, so no refusal is ever served from the cache. Only the lookup id's
// budget of failures is verified; the rest are refused with 429 without
// hashing, and a valid cached key is served throughout.
func TestFloodOfBadSecrets(t *testing.T) {
	t.Parallel()
	const perKey, flood = 5, 200
	b := setupThrottle(t, func(o *auth.Options) {
		// Slots for every worker, so that only the budget refuses.
		o.FailuresPerKey, o.FailuresPerClient, o.MaxPendingVerifications = perKey, 1_000_000, 100
	})
	_, valid := b.newKey(t)
	victim, victimToken := b.newKey(t)
	require.Equal(t, http.StatusNoContent, b.get(valid, "192.0.2.1").Code)
	require.EqualValues(t, 1, b.a.Verifications())

	var mu sync.Mutex
	statuses := map[int]int{}
	validServed := 0
	var wg sync.WaitGroup
	bad := make(chan string, flood)
	for range flood {
		bad <- forge(victim.LookupID, randomSecret(t))
	}
	close(bad)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for token := range bad {
				rec := b.get(token, "198.51.100.7")
				vrec := b.get(valid, "192.0.2.1")
				mu.Lock()
				statuses[rec.Code]++
				if vrec.Code == http.StatusNoContent {
					validServed++
				}
				mu.Unlock()
				if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
					t.Errorf("worker %d: 429 without Retry-After", w)
				}
			}
		}()
	}
	wg.Wait()

	require.Equal(t, flood, validServed, "the valid cached key was served through the whole flood")
	require.Equal(t, map[int]int{http.StatusUnauthorized: perKey, http.StatusTooManyRequests: flood - perKey}, statuses)
	require.EqualValues(t, 1+perKey, b.a.Verifications(), "only the lookup id's budget of bad secrets reached argon2id")
	require.EqualValues(t, flood-perKey, b.a.RefusedFast())

	// The lookup id's own valid token, not cached yet, waits like the
	// flood (the price of a per-key guard) until the budget refills.
	rec := b.get(victimToken, "192.0.2.1")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	b.clock.Advance(time.Minute)
	require.Equal(t, http.StatusNoContent, b.get(victimToken, "192.0.2.1").Code)
	// Valid verifications give their budget back.
	for range perKey {
		require.Equal(t, http.StatusUnauthorized, b.get(forge(victim.LookupID, randomSecret(t)), "192.0.2.9").Code)
	}
}

// TestFailuresPerClient: one client cycling through random lookup ids
// (each unknown, so no refusal repeats) exhausts its own budget, not
// anyone else's.
func TestFailuresPerClient(t *testing.T) {
	t.Parallel()
	const perClient = 10
	b := setupThrottle(t, func(o *auth.Options) { o.FailuresPerKey, o.FailuresPerClient = 1_000_000, perClient })
	_, valid := b.newKey(t)
	require.Equal(t, http.StatusNoContent, b.get(valid, "203.0.113.5").Code)

	refused := 0
	for range 50 {
		tok, err := apikeys.Generate()
		require.NoError(t, err)
		switch code := b.get(tok.Plaintext(), "203.0.113.5").Code; code {
		case http.StatusTooManyRequests:
			refused++
		default:
			require.Equal(t, http.StatusUnauthorized, code)
		}
	}
	require.Equal(t, 50-perClient, refused)
	require.Equal(t, http.StatusNoContent, b.get(valid, "203.0.113.5").Code, "its cached valid key still works")

	tok, err := apikeys.Generate()
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, b.get(tok.Plaintext(), "203.0.113.6").Code, "another client is not throttled")
}

// TestVerificationsFailFastWhenBusy: with every verification slot taken,
// a request that needs a verification is refused at once with 503
// instead of queueing behind argon2id; cached keys are still served.
func TestVerificationsFailFastWhenBusy(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *auth.Options) { o.MaxPendingVerifications = 2 })
	_, cached := b.store.add(t, apikeys.ScopeJobsRead)
	ctx := context.Background()
	_, err := b.a.Authenticate(ctx, cached)
	require.NoError(t, err)

	b.store.gate, b.store.started = make(chan struct{}), make(chan struct{}, 2)
	results := make(chan error, 2)
	for range 2 {
		_, tok := b.store.add(t, apikeys.ScopeJobsRead)
		go func() { _, err := b.a.Authenticate(ctx, tok); results <- err }()
		<-b.store.started
	}

	_, tok := b.store.add(t, apikeys.ScopeJobsRead)
	refused := make(chan error, 1)
	go func() { _, err := b.a.Authenticate(ctx, tok); refused <- err }()
	select {
	case err := <-refused:
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
	case <-time.After(10 * time.Second):
		t.Fatal("a verification beyond the limit queued instead of failing fast")
	}
	_, err = b.a.Authenticate(ctx, cached)
	require.NoError(t, err, "a cached key needs no slot")

	close(b.store.gate)
	for range 2 {
		require.NoError(t, <-results)
	}
	_, err = b.a.Authenticate(ctx, tok)
	require.NoError(t, err, "slots are given back")
}

// tickingClock moves forward by tick on every reading, so that time
// passes during a verification, as it does for real.
type tickingClock struct {
	mu   sync.Mutex
	now  time.Time
	tick time.Duration
}

func (c *tickingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.tick)
	return c.now
}

// Valid keys give their tokens back: one client verifying many new valid
// keys, each taking time, is never throttled however far past its budget
// of failures it goes.
func TestValidKeysNeverDrainTheBudget(t *testing.T) {
	t.Parallel()
	const perClient = 3
	clk := &tickingClock{now: time.Now(), tick: 5 * time.Millisecond}
	b := setupThrottle(t, func(o *auth.Options) {
		o.FailuresPerKey, o.FailuresPerClient = perClient, perClient
		o.Now = clk.Now
	})
	for i := range 5 * perClient {
		_, tok := b.newKey(t)
		require.Equal(t, http.StatusNoContent, b.get(tok, "203.0.113.9").Code, "new valid key %d", i)
	}
	// Failures still count: the budget is there.
	refused := 0
	for range 2 * perClient {
		tok, err := apikeys.Generate()
		require.NoError(t, err)
		if b.get(tok.Plaintext(), "203.0.113.9").Code == http.StatusTooManyRequests {
			refused++
		}
	}
	require.Equal(t, perClient, refused)
}
