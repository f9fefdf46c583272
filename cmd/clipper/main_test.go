package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/seed"
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

// TestMain runs the tests, or, when the test binary is started by a test
// with CLIPPER_TEST_RUN set, the command it names (the binary then plays
// clipper itself: see TestKilledDaemonLosesNothingAcknowledged).
func TestMain(m *testing.M) {
	if args := os.Getenv("CLIPPER_TEST_RUN"); args != "" {
		os.Exit(run(strings.Fields(args), os.Stderr))
	}
	pgtest.Main(m)
}

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

// Every command that opens the application's database reads it from
// DATABASE_URL_FILE as the daemon does (here with DATABASE_URL unset), and
// names the variable, never the file's contents, when it cannot.
func TestDatabaseURLFile(t *testing.T) {
	ctx := context.Background()
	pool, dsn := pgtest.NewPool(t)
	path := t.TempDir() + "/dsn"
	require.NoError(t, os.WriteFile(path, []byte(dsn+"\n"), 0o600))
	t.Setenv("DATABASE_URL", "")
	t.Setenv("DATABASE_URL_FILE", path)
	count := func(sql string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}

	for _, args := range [][]string{
		{"migrate", "--status"},
		{"migrate"},
		{"seed"},
		{"keys", "create", "--name", "from-file", "--scopes", "admin"},
		{"keys", "list"},
		{"cleanup"},
	} {
		var out bytes.Buffer
		require.Equal(t, 0, run(args, &out), "%v: %s", args, out.String())
	}
	require.Equal(t, 1, count("select count(*) from api_keys where name = 'from-file'"))
	require.Equal(t, 1, count("select count(*) from auth.users where id = '"+seed.DemoUserID+"'"))

	// dev uses the database the file names instead of starting its own:
	// it migrates and seeds it (a new demo key), then the daemon cannot
	// listen on an impossible address and dev stops.
	demoKeys := count("select count(*) from api_keys")
	t.Setenv("CLIPPER_ADDR", "256.0.0.1:1")
	var out bytes.Buffer
	require.Equal(t, 1, run([]string{"dev", "--dir", t.TempDir()}, &out), out.String())
	require.Equal(t, demoKeys+1, count("select count(*) from api_keys"), "dev seeded the file's database")

	// bench takes its server only from its flags; the file form names the
	// flag, not the contents, when it cannot be read.
	out.Reset()
	require.Equal(t, 2, run([]string{"bench", "--database-url-file", path + ".missing"}, &out))
	require.Contains(t, out.String(), "--database-url-file: cannot read the file it names")
	out.Reset()
	require.Equal(t, 2, run([]string{"bench", "--database-url", dsn, "--database-url-file", path}, &out))
	require.Contains(t, out.String(), "give --database-url or --database-url-file, not both")
	require.NotContains(t, out.String(), dsn)

	t.Setenv("DATABASE_URL_FILE", path+".missing")
	for _, args := range [][]string{{"migrate"}, {"seed"}, {"keys", "list"}, {"cleanup"}, {"dev"}, {"serve"}} {
		out.Reset()
		require.Equal(t, 2, run(args, &out), "%v: %s", args, out.String())
		require.Contains(t, out.String(), "DATABASE_URL_FILE: cannot read the file it names", args)
		require.NotContains(t, out.String(), dsn)
	}
}
