package auth

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

// throttle guards argon2id, the one expensive step of authentication.
// Refusals are cached by token digest, so a client that sends a new
// random secret (with a valid checksum, which is public) for a real
// lookup id costs one argon2id per request. The throttle bounds that:
//
//   - failed verifications per lookup id and per client, as token buckets
//     (a burst of the per-minute budget, refilled evenly over a minute):
//     a verification that would exceed either is refused at once with 429,
//     before any database read or hash. Successful verifications give
//     their token back, so honest traffic never drains a bucket.
//   - verifications running or waiting at once: beyond the limit a
//     request is refused at once with 503 instead of queueing behind
//     argon2id until its deadline.
//
// A verified, cached key never reaches the throttle: it is served from
// the cache whatever an attacker does to its lookup id.
//
// The buckets are per replica, deliberately. What they protect is the CPU
// and memory of the replica that would run argon2id, so a per-replica
// bound is exactly the bound that matters, and N replicas together spend
// at most N times one replica's budget. Brute force is not what they are
// for (a secret has far too much entropy to guess). Shared state in
// Postgres would cost a database write per failed attempt: during a flood
// that is an amplifier, not a guard.
type throttle struct {
	perKey, perClient int // failures per minute, also the burst
	now               func() time.Time

	mu      sync.Mutex
	keys    map[string]*tokenBucket
	clients map[string]*tokenBucket

	pending chan struct{} // one slot per verification running or waiting
}

// throttleMaxEntries bounds each bucket map; full buckets are dropped
// first (they carry no state).
const throttleMaxEntries = 100_000

func newThrottle(perKey, perClient, maxPending int, now func() time.Time) *throttle {
	return &throttle{
		perKey: perKey, perClient: perClient, now: now,
		keys: map[string]*tokenBucket{}, clients: map[string]*tokenBucket{},
		pending: make(chan struct{}, maxPending),
	}
}

// errThrottled carries how long the client should wait.
type errThrottled struct{ retryAfter time.Duration }

func (e *errThrottled) Error() string { return "too many failed api key verifications" }

// retryAfterOf returns the wait a throttle refusal asks for.
func retryAfterOf(err error) (time.Duration, bool) {
	var t *errThrottled
	if errors.As(err, &t) {
		return t.retryAfter, true
	}
	return 0, false
}

// ticket holds the tokens one verification took from its buckets.
type ticket struct {
	t      *throttle
	client *tokenBucket // nil without a client
	key    *tokenBucket
}

// take takes one failure from the buckets of lookupID and client (""
// for none), or refuses with 429 if either is empty.
func (t *throttle) take(lookupID, client string) (*ticket, error) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	tk := &ticket{t: t}
	if client != "" {
		b := bucket(t.clients, client, t.perClient, now)
		if wait := b.take(now); wait > 0 {
			return nil, throttled(wait)
		}
		tk.client = b
	}
	b := bucket(t.keys, lookupID, t.perKey, now)
	if wait := b.take(now); wait > 0 {
		if tk.client != nil {
			tk.client.giveBack(now)
		}
		return nil, throttled(wait)
	}
	tk.key = b
	return tk, nil
}

// done gives back the tokens of a verification that did not fail: a
// valid key, a database error, or (for the lookup id's bucket) an
// unknown lookup id, which costs no argon2id. The verification took
// time: the tokens go back at the time it ended.
func (tk *ticket) done(err error) {
	now := tk.t.now()
	tk.t.mu.Lock()
	defer tk.t.mu.Unlock()
	if !apperr.Is(err, apperr.Unauthorized) {
		if tk.client != nil {
			tk.client.giveBack(now)
		}
		tk.key.giveBack(now)
		return
	}
	if errors.Is(err, apikeys.ErrUnknownKey) {
		tk.key.giveBack(now)
	}
}

// tokenBucket holds up to burst tokens, refilled evenly at rate per
// second. (golang.org/x/time/rate cannot give a token back once its
// reservation's time has passed, which is always the case after a
// verification that took any time.)
type tokenBucket struct {
	tokens float64
	last   time.Time
	burst  float64
	rate   float64
}

func newTokenBucket(perMinute int, now time.Time) *tokenBucket {
	return &tokenBucket{tokens: float64(perMinute), last: now, burst: float64(perMinute), rate: float64(perMinute) / 60}
}

// at returns the tokens at now and moves the bucket there.
func (b *tokenBucket) at(now time.Time) float64 {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	return b.tokens
}

// take takes a token, or returns how long until one is there.
func (b *tokenBucket) take(now time.Time) time.Duration {
	if t := b.at(now); t < 1 {
		return time.Duration((1 - t) / b.rate * float64(time.Second))
	}
	b.tokens--
	return 0
}

func (b *tokenBucket) giveBack(now time.Time) {
	b.tokens = min(b.burst, b.at(now)+1)
}

func throttled(d time.Duration) error {
	return apperr.Wrap(&errThrottled{retryAfter: d}, apperr.RateLimited,
		"too many failed api key verifications; retry in %d s", int(math.Ceil(d.Seconds())))
}

// bucket returns name's bucket in m, making one (full) if needed.
func bucket(m map[string]*tokenBucket, name string, perMinute int, now time.Time) *tokenBucket {
	if b := m[name]; b != nil {
		return b
	}
	if len(m) >= throttleMaxEntries {
		sweepBuckets(m, now)
	}
	b := newTokenBucket(perMinute, now)
	m[name] = b
	return b
}

// sweepBuckets drops full buckets; if none is full, half of them.
func sweepBuckets(m map[string]*tokenBucket, now time.Time) {
	sweepFull(m, now)
	for name := range m {
		if len(m) < throttleMaxEntries/2 {
			return
		}
		delete(m, name)
	}
}

// sweep drops full buckets.
func (t *throttle) sweep() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	sweepFull(t.keys, now)
	sweepFull(t.clients, now)
}

func sweepFull(m map[string]*tokenBucket, now time.Time) {
	for name, b := range m {
		if b.at(now) >= b.burst {
			delete(m, name)
		}
	}
}

// enter takes a verification slot without waiting, or refuses with 503.
func (t *throttle) enter() (func(), error) {
	select {
	case t.pending <- struct{}{}:
		return func() { <-t.pending }, nil
	default:
		return nil, apperr.New(apperr.Unavailable, "too many api key verifications at once; retry shortly")
	}
}
