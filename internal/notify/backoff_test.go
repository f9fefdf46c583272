package notify_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/notify"
)

// TestBackoff drives the reconnect policy with a fixed jitter and a
// hand-moved clock: delays grow while connections keep dropping, however
// often a connection is made, and reset only after one stayed up.
func TestBackoff(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	jitter := 0.5
	b := notify.Backoff{Min: 100 * ms, Max: 800 * ms, StableAfter: 30 * time.Second,
		Jitter: func() float64 { return jitter }}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("FailedAttemptsDoubleUpToMax", func(t *testing.T) {
		// The delay is drawn from the upper half of the bound: 0.5 gives 3/4.
		var got []time.Duration
		for range 5 {
			got = append(got, b.Failed())
		}
		require.Equal(t, []time.Duration{75 * ms, 150 * ms, 300 * ms, 600 * ms, 600 * ms}, got)
	})

	t.Run("AShortLivedConnectionDoesNotReset", func(t *testing.T) {
		// Connected, dropped after 2 s, again and again: still at the cap.
		for range 3 {
			b.Up(now)
			now = now.Add(2 * time.Second)
			require.Equal(t, 600*ms, b.Lost(now))
		}
	})

	t.Run("AStableConnectionResets", func(t *testing.T) {
		b.Up(now)
		now = now.Add(30 * time.Second)
		require.Equal(t, 75*ms, b.Lost(now), "the first reconnect after a stable connection still waits")
		require.Equal(t, 150*ms, b.Failed())
	})

	t.Run("JitterSpansTheUpperHalf", func(t *testing.T) {
		c := notify.Backoff{Min: 100 * ms, Max: time.Second, Jitter: func() float64 { return jitter }}
		jitter = 0
		require.Equal(t, 50*ms, c.Failed())
		jitter = 0.999
		require.InDelta(t, float64(200*ms), float64(c.Failed()), float64(ms))
	})
}
