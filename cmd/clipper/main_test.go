package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
)

func TestUsageAndCommandErrors(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &out))
	for _, c := range commands() {
		require.Contains(t, out.String(), c.name)
	}

	out.Reset()
	require.Equal(t, 2, run([]string{"frobnicate"}, &out))
	require.Contains(t, out.String(), `unknown command "frobnicate"`)

	t.Setenv("DATABASE_URL", "")
	out.Reset()
	require.Equal(t, 2, run([]string{"migrate", "--status"}, &out))
	require.Contains(t, out.String(), "DATABASE_URL is not set")

	out.Reset()
	require.Equal(t, 0, run([]string{"cleanup", "--help"}, &out))
	require.Equal(t, 2, run([]string{"cleanup", "--batch-size", "0"}, &out))
	require.Contains(t, out.String(), "--batch-size must be 1 to")
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// clipper cleanup takes the daemon's retention lock: it refuses to run
// beside a scheduled cleanup, and runs once the lock is free.
func TestCleanupSharesTheDaemonsLock(t *testing.T) {
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	t.Setenv("DATABASE_URL", dsn)
	_, err := pool.Exec(ctx, `insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/x');
		update jobs set status = 'canceled', expires_at = now() - interval '1 minute'`)
	require.NoError(t, err)

	held, err := pool.Acquire(ctx)
	require.NoError(t, err)
	var locked bool
	require.NoError(t, held.QueryRow(ctx, "select pg_try_advisory_lock($1)", int64(0x636c6970_72657400)).Scan(&locked))
	require.True(t, locked)
	var out bytes.Buffer
	require.Equal(t, 1, run([]string{"cleanup"}, &out))
	require.Contains(t, out.String(), "another cleanup")

	_, err = held.Exec(ctx, "select pg_advisory_unlock($1)", int64(0x636c6970_72657400))
	require.NoError(t, err)
	held.Release()
	out.Reset()
	require.Equal(t, 0, run([]string{"cleanup"}, &out))
	var n int
	require.NoError(t, pool.QueryRow(ctx, "select count(*) from jobs").Scan(&n))
	require.Zero(t, n)
}
