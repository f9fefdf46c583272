package auth

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/notify"
)

// keyChange is the payload of notify.ChannelAPIKeys, sent by the
// api_keys_notify_* triggers.
type keyChange struct {
	ID       uuid.UUID `json:"id"`
	LookupID string    `json:"lookup_id"`
	Op       string    `json:"op"`
}

// sweepEvery is how often expired cache entries are dropped.
const sweepEvery = time.Minute

// Follow evicts keys from the cache as their changes are announced on
// sub (a subscription to notify.ChannelAPIKeys), and empties the cache on
// a Resync, until ctx is done. Subscribe before serving requests, so no
// change made after a key was cached goes unseen.
func (a *Authenticator) Follow(ctx context.Context, sub *notify.Subscription) {
	defer sub.Close()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			a.cache.sweep()
			a.throttle.sweep()
		case n := <-sub.C():
			if n.Resync {
				a.EvictAll()
				a.log.Debug("api key cache emptied: notifications may have been missed")
				continue
			}
			var ch keyChange
			if err := json.Unmarshal([]byte(n.Payload), &ch); err != nil || ch.LookupID == "" {
				a.EvictAll()
				a.log.Warn("unreadable api key notification; api key cache emptied")
				continue
			}
			a.Evict(ch.ID, ch.LookupID)
			a.log.Debug("api key evicted from cache", "key_id", ch.ID, "lookup_id", ch.LookupID, "op", ch.Op)
		}
	}
}

// flushTimeout bounds one write of last-use times.
const flushTimeout = 10 * time.Second

// RunLastUsedFlusher writes last-use times every LastUsedFlushInterval
// until ctx is done, then once more, so a clean shutdown loses nothing.
func (a *Authenticator) RunLastUsedFlusher(ctx context.Context) {
	t := time.NewTicker(a.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := a.FlushLastUsed(fctx); err != nil {
				a.log.Warn("could not record api key last use at shutdown", "error", err)
			}
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			err := a.FlushLastUsed(fctx)
			cancel()
			if err != nil {
				a.log.Warn("could not record api key last use; will retry", "error", err)
			}
		}
	}
}

// FlushLastUsed writes the last-use times recorded since the previous
// flush in one batch. On failure they are kept for the next flush.
func (a *Authenticator) FlushLastUsed(ctx context.Context) error {
	used := a.lastUsed.take()
	if len(used) == 0 {
		return nil
	}
	if err := a.keys.TouchLastUsedBatch(ctx, used); err != nil {
		a.lastUsed.merge(used)
		return err
	}
	return nil
}

// lastUsed buffers the latest use of each key between flushes: one map
// entry per key, however many requests it makes.
type lastUsed struct {
	mu   sync.Mutex
	used map[uuid.UUID]time.Time
}

func newLastUsed() *lastUsed { return &lastUsed{used: map[uuid.UUID]time.Time{}} }

func (l *lastUsed) record(id uuid.UUID, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at.After(l.used[id]) {
		l.used[id] = at
	}
}

func (l *lastUsed) take() map[uuid.UUID]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	used := l.used
	l.used = map[uuid.UUID]time.Time{}
	return used
}

func (l *lastUsed) merge(used map[uuid.UUID]time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, at := range used {
		if at.After(l.used[id]) {
			l.used[id] = at
		}
	}
}
