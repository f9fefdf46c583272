package storage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/storage"
)

func TestTTLPolicy(t *testing.T) {
	t.Parallel()
	p := storage.TTLPolicy{Default: time.Minute, Max: time.Hour}

	t.Run("DefaultForZero", func(t *testing.T) {
		t.Parallel()
		got, err := p.Resolve(0)
		require.NoError(t, err)
		require.Equal(t, time.Minute, got)
	})

	t.Run("Explicit", func(t *testing.T) {
		t.Parallel()
		for _, d := range []time.Duration{time.Second, 5 * time.Minute, time.Hour} {
			got, err := p.Resolve(d)
			require.NoError(t, err)
			require.Equal(t, d, got)
		}
	})

	t.Run("TruncatedToSeconds", func(t *testing.T) {
		t.Parallel()
		got, err := p.Resolve(1500 * time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, time.Second, got)
	})

	t.Run("AboveMaxRefused", func(t *testing.T) {
		t.Parallel()
		_, err := p.Resolve(time.Hour + time.Second)
		apperrtest.RequireError(t, err, apperr.InvalidInput, "above the maximum of 1h0m0s")
	})

	t.Run("BelowOneSecondRefused", func(t *testing.T) {
		t.Parallel()
		for _, d := range []time.Duration{time.Millisecond, 999 * time.Millisecond, -time.Minute} {
			_, err := p.Resolve(d)
			apperrtest.RequireError(t, err, apperr.InvalidInput, "below the minimum of 1s")
		}
	})

	t.Run("ZeroPolicyIsShort", func(t *testing.T) {
		t.Parallel()
		var zero storage.TTLPolicy
		got, err := zero.Resolve(0)
		require.NoError(t, err)
		require.Equal(t, storage.DefaultTTL, got)
		require.Equal(t, 60*time.Second, got)
		_, err = zero.Resolve(storage.DefaultMaxTTL + time.Second)
		apperrtest.RequireError(t, err, apperr.InvalidInput, "maximum of 1h0m0s")
	})
}
