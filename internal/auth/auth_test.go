package auth_test

import (
	"context"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/metrics"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeStore stands in for apikeys.Repo: it knows some tokens and counts
// verifications, each of which would be one argon2id.
type fakeStore struct {
	mu      sync.Mutex
	keys    map[string]apikeys.Key // by token
	revoked map[string]bool
	calls   atomic.Int64
	// gate, if set, holds every verification until it is closed.
	gate      chan struct{}
	started   chan struct{}
	touched   []map[uuid.UUID]time.Time
	failTouch bool
	fail      atomic.Bool // every verification fails as if the database were down
	now       func() time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{keys: map[string]apikeys.Key{}, revoked: map[string]bool{}}
}

func (s *fakeStore) add(t *testing.T, scopes ...apikeys.Scope) (apikeys.Key, string) {
	t.Helper()
	tok, err := apikeys.Generate()
	require.NoError(t, err)
	k := apikeys.Key{ID: uuid.New(), LookupID: tok.LookupID(), Name: "test", Scopes: scopes}
	s.mu.Lock()
	s.keys[tok.Plaintext()] = k
	s.mu.Unlock()
	return k, tok.Plaintext()
}

func (s *fakeStore) set(token string, k apikeys.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[token] = k
}

func (s *fakeStore) Authenticate(ctx context.Context, token string) (apikeys.Key, error) {
	s.calls.Add(1)
	if s.started != nil {
		s.started <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	if s.fail.Load() {
		return apikeys.Key{}, apperr.New(apperr.Unavailable, "database unavailable")
	}
	lookupID, _, err := apikeys.Parse(token)
	if err != nil {
		return apikeys.Key{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[token]
	if !ok {
		for _, k := range s.keys {
			if k.LookupID == lookupID {
				return apikeys.Key{}, apperr.Wrap(apikeys.ErrWrongSecret, apperr.Unauthorized, "invalid api key")
			}
		}
		return apikeys.Key{}, apperr.Wrap(apikeys.ErrUnknownKey, apperr.Unauthorized, "invalid api key")
	}
	if err := k.CheckActive(s.now()); err != nil {
		return apikeys.Key{}, err
	}
	return k, nil
}

func (s *fakeStore) TouchLastUsedBatch(ctx context.Context, used map[uuid.UUID]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failTouch {
		return apperr.New(apperr.Unavailable, "database unavailable")
	}
	s.touched = append(s.touched, used)
	return nil
}

// forge builds a well-formed token (valid checksum) from its parts.
func forge(lookupID, secret string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := apikeys.Prefix + lookupID + "_" + secret
	n := crc32.ChecksumIEEE([]byte(body))
	var sum [apikeys.ChecksumLen]byte
	for i := len(sum) - 1; i >= 0; i-- {
		sum[i] = base62[n%62]
		n /= 62
	}
	return body + string(sum[:])
}

// fakeLimiter allows everything unless told otherwise, and counts calls.
type fakeLimiter struct {
	calls  atomic.Int64
	refuse atomic.Bool
}

func (l *fakeLimiter) Take(ctx context.Context, keyID uuid.UUID, perPeriod int) (auth.Decision, error) {
	l.calls.Add(1)
	if l.refuse.Load() {
		return auth.Decision{Limit: perPeriod, Reset: time.Minute, RetryAfter: 1500 * time.Millisecond}, nil
	}
	return auth.Decision{Allowed: true, Limit: perPeriod, Remaining: perPeriod - 1, Reset: time.Second}, nil
}

// clock is a settable clock for cache expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	a         *auth.Authenticator
	store     *fakeStore
	limiter   *fakeLimiter
	clock     *clock
	metrics   *metrics.Metrics
	connected *atomic.Bool
}

func setup(t *testing.T, opts ...func(*auth.Options)) testBundle {
	t.Helper()
	b := testBundle{store: newFakeStore(), limiter: &fakeLimiter{}, clock: &clock{now: time.Now()},
		metrics: metrics.New(), connected: &atomic.Bool{}}
	b.connected.Store(true)
	b.store.now = b.clock.Now
	o := auth.Options{
		Keys: b.store, Limiter: b.limiter, Metrics: b.metrics, Now: b.clock.Now,
		CacheTTL: time.Minute, NegativeTTL: 10 * time.Second, Connected: b.connected.Load,
	}
	for _, f := range opts {
		f(&o)
	}
	a, err := auth.New(o)
	require.NoError(t, err)
	b.a = a
	return b
}

func (b testBundle) lookups(result string) float64 {
	var m dto.Metric
	if err := b.metrics.KeyCacheLookups.WithLabelValues(result).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func requireRefused(t *testing.T, err error, message string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	require.Equal(t, message, apperr.EnvelopeOf(err).Message)
}

func TestCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("VerifiesOncePerLifetime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t, apikeys.ScopeJobsRead)
		for range 5 {
			got, err := b.a.Authenticate(ctx, token)
			require.NoError(t, err)
			require.Equal(t, key.ID, got.ID)
		}
		require.EqualValues(t, 1, b.store.calls.Load())
		require.EqualValues(t, 1, b.a.Verifications())
		require.EqualValues(t, 1, b.lookups("miss"))
		require.EqualValues(t, 4, b.lookups("hit"))

		b.clock.Advance(time.Minute) // the TTL
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 2, b.store.calls.Load())
	})

	t.Run("ConcurrentMissesShareOneVerification", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t)
		b.store.gate = make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				_, err := b.a.Authenticate(ctx, token)
				errs <- err
			})
		}
		require.Eventually(t, func() bool { return b.lookups("miss") == 20 }, 30*time.Second, time.Millisecond)
		close(b.store.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, b.store.calls.Load())
	})

	t.Run("NegativeEntries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		unknown, err := apikeys.Generate()
		require.NoError(t, err)
		for range 3 {
			_, err := b.a.Authenticate(ctx, unknown.Plaintext())
			requireRefused(t, err, "invalid api key")
		}
		require.EqualValues(t, 1, b.store.calls.Load())
		require.EqualValues(t, 2, b.lookups("negative_hit"))

		// Short TTL: after it the token is checked again.
		b.clock.Advance(10 * time.Second)
		_, err = b.a.Authenticate(ctx, unknown.Plaintext())
		requireRefused(t, err, "invalid api key")
		require.EqualValues(t, 2, b.store.calls.Load())
	})

	t.Run("MalformedTokensNeverReachTheStore", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tok := range []string{"", "nope", "clp_aaaaaaaaaaaa_" + "x", "Bearer clp_"} {
			_, err := b.a.Authenticate(ctx, tok)
			requireRefused(t, err, "invalid api key")
		}
		require.Zero(t, b.store.calls.Load())
	})

	t.Run("WrongSecretForACachedKeyCostsNoVerification", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t)
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		// Same lookup id, another secret (a valid checksum, so Parse accepts it).
		forged := forge(key.LookupID, "0123456789abcdefghijABCDEFGHIJ01")
		for range 3 {
			_, err = b.a.Authenticate(ctx, forged)
			requireRefused(t, err, "invalid api key")
		}
		require.EqualValues(t, 1, b.store.calls.Load())
	})

	t.Run("ExpiryIsCheckedOnEveryHit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t)
		at := b.clock.Now().Add(30 * time.Second)
		key.ExpiresAt = &at
		b.store.set(token, key)
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		b.clock.Advance(30 * time.Second)
		_, err = b.a.Authenticate(ctx, token)
		requireRefused(t, err, "api key expired")
		_, err = b.a.Authenticate(ctx, token)
		requireRefused(t, err, "api key expired")
		require.EqualValues(t, 2, b.store.calls.Load(), "the refusal is cached")
	})

	t.Run("EvictForgetsAKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t)
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)

		now := b.clock.Now()
		key.RevokedAt = &now
		b.store.set(token, key)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err, "cached until the change is announced")

		b.a.Evict(key.ID, key.LookupID)
		_, err = b.a.Authenticate(ctx, token)
		requireRefused(t, err, "api key revoked")
		_, err = b.a.Authenticate(ctx, token)
		requireRefused(t, err, "api key revoked")
		require.EqualValues(t, 2, b.store.calls.Load(), "the refusal is cached too")

		// Un-revoking (by SQL) is announced like any change.
		key.RevokedAt = nil
		b.store.set(token, key)
		b.a.Evict(key.ID, key.LookupID)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err)
	})

	t.Run("EvictAll", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, t1 := b.store.add(t)
		_, t2 := b.store.add(t)
		for _, tok := range []string{t1, t2} {
			_, err := b.a.Authenticate(ctx, tok)
			require.NoError(t, err)
		}
		b.a.EvictAll()
		for _, tok := range []string{t1, t2} {
			_, err := b.a.Authenticate(ctx, tok)
			require.NoError(t, err)
		}
		require.EqualValues(t, 4, b.store.calls.Load())
	})

	// A key revoked while its verification runs must not be cached as
	// valid: the eviction that announces it may come before the result.
	t.Run("EvictionDuringVerificationWins", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t)
		b.store.gate = make(chan struct{})
		b.store.started = make(chan struct{}, 1)
		done := make(chan error)
		go func() {
			_, err := b.a.Authenticate(ctx, token)
			done <- err
		}()
		<-b.store.started
		b.a.Evict(key.ID, key.LookupID)
		close(b.store.gate)
		require.NoError(t, <-done)
		b.store.started = nil
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 2, b.store.calls.Load(), "the result from before the eviction was not kept")
	})

	t.Run("DisconnectedTrustsBriefly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(o *auth.Options) { o.DisconnectedTTL = 5 * time.Second })
		_, token := b.store.add(t)
		_, err := b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		b.connected.Store(false)
		b.clock.Advance(4 * time.Second)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 1, b.store.calls.Load())
		b.clock.Advance(time.Second)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 2, b.store.calls.Load(), "re-verified while changes may go unannounced")
	})

	t.Run("StoreErrorsAreNotCached", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t)
		b.store.fail.Store(true)
		_, err := b.a.Authenticate(ctx, token)
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
		b.store.fail.Store(false)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 2, b.store.calls.Load())
	})

	t.Run("VerificationOutlivesACanceledRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t)
		b.store.gate = make(chan struct{})
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := b.a.Authenticate(canceled, token)
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err), "the request that went away does not wait")
		close(b.store.gate)
		_, err = b.a.Authenticate(ctx, token)
		require.NoError(t, err)
		require.EqualValues(t, 1, b.store.calls.Load(), "the verification it started went on and serves the next request")
	})

	t.Run("Bounded", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(o *auth.Options) { o.MaxEntries = 10 })
		var tokens []string
		for range 30 {
			_, tok := b.store.add(t)
			tokens = append(tokens, tok)
			_, err := b.a.Authenticate(ctx, tok)
			require.NoError(t, err)
		}
		for _, tok := range tokens {
			_, err := b.a.Authenticate(ctx, tok)
			require.NoError(t, err)
		}
		require.LessOrEqual(t, b.lookups("hit"), float64(10))
	})
}

func TestLastUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	k1, t1 := b.store.add(t)
	k2, t2 := b.store.add(t)
	e := echo.New()
	e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, b.a.Require())
	call := func(tok string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, http.StatusNoContent, rec.Code)
	}
	start := b.clock.Now()
	call(t1)
	b.clock.Advance(time.Second)
	call(t1)
	call(t2)

	require.NoError(t, b.a.FlushLastUsed(ctx))
	require.Len(t, b.store.touched, 1, "one batch for all requests")
	require.Equal(t, map[uuid.UUID]time.Time{k1.ID: start.Add(time.Second), k2.ID: start.Add(time.Second)}, b.store.touched[0])

	require.NoError(t, b.a.FlushLastUsed(ctx))
	require.Len(t, b.store.touched, 1, "nothing new, nothing written")

	// A failed flush keeps its times for the next one.
	call(t1)
	b.store.failTouch = true
	require.Error(t, b.a.FlushLastUsed(ctx))
	b.store.failTouch = false
	require.NoError(t, b.a.FlushLastUsed(ctx))
	require.Len(t, b.store.touched, 2)
	require.Contains(t, b.store.touched[1], k1.ID)

	// The flusher writes once more when stopped.
	call(t2)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.a.RunLastUsedFlusher(runCtx); close(done) }()
	stop()
	<-done
	require.Len(t, b.store.touched, 3)
	require.Contains(t, b.store.touched[2], k2.ID)
}

