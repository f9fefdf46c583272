package jobsapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/notify"
)

// Hub wakes the event streams of a job when its events are notified. It
// holds the daemon's one subscription to clipper_job_events and indexes
// streams by job, so a notification costs work only for the streams of
// its own job. A Resync (LISTEN reconnected, or the subscription fell
// behind) wakes every stream: each re-reads the database after the last
// event it sent, so nothing is lost and nothing is sent twice.
//
// The hub also bounds streams (per API key and in total) and ends those
// whose key stops being valid: at the key's expiry, and when a change to
// the key is announced on clipper_api_keys (revocation, rotation,
// deletion) or may have been missed (a Resync), after re-reading it.
type Hub struct {
	jobSub *notify.Subscription
	keySub *notify.Subscription
	log    *slog.Logger
	opts   HubOptions

	mu      sync.Mutex
	streams map[uuid.UUID]map[*watcher]struct{} // by job
	byKey   map[uuid.UUID]*keyStreams
	total   int
}

// HubOptions bound streams. Zero values take the defaults.
type HubOptions struct {
	PerKey int // streams one API key may hold open (default 20)
	Total  int // streams the daemon holds open (default 2000)
	// ReadTimeout bounds each database read of a stream (default 10 s):
	// a stream outlives the request deadline, its reads must not.
	ReadTimeout time.Duration
	// KeyCheck re-reads a key whose change was announced; an unauthorized
	// or not_found error ends its streams, a key with a new expiry moves
	// their end. Nil: streams end only at the expiry they started with.
	KeyCheck func(ctx context.Context, id uuid.UUID) (apikeys.Key, error)
	// Gauge, if set, is kept equal to the number of open streams.
	Gauge prometheus.Gauge
	// Watches records each streamed job in the database, which notifies
	// only the events of watched jobs (see internal/watches). Nil: streams
	// rely on their periodic re-read alone.
	Watches Watches
}

// Watches is what the hub needs of a watches.Registry.
type Watches interface {
	Watch(ctx context.Context, jobID uuid.UUID) (release func(), err error)
}

func (o *HubOptions) defaults() {
	if o.PerKey <= 0 {
		o.PerKey = 20
	}
	if o.Total <= 0 {
		o.Total = 2000
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
}

// watcher is one stream.
type watcher struct {
	wake chan struct{} // a value after any event of the job may have committed
	gone chan struct{} // closed once the stream's key is no longer valid
	why  error         // why gone was closed; set before closing
}

// keyStreams are the streams of one API key.
type keyStreams struct {
	watchers map[*watcher]struct{}
	expiry   *time.Timer
}

// keyCheckTimeout bounds the re-read of the keys with streams.
const keyCheckTimeout = 10 * time.Second

// NewHub subscribes to l's job-event notifications at once, so none are
// missed before Run starts, with default limits.
func NewHub(l *notify.Listener, log *slog.Logger) *Hub {
	return NewHubWith(l, log, HubOptions{})
}

// NewHubWith is NewHub with limits.
func NewHubWith(l *notify.Listener, log *slog.Logger, opts HubOptions) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.defaults()
	return &Hub{
		jobSub:  l.Subscribe(notify.ChannelJobEvents),
		keySub:  l.Subscribe(notify.ChannelAPIKeys),
		log:     log,
		opts:    opts,
		streams: map[uuid.UUID]map[*watcher]struct{}{},
		byKey:   map[uuid.UUID]*keyStreams{},
	}
}

// Run delivers notifications until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	defer h.jobSub.Close()
	defer h.keySub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-h.jobSub.C():
			if n.Resync {
				h.wakeAll()
				continue
			}
			var p struct {
				JobID uuid.UUID `json:"job_id"`
			}
			if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
				h.log.Warn("job event notification has an unexpected payload", "error", err)
				h.wakeAll()
				continue
			}
			h.wake(p.JobID)
		case n := <-h.keySub.C():
			var p struct {
				ID uuid.UUID `json:"id"`
			}
			if n.Resync || json.Unmarshal([]byte(n.Payload), &p) != nil || p.ID == uuid.Nil {
				go h.checkKeys(ctx, h.keyIDs())
				continue
			}
			if h.hasKey(p.ID) {
				go h.checkKeys(ctx, []uuid.UUID{p.ID})
			}
		}
	}
}

