// Package notify keeps one dedicated LISTEN connection to PostgreSQL,
// reconnecting with backoff, and fans notifications out to subscribers.
// NOTIFY is a wake-up signal, not a record: after a reconnect (or when a
// subscriber fell behind) subscribers get a Resync and must re-read the
// database.
package notify

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channels the project's triggers and daemons notify on.
const (
	ChannelJobEvents = "clipper_job_events" // {"job_id","event_id","status"} per job and statement; a job's creation is not notified
	ChannelAPIKeys   = "clipper_api_keys"   // {"id","lookup_id","op"} on revoke/rotate/delete
)

// Notification is one message, or a Resync marker.
type Notification struct {
	Channel string
	Payload string
	// Resync means notifications may have been missed (reconnect or a full
	// buffer): re-read state from the database.
	Resync bool
}

// Listener owns the LISTEN connection.
type Listener struct {
	dsn      string
	channels []string
	log      *slog.Logger

	// OnConnectionChange, if set, is called with true after (re)connecting
	// and false after losing the connection.
	OnConnectionChange func(connected bool)
	// OnReconnect, if set, is called after each re-established connection
	// (not the first).
	OnReconnect func()

	// PingEvery is how long the connection may stay quiet before it is
	// proven alive with a round trip (default 5 s). A LISTEN connection to
	// a frozen server (SIGSTOP, a network partition) looks connected:
	// only an answer shows that notifications still flow.
	PingEvery time.Duration
	// PingTimeout is the deadline of that round trip (default 2 s); a
	// connection that misses it is dropped and reconnected.
	PingTimeout time.Duration
	// Backoff paces reconnects; zero fields take their defaults.
	Backoff Backoff
	// Now replaces the clock in tests.
	Now func() time.Time

	connected atomic.Bool
	proven    atomic.Int64 // unix nanos of the last proof of life
	mu        sync.Mutex
	subs      map[*Subscription]struct{}
}

// New returns a listener for channels; call Run to connect.
func New(dsn string, log *slog.Logger, channels ...string) *Listener {
	return &Listener{dsn: dsn, channels: channels, log: log, subs: map[*Subscription]struct{}{}}
}

// Connected reports whether the LISTEN connection is up and proven
// alive: it answered a round trip, or delivered a notification, within
// the last PingEvery+PingTimeout. Between a freeze and its detection
// this turns false by itself, so callers that trust NOTIFY (the API key
// cache) fall back to their short window in time.
func (l *Listener) Connected() bool {
	if !l.connected.Load() {
		return false
	}
	every, timeout := l.probeTimes()
	return l.now().Sub(time.Unix(0, l.proven.Load())) <= every+timeout
}

func (l *Listener) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Listener) probeTimes() (every, timeout time.Duration) {
	every, timeout = l.PingEvery, l.PingTimeout
	if every <= 0 {
		every = 5 * time.Second
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return every, timeout
}

func (l *Listener) prove() { l.proven.Store(l.now().UnixNano()) }

// Subscription receives the notifications of one channel.
type Subscription struct {
	l       *Listener
	channel string
	c       chan Notification
	missed  atomic.Bool
}

// C is the subscription's channel.
func (s *Subscription) C() <-chan Notification { return s.c }

// Close stops delivery.
func (s *Subscription) Close() {
	s.l.mu.Lock()
	delete(s.l.subs, s)
	s.l.mu.Unlock()
}

// Subscribe delivers notifications of channel (one of those given to New).
func (l *Listener) Subscribe(channel string) *Subscription {
	s := &Subscription{l: l, channel: channel, c: make(chan Notification, 256)}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	return s
}

// dispatch never blocks. The last slot of each subscriber's buffer is kept
// for a Resync, so a subscriber that falls behind always learns that it
// missed something, even if nothing else is ever sent.
func (l *Listener) dispatch(n Notification) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		if !n.Resync && s.channel != n.Channel {
			continue
		}
		m := n
		m.Channel = s.channel
		if len(s.c) < cap(s.c)-1 {
			s.c <- m
			s.missed.Store(false)
			continue
		}
		if !s.missed.Swap(true) {
			s.c <- Notification{Channel: s.channel, Resync: true}
		}
	}
}

// Run listens until ctx is done, reconnecting with backoff (see
// Backoff): a connection that drops soon after it was made is not
// retried at once, since each reconnect makes every subscriber resync
// (the key cache empties, every stream re-reads).
func (l *Listener) Run(ctx context.Context) error {
	bo := l.Backoff
	first := true
	for ctx.Err() == nil {
		conn, err := l.connect(ctx)
		if err != nil {
			wait := bo.Failed()
			l.log.Warn("LISTEN connection failed; retrying", "in", wait, "error", err)
			sleep(ctx, wait)
			continue
		}
		bo.Up(l.now())
		l.prove()
		l.setConnected(true)
		if !first {
			l.log.Info("LISTEN connection re-established")
			if l.OnReconnect != nil {
				l.OnReconnect()
			}
		}
		// Whatever happened while disconnected (or before the first
		// connection) is only in the database.
		l.dispatch(Notification{Resync: true})
		first = false
		err = l.receive(ctx, conn)
		l.setConnected(false)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			break
		}
		wait := bo.Lost(l.now())
		l.log.Warn("LISTEN connection lost; reconnecting", "in", wait, "error", err)
		sleep(ctx, wait)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (l *Listener) setConnected(up bool) {
	l.connected.Store(up)
	if l.OnConnectionChange != nil {
		l.OnConnectionChange(up)
	}
}

func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(l.dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "clipper-listen"
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, ch := range l.channels {
		if _, err := conn.Exec(cctx, "listen "+pgx.Identifier{ch}.Sanitize()); err != nil {
			conn.Close(context.Background())
			return nil, err
		}
	}
	return conn, nil
}

// receive waits for notifications and proves the connection alive with
// a ping whenever it has been quiet for PingEvery.
func (l *Listener) receive(ctx context.Context, conn *pgx.Conn) error {
	every, timeout := l.probeTimes()
	for {
		wctx, cancel := context.WithTimeout(ctx, every)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			l.prove()
			l.dispatch(fromPg(n))
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wctx.Err() == nil || !pgconn.Timeout(err) {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
		l.prove()
	}
}

func fromPg(n *pgconn.Notification) Notification {
	return Notification{Channel: n.Channel, Payload: n.Payload}
}
