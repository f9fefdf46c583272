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

// The project folder as the CLI sees it (supabase/config.toml, migrations,
// seed.sql): the CLI parses config.toml (it refuses an invalid one before
// connecting), applies the migrations and the seed named by
// [db.seed].sql_paths, and the seeded demo user is there to sign in.
// `supabase start` itself needs Docker, which this machine lacks.
func TestSupabaseCLIProjectFolder(t *testing.T) {
	t.Parallel()
	cli := os.Getenv(supabaseCLIEnv)
	if cli == "" {
		t.Skip(supabaseCLIEnv + " is not set (scripts/supabase-push-check.sh sets it)")
	}
	ctx := context.Background()
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	_, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)

	workdir := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(workdir, "supabase"), supabase.Migrations))
	for _, f := range []string{"config.toml", "seed.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "supabase", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(workdir, "supabase", f), b, 0o644))
	}
	run := func(args ...string) (string, error) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(pctx, cli, append(args, "--workdir", workdir)...)
		cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1", "SUPABASE_TELEMETRY_DISABLED=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("db", "push", "--db-url", dsn, "--include-all", "--include-seed", "--yes")
	require.NoError(t, err, out)
	require.NotContains(t, out, "failed to parse config")
	require.Contains(t, out, "seed.sql", out)
	var email string
	require.NoError(t, conn.QueryRow(ctx, `select u.email from auth.users u join auth.identities i on i.user_id = u.id
		where u.encrypted_password like '$2%' and i.provider = 'email'`).Scan(&email))
	require.Equal(t, "demo@clipper.local", email)
	var limits string
	require.NoError(t, conn.QueryRow(ctx, `select string_agg(id || ' ' || file_size_limit, ', ' order by id) from storage.buckets`).Scan(&limits))
	require.Equal(t, "results 1073741824, sources 5368709120", limits)

	// The same check catches a broken config.toml: the CLI validates it.
	cfg := filepath.Join(workdir, "supabase", "config.toml")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `file_size_limit = "1GiB"`, `file_size_limit = "lots"`, 1)), 0o644))
	out, err = run("db", "push", "--db-url", dsn, "--dry-run")
	require.Error(t, err)
	require.Contains(t, out, "failed to parse config")
}
