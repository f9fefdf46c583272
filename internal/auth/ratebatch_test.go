package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/pgtest"
)

// batchHang guards waits that must end; never an assertion about speed.
const batchHang = 10 * time.Second

type takeOutcome struct {
	d   auth.Decision
	err error
}

// submitTake starts a take and waits until it is pending, so that takes
// join the batch in the order they are submitted.
func submitTake(t *testing.T, l *auth.BatchLimiter, key uuid.UUID, perPeriod int) <-chan takeOutcome {
	t.Helper()
	n := l.Pending()
	out := make(chan takeOutcome, 1)
	go func() {
		d, err := l.Take(context.Background(), key, perPeriod)
		out <- takeOutcome{d, err}
	}()
	require.Eventually(t, func() bool { return l.Pending() == n+1 }, batchHang, time.Millisecond)
	return out
}

func waitTake(t *testing.T, c <-chan takeOutcome) takeOutcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(batchHang):
		t.Fatal("take did not return")
		return takeOutcome{}
	}
}

func TestBatchLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// One batch decides exactly what the same requests one statement each
	// decide, request by request, in arrival order: inside one transaction
	// now() stands still, so both are exact. The batch holds three keys
	// (one used before, one never used: it has no GCRA row yet) and a
	// request whose key's limit changed within the batch.
	t.Run("AsOneStatementEach", func(t *testing.T) {
		t.Parallel()
		tx := pgtest.Tx(t)
		single := auth.NewLimiter(tx)
		batch := auth.NewBatchLimiter(tx, batcher.Options{Manual: true})
		t.Cleanup(batch.Close)

		type req struct {
			key       int
			perPeriod int
		}
		reqs := []req{{0, 5}, {1, 3}, {0, 5}, {0, 5}, {2, 600}, {1, 3}, {0, 5}, {0, 5}, {1, 3}, {0, 5}, {1, 3}, {0, 5}, {2, 7}}
		// Twin keys: the batch limiter takes for one, the single one for
		// the other, so both start from the same state.
		var viaBatch, viaSingle [3]uuid.UUID
		for i := range 3 {
			viaBatch[i], viaSingle[i] = newKey(t, tx).ID, newKey(t, tx).ID
		}
		// Key 0 has spent two requests already (one statement each for
		// both twins, so its row exists and its tat is ahead of now).
		for range 2 {
			_, err := single.Take(ctx, viaBatch[0], 5)
			require.NoError(t, err)
			_, err = single.Take(ctx, viaSingle[0], 5)
			require.NoError(t, err)
		}

		outs := make([]<-chan takeOutcome, len(reqs))
		for i, r := range reqs {
			outs[i] = submitTake(t, batch, viaBatch[r.key], r.perPeriod)
		}
		batch.Flush()
		allowed := 0
		for i, r := range reqs {
			got := waitTake(t, outs[i])
			require.NoError(t, got.err, "request %d", i)
			want, err := single.Take(ctx, viaSingle[r.key], r.perPeriod)
			require.NoError(t, err)
			require.Equal(t, want, got.d, "request %d (key %d, limit %d)", i, r.key, r.perPeriod)
			if got.d.Allowed {
				allowed++
			}
		}
		// Key 0: 3 of its 7 fit after the 2 spent; key 1: 3 of 4; key 2: both.
		require.Equal(t, 3+3+2, allowed)
	})

	// A request of a key that does not exist gets the error it gets alone;
	// the batch's other requests are decided.
	t.Run("UnknownKeyFailsAlone", func(t *testing.T) {
		t.Parallel()
		pool, _ := pgtest.NewPool(t)
		batch := auth.NewBatchLimiter(pool, batcher.Options{Manual: true})
		t.Cleanup(batch.Close)
		key := newKey(t, pool)
		known := submitTake(t, batch, key.ID, 10)
		unknown := submitTake(t, batch, uuid.New(), 10)
		batch.Flush()
		k, u := waitTake(t, known), waitTake(t, unknown)
		require.NoError(t, k.err)
		require.True(t, k.d.Allowed)
		require.Equal(t, 9, k.d.Remaining)
		_, aloneErr := auth.NewLimiter(pool).Take(ctx, uuid.New(), 10)
		require.Error(t, aloneErr)
		require.Error(t, u.err)
		require.Equal(t, apperr.CodeOf(aloneErr), apperr.CodeOf(u.err))
	})

	t.Run("ClosedRefuses", func(t *testing.T) {
		t.Parallel()
		batch := auth.NewBatchLimiter(pgtest.SharedPool(t), batcher.Options{})
		batch.Close()
		_, err := batch.Take(ctx, uuid.New(), 10)
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
	})
}
