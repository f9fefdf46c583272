package migrate_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/supabase"
)

// supabaseCLIEnv names the Supabase CLI binary (npm package supabase,
// 2.117.0 tested); scripts/supabase-push-check.sh installs it and sets it.
const supabaseCLIEnv = "CLIPPER_SUPABASE_CLI"

// The migrations apply with `supabase db push` as they do with dbmate: a
// second push is a no-op, the result is the schema dbmate builds, and
// dbmate can then run every file again over the CLI's database without
// changing it.
func TestSupabaseCLI(t *testing.T) {
	t.Parallel()
	cli := os.Getenv(supabaseCLIEnv)
	if cli == "" {
		t.Skip(supabaseCLIEnv + " is not set (scripts/supabase-push-check.sh sets it)")
	}
	ctx := context.Background()
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	applied, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	require.True(t, applied)

	// A project folder holding only supabase/migrations: the CLI needs no
	// config.toml for db push, and writes its scratch files (.temp) there
	// rather than into the repository.
	workdir := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(workdir, "supabase"), supabase.Migrations))

	push := func() string {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(pctx, cli, "db", "push", "--workdir", workdir,
			"--db-url", dsn, "--include-all", "--yes")
		cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1", "SUPABASE_TELEMETRY_DISABLED=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}

	names, _ := migrationFiles(t)
	first := push()
	for _, n := range names {
		require.Contains(t, first, "Applying migration "+n, first)
	}
	second := push()
	require.Contains(t, second, "Remote database is up to date", second)
	require.NotContains(t, second, "Applying migration", second)

	var versions []string
	rows, err := conn.Query(ctx, `select version from supabase_migrations.schema_migrations order by version`)
	require.NoError(t, err)
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	require.Len(t, versions, len(names))
	for i, n := range names {
		require.True(t, strings.HasPrefix(n, versions[i]+"_"), n)
	}

	// Same schema as dbmate builds.
	viaCLI := catalogSnapshot(t, conn, false)
	viaDbmate := catalogSnapshot(t, connect(t, pgtest.NewDatabase(t)), false)
	requireSameSnapshot(t, viaDbmate, viaCLI)

	// dbmate has no history here, so it applies every file again: nothing
	// may change.
	seedRows(t, conn)
	schema := catalogSnapshot(t, conn, true)
	data := dataSnapshot(t, conn)
	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	require.Equal(t, names, res.Applied)
	requireSameSnapshot(t, schema, catalogSnapshot(t, conn, true))
	require.Equal(t, data, dataSnapshot(t, conn))

	// And the CLI, after dbmate, still has nothing to do.
	require.Contains(t, push(), "Remote database is up to date")
}
