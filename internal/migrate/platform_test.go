package migrate_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgcluster"
	"github.com/clipper/clipper/internal/pgtest"
)

// The usual local DSN has no sslmode. pgx then prefers TLS and falls back
// to a plain connection; the migrations must connect the same way, not
// bootstrap over pgx and then fail ("SSL is not enabled on the server").
func TestUpWithoutSSLMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := url.Parse(emptyDatabase(t))
	require.NoError(t, err)
	q := u.Query()
	q.Del("sslmode")
	u.RawQuery = q.Encode()
	dsn := u.String()
	require.NotContains(t, dsn, "sslmode")

	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.True(t, res.Bootstrapped)
	names, _ := migrationFiles(t)
	require.Equal(t, names, res.Applied)
	status, err := migrate.Status(ctx, dsn)
	require.NoError(t, err)
	for _, m := range status {
		require.True(t, m.Applied, m.Name)
	}

	// The key=value form pgx and libpq also accept.
	var kv []string
	kv = append(kv, "host="+u.Hostname(), "port="+u.Port(), "dbname="+strings.TrimPrefix(u.Path, "/"))
	if user := u.User.Username(); user != "" {
		kv = append(kv, "user="+user)
	}
	if pw, ok := u.User.Password(); ok {
		kv = append(kv, "password="+pw)
	}
	res, err = migrate.Up(ctx, strings.Join(kv, " "), nil)
	require.NoError(t, err)
	require.Empty(t, res.Applied)
}

// A failure part-way says what was applied and how to resume, and running
// again after the cause is fixed finishes the job.
func TestUpFailureSaysHowToResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	// Something in the way of the first migration: a jobs table of
	// another shape, so its indexes cannot be created.
	_, err := conn.Exec(ctx, `create table public.jobs (id int)`)
	require.NoError(t, err)

	_, err = migrate.Up(ctx, dsn, nil)
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "20261127000100_jobs.sql")
	require.Contains(t, msg, "The plain-Postgres base was applied")
	require.Contains(t, msg, "0 of ")
	require.Contains(t, msg, "was rolled back")
	require.Contains(t, msg, "run clipper migrate again")
	require.NotContains(t, msg, dsn)

	_, err = conn.Exec(ctx, `drop table public.jobs`)
	require.NoError(t, err)
	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	names, _ := migrationFiles(t)
	require.Equal(t, names, res.Applied)
}

// In a project shared with another app, the migrations take the API
// roles' rights only on this project's sequences.
func TestSequencePrivilegesOwnOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	_, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	// Another app's table with an identity in public, as PostgREST users
	// of that app need it.
	_, err = conn.Exec(ctx, `create table public.other_app_notes (id bigint generated always as identity primary key, body text);
		create sequence public.other_app_counter;
		grant usage, select on sequence public.other_app_notes_id_seq, public.other_app_counter to anon, authenticated`,
		pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	_, err = migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)

	priv := func(role, seq string) bool {
		var ok bool
		require.NoError(t, conn.QueryRow(ctx, `select has_sequence_privilege($1, $2, 'usage')`, role, seq).Scan(&ok))
		return ok
	}
	for _, role := range []string{"anon", "authenticated"} {
		require.True(t, priv(role, "public.other_app_notes_id_seq"), role)
		require.True(t, priv(role, "public.other_app_counter"), role)
		require.False(t, priv(role, "public.job_events_id_seq"), role)
		var update bool
		require.NoError(t, conn.QueryRow(ctx, `select has_sequence_privilege($1, 'public.job_events_id_seq', 'update')`, role).Scan(&update))
		require.False(t, update, role)
	}
	require.True(t, priv("service_role", "public.job_events_id_seq"))
}

