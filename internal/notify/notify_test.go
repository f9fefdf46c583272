package notify_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/notify"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func next(t *testing.T, s *notify.Subscription) notify.Notification {
	t.Helper()
	select {
	case n := <-s.C():
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return notify.Notification{}
	}
}

func TestListenerDeliversAndReconnects(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, dsn := pgtest.NewPool(t)

	l := notify.New(dsn, slog.New(slog.NewTextHandler(io.Discard, nil)), notify.ChannelJobEvents, notify.ChannelAPIKeys)
	l.PingEvery = 200 * time.Millisecond // exercise the quiet-connection ping path
	jobs := l.Subscribe(notify.ChannelJobEvents)
	defer jobs.Close()
	keys := l.Subscribe(notify.ChannelAPIKeys)
	defer keys.Close()
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()

	require.True(t, next(t, jobs).Resync, "first connection starts with a resync")
	require.True(t, next(t, keys).Resync)
	require.True(t, l.Connected())

	time.Sleep(500 * time.Millisecond) // a few quiet pings
	_, err := pool.Exec(ctx, "select pg_notify($1, 'hello')", notify.ChannelJobEvents)
	require.NoError(t, err)
	n := next(t, jobs)
	require.Equal(t, notify.Notification{Channel: notify.ChannelJobEvents, Payload: "hello"}, n)
	select {
	case n := <-keys.C():
		t.Fatalf("other channel got %+v", n)
	default:
	}

	// Kill the LISTEN backend: the listener reconnects and says to resync.
	_, err = pool.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'clipper-listen' and datname = current_database()")
	require.NoError(t, err)
	require.True(t, next(t, jobs).Resync)
	require.Eventually(t, l.Connected, 30*time.Second, 20*time.Millisecond)
	_, err = pool.Exec(ctx, "select pg_notify($1, 'after')", notify.ChannelJobEvents)
	require.NoError(t, err)
	require.Equal(t, "after", next(t, jobs).Payload)

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.False(t, l.Connected())
}

func TestSlowSubscriberGetsResync(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, dsn := pgtest.NewPool(t)
	l := notify.New(dsn, slog.New(slog.NewTextHandler(io.Discard, nil)), notify.ChannelJobEvents)
	s := l.Subscribe(notify.ChannelJobEvents)
	go func() { _ = l.Run(ctx) }()
	require.True(t, next(t, s).Resync)

	// Nobody reads while 300 distinct notifications overflow the
	// 256-slot buffer; the reader must then learn it missed some.
	_, err := pool.Exec(ctx, "select pg_notify($1, g::text) from generate_series(1, 300) g", notify.ChannelJobEvents)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(s.C()) == cap(s.C()) }, 30*time.Second, 10*time.Millisecond)
	// The full buffer holds the first 255 and, last, a Resync.
	last := 0
	for range cap(s.C()) - 1 {
		n := next(t, s)
		require.False(t, n.Resync)
		k, err := strconv.Atoi(n.Payload)
		require.NoError(t, err)
		require.Equal(t, last+1, k)
		last = k
	}
	require.True(t, next(t, s).Resync, "a subscriber that missed messages is told to resync")
	// Any of the 300 still arriving after the drain come in order, then a
	// later notification; nothing more was missed, so no second Resync.
	_, err = pool.Exec(ctx, "select pg_notify($1, 'later')", notify.ChannelJobEvents)
	require.NoError(t, err)
	received := last
	for {
		n := next(t, s)
		require.False(t, n.Resync)
		if n.Payload == "later" {
			break
		}
		k, err := strconv.Atoi(n.Payload)
		require.NoError(t, err)
		require.Greater(t, k, last)
		last = k
		received++
	}
	require.Less(t, received, 300, "the notification that found the buffer full was dropped")
}
