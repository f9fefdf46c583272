package client

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	for n := 1; n <= 20; n++ {
		want := min(100*time.Millisecond<<(n-1), time.Second)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.backoff(n)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			require.LessOrEqual(t, d, want, "attempt %d", n)
			seen[d] = true
		}
		require.Greater(t, len(seen), 1, "waits are jittered")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	require.Equal(t, 7*time.Second, retryAfter(h("7"), now))
	require.Equal(t, 90*time.Second, retryAfter(h(now.Add(90*time.Second).Format(http.TimeFormat)), now))
	require.Zero(t, retryAfter(h(now.Add(-time.Minute).Format(http.TimeFormat)), now))
	require.Zero(t, retryAfter(h("soon"), now))
	require.Zero(t, retryAfter(http.Header{}, now))
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Err: syscall.ECONNRESET}
	for _, c := range []struct {
		s      safety
		status int
		err    error
		want   bool
	}{
		{once, 429, nil, true}, {once, 503, nil, true}, {once, 0, dial, true},
		{once, 500, nil, false}, {once, 502, nil, false}, {once, 0, reset, false},
		{idempotent, 500, nil, true}, {idempotent, 504, nil, true}, {idempotent, 0, reset, true},
		{idempotent, 400, nil, false}, {idempotent, 404, nil, false}, {idempotent, 409, nil, false},
	} {
		require.Equal(t, c.want, retryable(c.s, c.status, c.err), "%v %d %v", c.s, c.status, c.err)
	}
}

func TestErrorMatching(t *testing.T) {
	t.Parallel()
	err := error(&Error{Code: CodeInvalidTransition, Message: "job x is canceled, not processing", Status: 409})
	require.ErrorIs(t, err, ErrInvalidTransition)
	require.NotErrorIs(t, err, ErrNotFound)
	require.True(t, IsJobLost(err))
	require.True(t, IsJobLost(&Error{Code: CodeNotFound}))
	require.False(t, IsJobLost(&Error{Code: CodeNotFound, Transfer: true}), "a missing object is not a lost job")
	require.False(t, IsJobLost(errors.New("boom")))
	require.Equal(t, CodeInternal, CodeOf(errors.New("boom")))
	require.Equal(t, Code(""), CodeOf(nil))
}

func TestPostgRESTCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		code    string
		status  int
		details string
		want    Code
	}{
		{"PGRST116", 406, "The result contains 0 rows", CodeNotFound},
		{"PGRST116", 406, "The result contains 2 rows", CodeConflict},
		{"42501", 403, "", CodeForbidden},
		{"42501", 401, "", CodeUnauthorized},
		{"23505", 409, "", CodeConflict},
		{"23514", 400, "", CodeInvalidInput},
		{"22P02", 400, "", CodeInvalidInput},
		{"CL001", 400, "", CodeInvalidTransition},
		{"PGRST301", 401, "", CodeUnauthorized},
		{"PGRST000", 503, "", CodeUnavailable},
		{"PGRST100", 400, "", CodeInvalidInput},
		{"", 502, "", CodeUnavailable},
		{"", 401, "", CodeUnauthorized},
	} {
		require.Equal(t, c.want, codeForPostgREST(c.code, c.status, c.details), "%s %d", c.code, c.status)
	}
}