func TestMiddleware(t *testing.T) {
	t.Parallel()

	serve := func(b testBundle, e *echo.Echo, path string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	newEcho := func(b testBundle) *echo.Echo {
		e := httpapi.New(httpapi.Options{})
		g := e.Group("/jobs", b.a.Require(apikeys.ScopeJobsRead))
		g.GET("", func(c echo.Context) error {
			k, ok := auth.KeyFrom(c)
			require.True(t, ok)
			fk, ok := auth.FromContext(c.Request().Context())
			require.True(t, ok)
			require.Equal(t, k.ID, fk.ID)
			return httpapi.OK(c, http.StatusOK, k.ID)
		})
		g.POST("", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, b.a.Require(apikeys.ScopeJobsWrite))
		g.GET("/write", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, b.a.Require(apikeys.ScopeJobsWrite))
		return e
	}

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rec := serve(b, newEcho(b), "/jobs")
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		require.JSONEq(t, `{"ok":false,"code":"unauthorized","message":"missing api key"}`, rec.Body.String())
		require.Equal(t, `Bearer realm="clipper"`, rec.Header().Get("WWW-Authenticate"))
	})

	t.Run("WrongScheme", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t, apikeys.ScopeJobsRead)
		for _, h := range []string{"Basic " + token, token, "Bearer", "Bearer   "} {
			rec := serve(b, newEcho(b), "/jobs", "Authorization", h)
			require.Equal(t, http.StatusUnauthorized, rec.Code, h)
			require.NotContains(t, rec.Body.String(), token)
		}
		// The Supabase-style apikey header is not read.
		rec := serve(b, newEcho(b), "/jobs", "apikey", token)
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		require.Contains(t, rec.Body.String(), "missing api key")
	})

	t.Run("SchemeIsCaseInsensitive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, token := b.store.add(t, apikeys.ScopeJobsRead)
		rec := serve(b, newEcho(b), "/jobs", "Authorization", "bearer "+token)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Contains(t, rec.Body.String(), key.ID.String())
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tok, err := apikeys.Generate()
		require.NoError(t, err)
		rec := serve(b, newEcho(b), "/jobs", "Authorization", "Bearer "+tok.Plaintext())
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		require.JSONEq(t, `{"ok":false,"code":"unauthorized","message":"invalid api key"}`, rec.Body.String())
		require.Contains(t, rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`)
	})

	t.Run("ScopesNamedWhenMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t, apikeys.ScopeJobsRead)
		rec := serve(b, newEcho(b), "/jobs/write", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.JSONEq(t, `{"ok":false,"code":"forbidden","message":"api key lacks scope jobs:write"}`, rec.Body.String())

		_, admin := b.store.add(t, apikeys.ScopeAdmin)
		rec = serve(b, newEcho(b), "/jobs/write", "Authorization", "Bearer "+admin)
		require.Equal(t, http.StatusNoContent, rec.Code, "admin holds every scope")
	})

	t.Run("CountedOnceThroughGroupAndRoute", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite)
		rec := serve(b, newEcho(b), "/jobs/write", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusNoContent, rec.Code)
		require.EqualValues(t, 1, b.limiter.calls.Load())
		require.EqualValues(t, 1, b.store.calls.Load())
	})

	t.Run("RateLimitHeaders", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(o *auth.Options) { o.DefaultRateLimit = 42 })
		key, token := b.store.add(t, apikeys.ScopeJobsRead)
		rec := serve(b, newEcho(b), "/jobs", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "42", rec.Header().Get("RateLimit-Limit"))
		require.Equal(t, "41", rec.Header().Get("RateLimit-Remaining"))
		require.Equal(t, "1", rec.Header().Get("RateLimit-Reset"))
		require.Equal(t, "42;w=60", rec.Header().Get("RateLimit-Policy"))

		// The key's own limit wins over the default.
		own := int32(7)
		key.RateLimitPerMinute = &own
		b.store.set(token, key)
		b.a.Evict(key.ID, key.LookupID)
		rec = serve(b, newEcho(b), "/jobs", "Authorization", "Bearer "+token)
		require.Equal(t, "7", rec.Header().Get("RateLimit-Limit"))

		// Refused: 429 with Retry-After rounded up; the refusal is then
		// answered locally until it ends.
		b.limiter.refuse.Store(true)
		calls := b.limiter.calls.Load()
		for range 3 {
			rec = serve(b, newEcho(b), "/jobs", "Authorization", "Bearer "+token)
			require.Equal(t, http.StatusTooManyRequests, rec.Code)
			require.JSONEq(t, `{"ok":false,"code":"rate_limited","message":"rate limit of 7 requests per minute exceeded"}`, rec.Body.String())
			require.Equal(t, "2", rec.Header().Get("Retry-After"))
			require.Equal(t, "0", rec.Header().Get("RateLimit-Remaining"))
		}
		require.Equal(t, calls+1, b.limiter.calls.Load())
		b.clock.Advance(1500 * time.Millisecond)
		b.limiter.refuse.Store(false)
		rec = serve(b, newEcho(b), "/jobs", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusOK, rec.Code)
	})

	t.Run("RateLimitedBeforeScopes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, token := b.store.add(t, apikeys.ScopeJobsRead)
		b.limiter.refuse.Store(true)
		rec := serve(b, newEcho(b), "/jobs/write", "Authorization", "Bearer "+token)
		require.Equal(t, http.StatusTooManyRequests, rec.Code, "a key hammering forbidden routes is throttled too")
	})
}
