package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// RetryPolicy bounds how calls are retried. Zero values take the defaults.
//
// A call is retried only when repeating it cannot do harm:
//   - any call, on 429 rate_limited (after Retry-After), 503 unavailable,
//     and on a connection that could not be made (the request never left);
//   - calls that are safe to repeat (reads, heartbeats, progress, events,
//     URL signing, complete, cancel, and creates, which always carry an
//     Idempotency-Key), also on 500, 502, 504 and on a connection lost
//     after the request was sent.
//
// Claim and fail are not repeated after a lost answer: a repeated claim
// would take more jobs than the caller will work on, and a repeated fail
// answers invalid_transition once the first went through.
type RetryPolicy struct {
	// MaxAttempts is how many times one call is sent at most (default 5;
	// 1 turns retries off).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults 200 ms and 10 s); each wait is jittered between
	// half and all of it, so that many clients do not retry in step.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits out
	// (default 60 s); a longer one is returned as the error.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = 200 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Minute
	}
	return p
}

// backoff is the jittered wait before attempt n+1 (n >= 1).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// safety says when a request may be sent again.
type safety int

const (
	// once: only when it surely did nothing (429, 503, no connection).
	once safety = iota
	// idempotent: also after a lost answer or a 5xx.
	idempotent
)

// retryable reports whether an attempt's outcome may be retried under s.
// status is 0 when no answer arrived (then err is the transport error).
func retryable(s safety, status int, err error) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return s == idempotent
	case 0:
		if err == nil {
			return false
		}
		return notSent(err) || s == idempotent
	}
	return false
}

// notSent reports whether err shows that the request never reached the
// server: the connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-t.C:
		return nil
	}
}
