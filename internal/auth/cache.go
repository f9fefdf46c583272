package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

// Cache results, the label values of metrics.KeyCacheLookups.
const (
	resultHit         = "hit"
	resultMiss        = "miss"
	resultNegativeHit = "negative_hit"
	resultThrottled   = "throttled" // a miss refused by the failure buckets (429)
	resultBusy        = "busy"      // a miss refused: too many verifications at once (503)
)

// verifyTimeout bounds one verification shared by concurrent requests,
// which runs on even if the request that started it goes away.
const verifyTimeout = 10 * time.Second

// cache remembers verification results, never tokens: entries hold the
// SHA-256 digest of the presented token.
//
// Verified keys are indexed by their public lookup id. A key has exactly
// one valid token, so a presented token with that lookup id either has
// the cached digest (compared in constant time) or is wrong, and a wrong
// secret for a key in use is refused without running argon2id. Refusals
// (unknown key, wrong secret, revoked, expired) are indexed by digest.
//
// Every eviction bumps an epoch; a verification that started before an
// eviction does not store its result, so a key revoked while it was
// being verified is not cached as valid.
type cache struct {
	opts cacheOptions

	mu       sync.Mutex
	valid    map[string]*validEntry // by lookup id
	refused  map[[sha256.Size]byte]refusedEntry
	epoch    uint64
	inFlight singleflight.Group
}

type cacheOptions struct {
	ttl, negativeTTL, disconnectedTTL time.Duration
	maxEntries                        int
	connected                         func() bool
	now                               func() time.Time
}

type validEntry struct {
	digest     [sha256.Size]byte
	key        apikeys.Key
	verifiedAt time.Time
	until      time.Time
}

type refusedEntry struct {
	lookupID string
	err      error
	until    time.Time
}

func newCache(opts cacheOptions) *cache {
	return &cache{
		opts:    opts,
		valid:   map[string]*validEntry{},
		refused: map[[sha256.Size]byte]refusedEntry{},
	}
}

type verifyFunc func(ctx context.Context, lookupID string) (apikeys.Key, error)

// get returns the key for token from the cache, or verifies it (once for
// any number of concurrent requests presenting the same token). A request whose context ends while the verification runs gets
// unavailable at once; the verification finishes and its result is
// cached for the next request.
func (c *cache) get(ctx context.Context, token string, verify verifyFunc, observe func(string)) (apikeys.Key, error) {
	lookupID, _, err := apikeys.Parse(token)
	if err != nil {
		return apikeys.Key{}, err // malformed: refused without any lookup
	}
	digest := sha256.Sum256([]byte(token))
	if key, err, ok := c.lookup(lookupID, digest); ok {
		if err != nil {
			observe(resultNegativeHit)
		} else {
			observe(resultHit)
		}
		return key, err
	}
	observe(resultMiss)
	ch := c.inFlight.DoChan(string(digest[:]), func() (any, error) {
		// A request that missed just as an earlier flight stored its
		// result finds it here.
		if key, err, ok := c.lookup(lookupID, digest); ok {
			return key, err
		}
		c.mu.Lock()
		epoch := c.epoch
		c.mu.Unlock()
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), verifyTimeout)
		defer cancel()
		key, err := verify(vctx, lookupID)
		c.store(epoch, lookupID, digest, key, err)
		return key, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return apikeys.Key{}, r.Err
		}
		return r.Val.(apikeys.Key), nil
	case <-ctx.Done():
		return apikeys.Key{}, apperr.FromDB(ctx.Err(), "api key")
	}
}

// lookup reports a cached answer for the token, if there is one.
func (c *cache) lookup(lookupID string, digest [sha256.Size]byte) (apikeys.Key, error, bool) {
	now := c.opts.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.valid[lookupID]; e != nil {
		switch {
		case !now.Before(e.until):
			delete(c.valid, lookupID)
		case !c.opts.connected() && now.Sub(e.verifiedAt) >= c.opts.disconnectedTTL:
			// A revocation may have gone unannounced: verify again.
		case subtle.ConstantTimeCompare(e.digest[:], digest[:]) != 1:
			return apikeys.Key{}, apperr.Wrap(apikeys.ErrWrongSecret, apperr.Unauthorized, "invalid api key"), true
		default:
			if err := e.key.CheckActive(now); err != nil {
				delete(c.valid, lookupID)
				return apikeys.Key{}, err, true
			}
			return e.key, nil, true
		}
	}
	if e, ok := c.refused[digest]; ok {
		if now.Before(e.until) {
			return apikeys.Key{}, e.err, true
		}
		delete(c.refused, digest)
	}
	return apikeys.Key{}, nil, false
}

// store caches a verification's outcome unless an eviction happened while
// it ran. Only refusals of the key itself are cached; a database error or
// a canceled verification is not.
func (c *cache) store(epoch uint64, lookupID string, digest [sha256.Size]byte, key apikeys.Key, err error) {
	now := c.opts.now()
	var ttl time.Duration
	switch {
	case err == nil:
		ttl = c.opts.ttl
		if key.ExpiresAt != nil {
			ttl = min(ttl, key.ExpiresAt.Sub(now))
		}
	case errors.Is(err, apikeys.ErrRevoked), errors.Is(err, apikeys.ErrExpired):
		ttl = c.opts.ttl // changes to the key are announced
	case errors.Is(err, apikeys.ErrUnknownKey), errors.Is(err, apikeys.ErrWrongSecret):
		ttl = c.opts.negativeTTL
	default:
		return
	}
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	if len(c.valid)+len(c.refused) >= c.opts.maxEntries {
		c.shrinkLocked(now)
	}
	if err == nil {
		c.valid[lookupID] = &validEntry{digest: digest, key: key, verifiedAt: now, until: now.Add(ttl)}
		return
	}
	c.refused[digest] = refusedEntry{lookupID: lookupID, err: err, until: now.Add(ttl)}
}

// shrinkLocked drops expired entries and, if the cache is still full,
// refusals and then verified keys in map order (effectively at random)
// down to 90% of the limit.
func (c *cache) shrinkLocked(now time.Time) {
	c.sweepLocked(now)
	target := c.opts.maxEntries * 9 / 10
	for d := range c.refused {
		if len(c.valid)+len(c.refused) <= target {
			return
		}
		delete(c.refused, d)
	}
	for id := range c.valid {
		if len(c.valid)+len(c.refused) <= target {
			return
		}
		delete(c.valid, id)
	}
}

// sweep drops expired entries.
func (c *cache) sweep() {
	now := c.opts.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
}

func (c *cache) sweepLocked(now time.Time) {
	for id, e := range c.valid {
		if !now.Before(e.until) {
			delete(c.valid, id)
		}
	}
	for d, e := range c.refused {
		if !now.Before(e.until) {
			delete(c.refused, d)
		}
	}
}

// evict forgets the key with lookupID: its verified token and every
// refusal of a token naming it. Refusals are few and evictions rare, so a
// scan beats keeping a second index.
func (c *cache) evict(lookupID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.valid, lookupID)
	for d, e := range c.refused {
		if e.lookupID == lookupID {
			delete(c.refused, d)
		}
	}
}

func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.valid)
	clear(c.refused)
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.valid) + len(c.refused)
}
