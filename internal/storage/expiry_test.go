package storage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireExpiry checks that a URL signed between start and now for ttl
// expires ttl after signing: tokens carry whole seconds, and how long the
// call took depends on the machine's load, so the bounds come from the
// clock on both sides of the call, not from a fixed margin.
func requireExpiry(t *testing.T, start time.Time, ttl time.Duration, got time.Time) {
	t.Helper()
	earliest := start.Add(ttl).Add(-time.Second)
	latest := time.Now().Add(ttl).Add(time.Second)
	require.False(t, got.Before(earliest), "expires %s, before %s", got, earliest)
	require.False(t, got.After(latest), "expires %s, after %s", got, latest)
}
