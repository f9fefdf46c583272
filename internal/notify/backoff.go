package notify

import (
	"math/rand/v2"
	"time"
)

// Backoff is the reconnect policy of the LISTEN connection, a pure state
// machine (the caller passes the clock) so that it can be tested exactly.
//
// Delays double from Min to Max, each drawn at random from its upper half
// (jitter, so that replicas that lost the database together do not
// reconnect together). They are reset only once a connection has stayed
// up for StableAfter: a connection that keeps dropping right after it is
// made backs off like one that cannot be made at all. Every reconnect
// costs each replica a resync (the API key cache empties, so each active
// key costs an argon2id again, and every stream re-reads), which is why
// a flapping connection must not be retried at full speed.
type Backoff struct {
	Min         time.Duration // first delay (default 100 ms)
	Max         time.Duration // largest delay (default 10 s)
	StableAfter time.Duration // uptime that resets the delay (default 30 s)
	// Jitter returns a number in [0, 1); default math/rand/v2.
	Jitter func() float64

	delay   time.Duration // the last delay's upper bound, 0 after a reset
	upSince time.Time     // when the current connection was made
}

func (b *Backoff) defaults() {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	if b.StableAfter <= 0 {
		b.StableAfter = 30 * time.Second
	}
	if b.Jitter == nil {
		b.Jitter = rand.Float64
	}
}

// Failed returns how long to wait after a failed connection attempt.
func (b *Backoff) Failed() time.Duration {
	b.defaults()
	if b.delay == 0 {
		b.delay = b.Min
	} else {
		b.delay = min(b.delay*2, b.Max)
	}
	half := b.delay / 2
	return half + time.Duration(b.Jitter()*float64(b.delay-half))
}

// Up records that a connection was made at now.
func (b *Backoff) Up(now time.Time) { b.upSince = now }

// Lost returns how long to wait before reconnecting after the connection
// made at the last Up was lost at now. Only a connection that stayed up
// for StableAfter resets the delay.
func (b *Backoff) Lost(now time.Time) time.Duration {
	b.defaults()
	if !b.upSince.IsZero() && now.Sub(b.upSince) >= b.StableAfter {
		b.delay = 0
	}
	b.upSince = time.Time{}
	return b.Failed()
}
