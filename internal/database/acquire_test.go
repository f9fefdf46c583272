package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestAcquireLimited: with every connection taken, a call fails with
// unavailable after the acquire timeout instead of queueing for as long
// as its caller's context allows (here: forever); and every kind of call
// gives its connection back.
func TestAcquireLimited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	db := database.AcquireLimited{Pool: pool, Timeout: 200 * time.Millisecond}

	held, err := pool.Acquire(ctx)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := db.Exec(ctx, "select 1"); done <- err }()
	select {
	case err := <-done:
		require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
	case <-time.After(10 * time.Second):
		t.Fatal("a call queued for a connection past the acquire timeout")
	}
	var n int
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(db.QueryRow(ctx, "select 1").Scan(&n)))
	held.Release()

	_, err = db.Exec(ctx, "select 1")
	require.NoError(t, err)
	rows, err := db.Query(ctx, "select generate_series(1, 3)")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3}, got)
	require.NoError(t, db.QueryRow(ctx, "select 7").Scan(&n))
	require.Equal(t, 7, n)
	b := &pgx.Batch{}
	b.Queue("select 1")
	require.NoError(t, db.SendBatch(ctx, b).Close())
	require.NoError(t, database.InTx(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "select 1")
		return err
	}))
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, pool.Stat().AcquiredConns(), "every call gave its connection back")
}
