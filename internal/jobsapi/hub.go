package jobsapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/notify"
)

// Hub wakes the event streams of a job when its events are notified. It
// holds the daemon's one subscription to clipper_job_events and indexes
// streams by job, so a notification costs work only for the streams of
// its own job. A Resync (LISTEN reconnected, or the subscription fell
// behind) wakes every stream: each re-reads the database after the last
// event it sent, so nothing is lost and nothing is sent twice.
type Hub struct {
	sub *notify.Subscription
	log *slog.Logger

	mu      sync.Mutex
	streams map[uuid.UUID]map[chan struct{}]struct{}
}

// NewHub subscribes to l's job-event notifications at once, so none are
// missed before Run starts.
func NewHub(l *notify.Listener, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		sub:     l.Subscribe(notify.ChannelJobEvents),
		log:     log,
		streams: map[uuid.UUID]map[chan struct{}]struct{}{},
	}
}

// Run delivers notifications until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	defer h.sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-h.sub.C():
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
		}
	}
}

// watch registers a stream of job id. The returned channel receives a
// value after any event of the job may have been committed; several
// wake-ups before the stream reads coalesce into one.
func (h *Hub) watch(id uuid.UUID) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.streams[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.streams[id] = set
	}
	set[c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if set := h.streams[id]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.streams, id)
			}
		}
	}
}

// Streams returns how many streams are open.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.streams {
		n += len(set)
	}
	return n
}

func (h *Hub) wake(id uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.streams[id] {
		signal(c)
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.streams {
		for c := range set {
			signal(c)
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
