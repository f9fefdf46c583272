package auth_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/pgtest"
)

// cheap are argon2id parameters for tests that only need keys to exist.
var cheap = apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

func newKey(t *testing.T, db database.DB) apikeys.Key {
	t.Helper()
	repo, err := apikeys.NewRepo(db, apikeys.Options{Params: cheap})
	require.NoError(t, err)
	key, _, err := repo.Create(context.Background(), apikeys.CreateParams{Name: "limited", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	require.NoError(t, err)
	return key
}

func TestPGLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Inside one transaction now() stands still, so these are exact.
	t.Run("BurstThenRefuse", func(t *testing.T) {
		t.Parallel()
		tx := pgtest.Tx(t)
		l := auth.NewLimiter(tx)
		key := newKey(t, tx)
		for i := range 5 {
			d, err := l.Take(ctx, key.ID, 5)
			require.NoError(t, err)
			require.True(t, d.Allowed, "request %d", i+1)
			require.Equal(t, 5, d.Limit)
			require.Equal(t, 4-i, d.Remaining)
			require.Equal(t, time.Duration(i+1)*12*time.Second, d.Reset)
		}
		d, err := l.Take(ctx, key.ID, 5)
		require.NoError(t, err)
		require.Equal(t, auth.Decision{Limit: 5, Reset: time.Minute, RetryAfter: 12 * time.Second}, d)

		// 12 s later (moved by hand) exactly one more fits.
		_, err = tx.Exec(ctx, `update clipper_internal.api_key_rate_limits set tat = tat - interval '12 seconds' where key_id = $1`, key.ID)
		require.NoError(t, err)
		d, err = l.Take(ctx, key.ID, 5)
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.Zero(t, d.Remaining)
		d, err = l.Take(ctx, key.ID, 5)
		require.NoError(t, err)
		require.False(t, d.Allowed)
	})

	t.Run("LimitsThatDoNotDivideAMinute", func(t *testing.T) {
		t.Parallel()
		tx := pgtest.Tx(t)
		l := auth.NewLimiter(tx)
		for _, limit := range []int{7, 13, 600, 1_000_000 / 997} {
			key := newKey(t, tx)
			allowed := 0
			for range limit + 3 {
				d, err := l.Take(ctx, key.ID, limit)
				require.NoError(t, err)
				if d.Allowed {
					allowed++
				}
			}
			require.Equal(t, limit, allowed, "limit %d", limit)
		}
	})

	t.Run("RowsGoWithTheirKey", func(t *testing.T) {
		t.Parallel()
		tx := pgtest.Tx(t)
		key := newKey(t, tx)
		_, err := auth.NewLimiter(tx).Take(ctx, key.ID, 10)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `delete from api_keys where id = $1`, key.ID)
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `select count(*) from clipper_internal.api_key_rate_limits where key_id = $1`, key.ID).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("UnknownKey", func(t *testing.T) {
		t.Parallel()
		tx := pgtest.Tx(t)
		_, err := auth.NewLimiter(tx).Take(ctx, uuid.New(), 10)
		require.Error(t, err)
	})

	// Two pools stand for two replicas, each with a single-statement and
	// a batching limiter (auth.BatchLimiter); committed, concurrent
	// requests admit exactly the limit between them.
	t.Run("SharedAcrossReplicas", func(t *testing.T) {
		t.Parallel()
		pool, dsn := pgtest.NewPool(t)
		other, err := pgxpool.New(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(other.Close)
		key := newKey(t, pool)
		batchA, batchB := auth.NewBatchLimiter(pool, batcher.Options{}), auth.NewBatchLimiter(other, batcher.Options{})
		t.Cleanup(batchA.Close)
		t.Cleanup(batchB.Close)
		limiters := []auth.Limiter{auth.NewLimiter(pool), auth.NewLimiter(other), batchA, batchB}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := range 80 {
			wg.Go(func() {
				d, err := limiters[i%len(limiters)].Take(ctx, key.ID, 10)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 10, allowed.Load())
	})
}
