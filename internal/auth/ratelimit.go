package auth

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// RatePeriod is the period rate limits are expressed in.
const RatePeriod = time.Minute

// Decision is the outcome of one rate-limited request.
type Decision struct {
	Allowed   bool
	Limit     int           // requests per RatePeriod
	Remaining int           // requests that would be allowed right now after this one
	Reset     time.Duration // until the whole limit is available again
	// RetryAfter is, for a refused request, how long until the next
	// request fits.
	RetryAfter time.Duration
}

// Limiter decides whether a key may make one more request.
type Limiter interface {
	Take(ctx context.Context, keyID uuid.UUID, perPeriod int) (Decision, error)
}

// PGLimiter keeps GCRA state in PostgreSQL (clipper_internal.
// api_key_rate_limits), so every replica sharing the database enforces
// one limit per key, with one short upsert per request.
//
// GCRA rather than a fixed-window counter: a window counter lets a client
// spend its limit at the end of one window and again at the start of the
// next (twice the limit within seconds), and leaves a row per key and
// window to clean up. GCRA spreads the limit evenly (a burst of the whole
// limit, then one request per period/limit), needs one row per key, and
// its update changes no indexed column, so it stays a HOT update.
type PGLimiter struct {
	q *dbgen.Queries
}

// NewLimiter returns a limiter over db.
func NewLimiter(db database.DB) *PGLimiter {
	return &PGLimiter{q: dbgen.New(db)}
}

// Take admits one request of key keyID if it fits perPeriod requests per
// RatePeriod, judged by the database clock.
func (l *PGLimiter) Take(ctx context.Context, keyID uuid.UUID, perPeriod int) (Decision, error) {
	if perPeriod < 1 {
		return Decision{}, apperr.New(apperr.Internal, "rate limit must be positive")
	}
	emission := emissionOf(perPeriod)
	row, err := l.q.TakeRateLimit(ctx, dbgen.TakeRateLimitParams{
		KeyID:            keyID,
		EmissionInterval: pgtype.Interval{Microseconds: emission.Microseconds(), Valid: true},
		Period:           pgtype.Interval{Microseconds: RatePeriod.Microseconds(), Valid: true},
	})
	if database.IsNoRows(err) {
		// Refused while the key's first request was being recorded.
		return Decision{Limit: perPeriod, Reset: RatePeriod, RetryAfter: emission}, nil
	}
	if err != nil {
		return Decision{}, apperr.FromDB(err, "rate limit")
	}
	return decide(row.Allowed, perPeriod, row.Tat, row.CheckedAt), nil
}

// emissionOf is the GCRA emission interval of a limit: RatePeriod /
// perPeriod, rounded down to whole microseconds (the resolution of
// interval), so that perPeriod of them always fit in one period.
func emissionOf(perPeriod int) time.Duration {
	return (RatePeriod / time.Duration(perPeriod)).Truncate(time.Microsecond)
}

// decide makes the Decision of a request the database admitted or not,
// from the key's tat after it and the database clock.
func decide(allowed bool, perPeriod int, tat, checkedAt time.Time) Decision {
	emission := emissionOf(perPeriod)
	ahead := max(tat.Sub(checkedAt), 0) // how far the key is ahead of its allowance
	d := Decision{Allowed: allowed, Limit: perPeriod, Reset: ahead}
	if allowed {
		d.Remaining = min(max(int((RatePeriod-ahead)/emission), 0), perPeriod)
	} else {
		d.RetryAfter = max(ahead-RatePeriod+emission, time.Millisecond)
	}
	return d
}

// limit applies the key's rate limit and sets the RateLimit-* headers.
func (a *Authenticator) limit(c echo.Context, key apikeys.Key) error {
	perPeriod := a.defaultLimit
	if key.RateLimitPerMinute != nil {
		perPeriod = int(*key.RateLimitPerMinute)
	}
	now := a.now()
	d, ok := a.denied.check(key.ID, perPeriod, now)
	if !ok {
		var err error
		if d, err = a.limiter.Take(c.Request().Context(), key.ID, perPeriod); err != nil {
			return err
		}
		if !d.Allowed {
			a.denied.store(key.ID, d, now)
		}
	}
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
	h.Set("RateLimit-Policy", strconv.Itoa(d.Limit)+";w="+strconv.Itoa(int(RatePeriod/time.Second)))
	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1)))
		return apperr.New(apperr.RateLimited, "rate limit of %d requests per minute exceeded", d.Limit)
	}
	return nil
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// denyCache remembers, per key, until when the database refused it: GCRA
// state only moves forward, so no request can fit before then, and a
// client that keeps knocking costs no database round trip.
type denyCache struct {
	mu    sync.Mutex
	until map[uuid.UUID]deniedUntil
}

type deniedUntil struct {
	at        time.Time // when the refusal was decided
	decision  Decision
	perPeriod int
}

func newDenyCache() *denyCache { return &denyCache{until: map[uuid.UUID]deniedUntil{}} }

// check returns the refusal still in force for keyID at now, if any.
func (d *denyCache) check(keyID uuid.UUID, perPeriod int, now time.Time) (Decision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.until[keyID]
	if !ok {
		return Decision{}, false
	}
	elapsed := now.Sub(e.at)
	if e.perPeriod != perPeriod || elapsed < 0 || elapsed >= e.decision.RetryAfter {
		delete(d.until, keyID)
		return Decision{}, false
	}
	dec := e.decision
	dec.RetryAfter -= elapsed
	dec.Reset = max(dec.Reset-elapsed, 0)
	return dec, true
}

func (d *denyCache) store(keyID uuid.UUID, dec Decision, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.until) >= 100_000 {
		for id, e := range d.until {
			if now.Sub(e.at) >= e.decision.RetryAfter {
				delete(d.until, id)
			}
		}
	}
	d.until[keyID] = deniedUntil{at: now, decision: dec, perPeriod: dec.Limit}
}

func (d *denyCache) evict(keyID uuid.UUID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.until, keyID)
}

func (d *denyCache) clear() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.until)
}