// watch registers a stream of job jobID opened with key, or refuses it
// with rate_limited when the key or the daemon holds its limit of streams.
func (h *Hub) watch(jobID uuid.UUID, key apikeys.Key) (*watcher, func(), error) {
	w := &watcher{wake: make(chan struct{}, 1), gone: make(chan struct{})}
	if err := key.CheckActive(time.Now()); err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.byKey[key.ID]
	switch {
	case ks != nil && len(ks.watchers) >= h.opts.PerKey:
		return nil, nil, apperr.New(apperr.RateLimited, "this api key already has %d event streams open", h.opts.PerKey)
	case h.total >= h.opts.Total:
		return nil, nil, apperr.New(apperr.RateLimited, "too many event streams open; retry later")
	}
	if ks == nil {
		ks = &keyStreams{watchers: map[*watcher]struct{}{}}
		h.byKey[key.ID] = ks
		h.scheduleExpiryLocked(key.ID, ks, key.ExpiresAt)
	}
	ks.watchers[w] = struct{}{}
	set := h.streams[jobID]
	if set == nil {
		set = map[*watcher]struct{}{}
		h.streams[jobID] = set
	}
	set[w] = struct{}{}
	h.total++
	h.gauge()
	return w, func() { h.unwatch(jobID, key.ID, w) }, nil
}

func (h *Hub) unwatch(jobID, keyID uuid.UUID, w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.streams[jobID]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(h.streams, jobID)
	}
	if ks := h.byKey[keyID]; ks != nil {
		delete(ks.watchers, w)
		if len(ks.watchers) == 0 {
			if ks.expiry != nil {
				ks.expiry.Stop()
			}
			delete(h.byKey, keyID)
		}
	}
	h.total--
	h.gauge()
}

func (h *Hub) gauge() {
	if h.opts.Gauge != nil {
		h.opts.Gauge.Set(float64(h.total))
	}
}

// scheduleExpiryLocked ends the key's streams at expiresAt (nil: never).
func (h *Hub) scheduleExpiryLocked(keyID uuid.UUID, ks *keyStreams, expiresAt *time.Time) {
	if ks.expiry != nil {
		ks.expiry.Stop()
		ks.expiry = nil
	}
	if expiresAt == nil {
		return
	}
	ks.expiry = time.AfterFunc(time.Until(*expiresAt), func() {
		h.endKey(keyID, apperr.Wrap(apikeys.ErrExpired, apperr.Unauthorized, "api key expired"))
	})
}

// endKey ends every stream of the key.
func (h *Hub) endKey(keyID uuid.UUID, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ks := h.byKey[keyID]
	if ks == nil {
		return
	}
	for w := range ks.watchers {
		select {
		case <-w.gone:
		default:
			w.why = why
			close(w.gone)
		}
	}
}

func (h *Hub) hasKey(id uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byKey[id] != nil
}

func (h *Hub) keyIDs() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(h.byKey))
	for id := range h.byKey {
		ids = append(ids, id)
	}
	return ids
}

// checkKeys re-reads keys and ends the streams of those no longer valid.
// A failed read (database down) leaves the streams alone: they end when
// the key's change is read after all, or at the key's expiry.
func (h *Hub) checkKeys(ctx context.Context, ids []uuid.UUID) {
	if h.opts.KeyCheck == nil {
		return
	}
	for _, id := range ids {
		cctx, cancel := context.WithTimeout(ctx, keyCheckTimeout)
		key, err := h.opts.KeyCheck(cctx, id)
		cancel()
		if err == nil {
			err = key.CheckActive(time.Now())
		}
		switch {
		case apperr.Is(err, apperr.Unauthorized), apperr.Is(err, apperr.NotFound):
			h.log.Info("ending event streams of an api key that is no longer valid", "key_id", id, "reason", apperr.EnvelopeOf(err).Message)
			if apperr.Is(err, apperr.NotFound) {
				err = apperr.Wrap(err, apperr.Unauthorized, "api key deleted")
			}
			h.endKey(id, err)
		case err != nil:
			if ctx.Err() == nil {
				h.log.Warn("could not re-read an api key with open event streams", "key_id", id, "error", err)
			}
		default:
			h.mu.Lock()
			if ks := h.byKey[id]; ks != nil {
				h.scheduleExpiryLocked(id, ks, key.ExpiresAt)
			}
			h.mu.Unlock()
		}
	}
}

// announce tells the database that jobID is streamed, so that its events
// are notified from now on (see Watches). Called after watch and before
// the stream's first read.
func (h *Hub) announce(ctx context.Context, jobID uuid.UUID) (release func(), err error) {
	if h.opts.Watches == nil {
		return func() {}, nil
	}
	return h.opts.Watches.Watch(ctx, jobID)
}

// Streams returns how many streams are open.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

func (h *Hub) wake(id uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.streams[id] {
		signal(w.wake)
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.streams {
		for w := range set {
			signal(w.wake)
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