// The buckets get size and type limits fitting video/audio sources and
// clip results; settings given at migration time override them, also on
// existing buckets; a replay without settings keeps a limit changed later.
func TestBucketLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	limits := func(conn *pgx.Conn) []string {
		rows, err := conn.Query(ctx, `select id || ' ' || coalesce(file_size_limit::text, 'null') || ' ' ||
			coalesce(array_to_string(allowed_mime_types, ','), 'null') from storage.buckets order by id`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	defaults := []string{"results 1073741824 video/*,audio/*,image/*", "sources 5368709120 video/*,audio/*"}

	conn := connect(t, pgtest.NewDatabase(t))
	require.Equal(t, defaults, limits(conn))

	_, sqls := migrationFiles(t)
	file := "20261202140100_bucket_limits.sql"
	// Changed later (dashboard or SQL): a replay keeps it.
	_, err := conn.Exec(ctx, `update storage.buckets set file_size_limit = 42 where id = 'results'`)
	require.NoError(t, err)
	applyLikeSupabaseCLI(t, conn, file, sqls[file])
	require.Equal(t, []string{"results 42 video/*,audio/*,image/*", defaults[1]}, limits(conn))

	// Settings win, on existing buckets too.
	settings := `set clipper.results_file_size_limit = '2147483648';
		set clipper.sources_allowed_mime_types = 'video/mp4, video/webm ,audio/*';`
	_, err = conn.Exec(ctx, settings, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	applyLikeSupabaseCLI(t, conn, file, sqls[file])
	require.Equal(t, []string{"results 2147483648 video/*,audio/*,image/*", "sources 5368709120 video/mp4,video/webm,audio/*"},
		limits(conn))

	// A bad setting is refused with its name, changing nothing.
	_, err = conn.Exec(ctx, `set clipper.sources_file_size_limit = '5GB'`)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sqls[file], pgx.QueryExecModeSimpleProtocol)
	require.ErrorContains(t, err, "clipper.sources_file_size_limit")
	require.NoError(t, tx.Rollback(ctx))

	// And through clipper migrate, with PGOPTIONS-style options in the DSN.
	dsn := emptyDatabase(t)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("options", "-c clipper.sources_file_size_limit=1000000")
	u.RawQuery = q.Encode()
	_, err = migrate.Up(ctx, u.String(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{defaults[0], "sources 1000000 video/*,audio/*"}, limits(connect(t, dsn)))
}

// Where pg_cron is installed, the migrations schedule the cleanup, once;
// elsewhere they do nothing. pg_cron needs shared_preload_libraries and
// lives in one database per cluster (cron.database_name), so this runs its
// own cluster.
func TestPgCronCleanupSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("WithoutPgCron", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, pgtest.NewDatabase(t))
		var cron *string
		require.NoError(t, conn.QueryRow(ctx, `select to_regnamespace('cron')::text`).Scan(&cron))
		require.Nil(t, cron)
	})

	t.Run("WithPgCron", func(t *testing.T) {
		t.Parallel()
		bin, err := pgcluster.FindBinDir()
		require.NoError(t, err)
		out, err := exec.Command(filepath.Join(bin, "pg_config"), "--pkglibdir").Output()
		if err != nil {
			out, err = exec.Command("pg_config", "--pkglibdir").Output()
		}
		if err != nil || !fileExists(filepath.Join(strings.TrimSpace(string(out)), "pg_cron.so")) {
			t.Skip("pg_cron is not installed for this PostgreSQL (Debian: apt-get install postgresql-15-cron); " +
				"the schedule's no-op path is tested by WithoutPgCron")
		}
		dir, err := os.MkdirTemp("", "clipper-cron-")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cluster, err := pgcluster.Start(sctx, pgcluster.Options{DataDir: dir, Fast: true, Settings: map[string]string{
			"shared_preload_libraries": "pg_cron",
			"cron.database_name":       "clipper_cron",
		}})
		require.NoError(t, err)
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = cluster.Stop(c)
		})
		admin := connect(t, cluster.DSN("postgres"))
		_, err = admin.Exec(ctx, `create database clipper_cron`)
		require.NoError(t, err)
		dsn := cluster.DSN("clipper_cron")
		conn := connect(t, dsn)
		_, err = conn.Exec(ctx, `create extension pg_cron`)
		require.NoError(t, err)

		_, err = migrate.Up(ctx, dsn, nil)
		require.NoError(t, err)
		jobs := func() []string {
			rows, err := conn.Query(ctx, `select format('%s|%s|%s|%s|%s', jobname, schedule, command, database, username)
				from cron.job order by jobid`)
			require.NoError(t, err)
			out, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			return out
		}
		want := []string{"clipper-cleanup|*/5 * * * *|call clipper_internal.cleanup_expired(1000, 100)|clipper_cron|postgres"}
		require.Equal(t, want, jobs())

		// Replayed: still one job; a changed schedule is kept.
		_, err = conn.Exec(ctx, `select cron.alter_job((select jobid from cron.job where jobname = 'clipper-cleanup'), schedule := '*/15 * * * *')`)
		require.NoError(t, err)
		_, sqls := migrationFiles(t)
		file := "20261202140200_pg_cron_cleanup.sql"
		applyLikeSupabaseCLI(t, conn, file, sqls[file])
		require.Equal(t, []string{strings.Replace(want[0], "*/5", "*/15", 1)}, jobs())

		// The job's command runs as pg_cron runs it: a top-level statement
		// in that database, as the role that scheduled it.
		var command string
		require.NoError(t, conn.QueryRow(ctx, `select command from cron.job where jobname = 'clipper-cleanup'`).Scan(&command))
		_, err = conn.Exec(ctx, `insert into auth.users (id) values ($1);`, ownerA)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `insert into public.jobs (owner_id, source_type, source_url) values ($1, 'youtube', 'https://youtu.be/1')`, ownerA)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `update public.jobs set status = 'canceled', expires_at = now() - interval '1 day'`)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, command)
		require.NoError(t, err)
		var left int
		require.NoError(t, conn.QueryRow(ctx, `select count(*) from public.jobs`).Scan(&left))
		require.Zero(t, left)
	})
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
