// Package auth authenticates API requests: echo middleware that reads a
// bearer API key, verifies it through a cache (one argon2id per cache
// lifetime), checks scopes, enforces the per-key rate limit shared by
// every replica, and records last use in batches.
package auth

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/metrics"
)

// KeyStore is what the Authenticator needs from *apikeys.Repo.
type KeyStore interface {
	// Authenticate verifies a presented token (one argon2id).
	Authenticate(ctx context.Context, token string) (apikeys.Key, error)
	// TouchLastUsedBatch records when keys were last used.
	TouchLastUsedBatch(ctx context.Context, used map[uuid.UUID]time.Time) error
}

// Options configure an Authenticator. Zero values take the defaults.
type Options struct {
	Keys    KeyStore // required
	Limiter Limiter  // required: usually NewLimiter(pool)
	Logger  *slog.Logger
	Metrics *metrics.Metrics // optional: KeyCacheLookups

	// CacheTTL bounds how long a verified key is trusted without
	// re-verifying (default 5 min). Changes to a key reach the cache at
	// once through Follow; the TTL only limits the damage of a missed
	// notification.
	CacheTTL time.Duration
	// NegativeTTL is how long an unknown key or wrong secret is remembered
	// (default 10 s, at most CacheTTL).
	NegativeTTL time.Duration
	// MaxEntries bounds the cache (default 100 000 entries).
	MaxEntries int
	// Connected reports whether change notifications are flowing (the
	// LISTEN connection is up). While it reports false, a cached key is
	// trusted for DisconnectedTTL after its verification only, because a
	// revocation may go unannounced. Nil: always connected.
	Connected func() bool
	// DisconnectedTTL defaults to 5 s.
	DisconnectedTTL time.Duration

	// FailuresPerKey and FailuresPerClient are the failed verifications
	// allowed per lookup id and per client IP per minute, as a burst
	// (defaults 10 and 30); beyond them a token that is not cached is
	// refused with 429 before any argon2id. See throttle.
	FailuresPerKey    int
	FailuresPerClient int
	// MaxPendingVerifications bounds verifications in flight (running or
	// waiting for an argon2id slot; default 4 per CPU); beyond it 503 at
	// once instead of a queue.
	MaxPendingVerifications int

	// DefaultRateLimit is the per-minute limit of keys without their own
	// (default 600).
	DefaultRateLimit int
	// LastUsedFlushInterval is how often last use is written (default 30 s).
	LastUsedFlushInterval time.Duration

	// Now replaces the clock in tests.
	Now func() time.Time
}

// Authenticator checks API keys for HTTP routes. It is safe for
// concurrent use.
type Authenticator struct {
	keys     KeyStore
	limiter  Limiter
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	cache    *cache
	denied   *denyCache
	lastUsed *lastUsed
	throttle *throttle

	defaultLimit  int
	flushInterval time.Duration

	verifications atomic.Int64
	refusedFast   atomic.Int64
}

// New returns an Authenticator.
func New(opts Options) (*Authenticator, error) {
	if opts.Keys == nil || opts.Limiter == nil {
		return nil, apperr.New(apperr.InvalidInput, "auth: Keys and Limiter are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 10 * time.Second
	}
	opts.NegativeTTL = min(opts.NegativeTTL, opts.CacheTTL)
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	if opts.Connected == nil {
		opts.Connected = func() bool { return true }
	}
	if opts.DisconnectedTTL <= 0 {
		opts.DisconnectedTTL = 5 * time.Second
	}
	if opts.FailuresPerKey <= 0 {
		opts.FailuresPerKey = 10
	}
	if opts.FailuresPerClient <= 0 {
		opts.FailuresPerClient = 30
	}
	if opts.MaxPendingVerifications <= 0 {
		opts.MaxPendingVerifications = 4 * runtime.GOMAXPROCS(0)
	}
	if opts.DefaultRateLimit <= 0 {
		opts.DefaultRateLimit = 600
	}
	if opts.LastUsedFlushInterval <= 0 {
		opts.LastUsedFlushInterval = 30 * time.Second
	}
	a := &Authenticator{
		keys:          opts.Keys,
		limiter:       opts.Limiter,
		log:           opts.Logger,
		metrics:       opts.Metrics,
		now:           opts.Now,
		denied:        newDenyCache(),
		lastUsed:      newLastUsed(),
		throttle:      newThrottle(opts.FailuresPerKey, opts.FailuresPerClient, opts.MaxPendingVerifications, opts.Now),
		defaultLimit:  opts.DefaultRateLimit,
		flushInterval: opts.LastUsedFlushInterval,
	}
	a.cache = newCache(cacheOptions{
		ttl:             opts.CacheTTL,
		negativeTTL:     opts.NegativeTTL,
		maxEntries:      opts.MaxEntries,
		connected:       opts.Connected,
		disconnectedTTL: opts.DisconnectedTTL,
		now:             opts.Now,
	})
	return a, nil
}

type contextKey struct{}

const echoKey = "clipper.auth.key"

// KeyFrom returns the key that authenticated the request, set by Require.
func KeyFrom(c echo.Context) (apikeys.Key, bool) {
	k, ok := c.Get(echoKey).(apikeys.Key)
	return k, ok
}

// FromContext returns the key that authenticated the request whose
// context this is, for code below the handler that has no echo.Context.
func FromContext(ctx context.Context) (apikeys.Key, bool) {
	k, ok := ctx.Value(contextKey{}).(apikeys.Key)
	return k, ok
}

// Require returns middleware that admits a request only with a valid API
// key holding every scope given (admin holds them all), within the key's
// rate limit. Failures: 401 unauthorized ("missing api key", "invalid api
// key", "api key revoked", "api key expired"), 429 rate_limited with
// Retry-After, 403 forbidden naming the missing scope. A request is
// authenticated and counted against its limit once, however many Require
// middlewares it passes (a group's and a route's).
//
// The key is read from "Authorization: Bearer <key>" only. The "apikey"
// header is not accepted: Supabase clients send their project's anon key
// there, which would be refused here in confusing ways.
func (a *Authenticator) Require(scopes ...apikeys.Scope) echo.MiddlewareFunc {
	for _, s := range scopes {
		if !s.Valid() {
			panic("auth: Require with unknown scope " + string(s))
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key, ok := KeyFrom(c)
			if !ok {
				var err error
				if key, err = a.admit(c); err != nil {
					return err
				}
			}
			for _, s := range scopes {
				if !key.HasScope(s) {
					return apperr.New(apperr.Forbidden, "api key lacks scope %s", s)
				}
			}
			return next(c)
		}
	}
}

// admit authenticates the request, stores the key on it and applies the
// rate limit.
func (a *Authenticator) admit(c echo.Context) (apikeys.Key, error) {
	h := c.Response().Header()
	token, err := bearerToken(c.Request())
	if err != nil {
		h.Set("WWW-Authenticate", `Bearer realm="clipper"`)
		return apikeys.Key{}, err
	}
	key, err := a.authenticate(c.Request().Context(), token, c.RealIP())
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) {
			h.Set("WWW-Authenticate", `Bearer realm="clipper", error="invalid_token"`)
		}
		if d, ok := retryAfterOf(err); ok {
			h.Set("Retry-After", strconv.Itoa(max(ceilSeconds(d), 1)))
		}
		return apikeys.Key{}, err
	}
	c.Set(echoKey, key)
	c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), contextKey{}, key)))
	a.lastUsed.record(key.ID, a.now())
	if err := a.limit(c, key); err != nil {
		return apikeys.Key{}, err
	}
	return key, nil
}

// bearerToken reads "Authorization: Bearer <token>" (scheme in any case).
// Errors never repeat the header.
func bearerToken(r *http.Request) (string, error) {
	v := r.Header.Get(echo.HeaderAuthorization)
	if v == "" {
		return "", apperr.New(apperr.Unauthorized, "missing api key")
	}
	scheme, token, ok := strings.Cut(v, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", apperr.New(apperr.Unauthorized, "authorization must be 'Bearer <api key>'")
	}
	return token, nil
}

// Authenticate returns the key a presented token belongs to, verifying it
// through the cache: a token verified before is checked by comparing
// SHA-256 digests in constant time instead of running argon2id again.
// Errors are those of apikeys.Repo.Authenticate, and rate_limited or
// unavailable from the throttle (see throttle).
func (a *Authenticator) Authenticate(ctx context.Context, token string) (apikeys.Key, error) {
	return a.authenticate(ctx, token, "")
}

// authenticate is Authenticate for a request from client (its IP; ""
// when unknown, which skips the per-client bucket).
func (a *Authenticator) authenticate(ctx context.Context, token, client string) (apikeys.Key, error) {
	return a.cache.get(ctx, token, func(ctx context.Context, lookupID string) (apikeys.Key, error) {
		return a.verify(ctx, lookupID, token, client)
	}, a.observe)
}

// verify runs one verification if the throttle lets it (see throttle):
// requests presenting the same token share one verification, and so one
// admission.
func (a *Authenticator) verify(ctx context.Context, lookupID, token, client string) (apikeys.Key, error) {
	tk, err := a.throttle.take(lookupID, client)
	if err != nil {
		a.throttled(resultThrottled)
		return apikeys.Key{}, err
	}
	leave, err := a.throttle.enter()
	if err != nil {
		tk.done(err)
		a.throttled(resultBusy)
		return apikeys.Key{}, err
	}
	defer leave()
	a.verifications.Add(1)
	key, err := a.keys.Authenticate(ctx, token)
	tk.done(err)
	return key, err
}

func (a *Authenticator) throttled(result string) {
	a.refusedFast.Add(1)
	if a.metrics != nil {
		a.metrics.KeyCacheLookups.WithLabelValues(result).Inc()
	}
}

// RefusedFast counts requests refused by the throttle without verifying.
func (a *Authenticator) RefusedFast() int64 { return a.refusedFast.Load() }

func (a *Authenticator) observe(result string) {
	if a.metrics != nil {
		a.metrics.KeyCacheLookups.WithLabelValues(result).Inc()
	}
}

// Verifications counts the tokens verified against the database (each
// one argon2id when the token's key exists): what the cache saves.
func (a *Authenticator) Verifications() int64 { return a.verifications.Load() }

// Evict forgets everything cached about a key: its verified token, refused
// tokens with its lookup id, and a rate-limit refusal. Follow calls it for
// every change notification; handlers that change a key call it too, so
// their own replica does not wait for the notification.
func (a *Authenticator) Evict(id uuid.UUID, lookupID string) {
	a.cache.evict(lookupID)
	a.denied.evict(id)
}

// EvictAll empties the cache, after notifications may have been missed.
func (a *Authenticator) EvictAll() {
	a.cache.clear()
	a.denied.clear()
}
