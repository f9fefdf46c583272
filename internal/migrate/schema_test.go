package migrate_test

import (
	"context"
	"io/fs"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgtest"
)

// A fresh plain PostgreSQL database gets the base and every migration, and
// ends up with exactly the objects the migrations declare.
func TestFreshDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := emptyDatabase(t)

	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.True(t, res.Bootstrapped)
	names, sqls := migrationFiles(t)
	require.Equal(t, names, res.Applied)

	// A pool: the subtests below run in parallel.
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	strs := func(t *testing.T, q string, args ...any) []string {
		t.Helper()
		rows, err := pool.Query(ctx, q, args...)
		require.NoError(t, err, q)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, q)
		return out
	}
	var all []string
	for _, n := range names {
		all = append(all, sqls[n])
	}

	t.Run("Tables", func(t *testing.T) {
		t.Parallel()
		got := strs(t, `select table_schema || '.' || table_name from information_schema.tables
			where table_schema = 'public' order by 1`)
		require.Subset(t, got, []string{"public.api_keys", "public.job_events", "public.jobs"})
		require.Equal(t, declared(all, `create table (?:if not exists )?(public\.\w+)`, `drop table (?:if exists )?(public\.\w+)`), got)
		// Every table PostgREST exposes has row-level security on.
		require.Empty(t, strs(t, `select relname::text from pg_class c where relnamespace = 'public'::regnamespace
			and relkind in ('r', 'p') and not relrowsecurity`))
		// dbmate's history stays out of the exposed schema.
		require.Empty(t, strs(t, `select relname::text from pg_class where relnamespace = 'public'::regnamespace
			and relname = 'schema_migrations'`))
		require.Equal(t, []string{"clipper_meta.schema_migrations"},
			strs(t, `select coalesce(to_regclass($1)::text, '')`, migrate.HistoryTable))
	})

	t.Run("Enums", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"queued", "processing", "done", "failed", "canceled"},
			strs(t, `select unnest(enum_range(null::public.job_status))::text`))
		require.Equal(t, []string{"youtube", "upload"},
			strs(t, `select unnest(enum_range(null::public.job_source_type))::text`))
	})

	t.Run("Indexes", func(t *testing.T) {
		t.Parallel()
		got := strs(t, `select c.relname::text from pg_index i join pg_class c on c.oid = i.indexrelid
			where c.relnamespace in ('public'::regnamespace, 'clipper_internal'::regnamespace) order by 1`)
		require.Subset(t, got, []string{
			"api_keys_lookup_id_key",
			"api_keys_owner_id_idx",
			"api_keys_pkey",
			"api_keys_rotated_from_idx",
			"job_events_pkey",
			"jobs_api_key_created_at_idx",
			"jobs_expires_at_idx",
			"jobs_idempotency_key_idx",
			"jobs_owner_created_at_idx",
			"jobs_pkey",
			"jobs_status_created_at_idx",
		})
		// Exactly the declared indexes, plus those behind primary key and
		// unique constraints.
		want := declared(all, `create (?:unique )?index (?:concurrently )?(?:if not exists )?(\w+)`,
			`drop index (?:concurrently )?(?:if exists )?(?:public\.)?(\w+)`)
		want = append(want, strs(t, `select conname::text from pg_constraint
			where connamespace in ('public'::regnamespace, 'clipper_internal'::regnamespace) and contype in ('p', 'u', 'x')`)...)
		require.ElementsMatch(t, want, got)

		// The definitions the hot queries rely on.
		defs := strs(t, `select pg_get_indexdef(indexrelid) from pg_index
			where indexrelid::regclass::text in ('jobs_status_created_at_idx', 'jobs_expires_at_idx',
			  'jobs_owner_created_at_idx', 'job_events_pkey', 'jobs_idempotency_key_idx') order by indexrelid::regclass::text`)
		require.Equal(t, []string{
			"CREATE UNIQUE INDEX job_events_pkey ON public.job_events USING btree (job_id, ts, id)",
			"CREATE INDEX jobs_expires_at_idx ON public.jobs USING btree (expires_at) WHERE (expires_at IS NOT NULL)",
			"CREATE UNIQUE INDEX jobs_idempotency_key_idx ON public.jobs USING btree (COALESCE(owner_id, api_key_id), idempotency_key)",
			"CREATE INDEX jobs_owner_created_at_idx ON public.jobs USING btree (owner_id, created_at, id) WHERE (owner_id IS NOT NULL)",
			"CREATE INDEX jobs_status_created_at_idx ON public.jobs USING btree (status, created_at, id)",
		}, defs)
	})

	t.Run("Policies", func(t *testing.T) {
		t.Parallel()
		got := strs(t, `select policyname::text from pg_policies where schemaname in ('public', 'storage') order by 1`)
		require.Subset(t, got, []string{
			"api_keys_select_own",
			"clipper_sources_insert_own",
			"clipper_sources_select_own",
			"job_events_select_own",
			"jobs_cancel_own",
			"jobs_insert_own",
			"jobs_select_own",
		})
		// The Realtime policy exists only where Realtime's objects do (not here).
		require.Equal(t, without(declared(all, `create policy (\w+)`, `drop policy (?:if exists )?(\w+)`), realtimeOnly...), got)
		// Policies name their role; none applies to anon or public.
		require.Empty(t, strs(t, `select policyname::text from pg_policies
			where schemaname in ('public', 'storage') and roles <> '{authenticated}'`))
	})

	t.Run("Triggers", func(t *testing.T) {
		t.Parallel()
		got := strs(t, `select tgname::text from pg_trigger where not tgisinternal order by 1`)
		require.Subset(t, got, []string{
			"job_events_no_delete",
			"job_events_no_truncate",
			"job_events_no_update",
			"job_events_notify",
			"jobs_before_write",
			"jobs_write_events_insert",
			"jobs_write_events_update",
		})
		require.Equal(t, without(declared(all, `create (?:or replace )?(?:constraint )?trigger (\w+)`,
			`drop trigger (?:if exists )?(\w+)`), realtimeOnly...), got)
	})

	t.Run("Buckets", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"results public=false", "sources public=false"},
			strs(t, `select id || ' public=' || coalesce(public, true)::text from storage.buckets order by id`))
	})
}

// Applying the whole set again, with dbmate or by hand as the Supabase CLI
// does, succeeds and changes nothing: no object is altered or recreated
// (oids included) and no row is touched.
func TestMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	conn := connect(t, dsn)
	seedRows(t, conn)
	schema := catalogSnapshot(t, conn, true)
	data := dataSnapshot(t, conn)
	require.NotEmpty(t, schema)

	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	require.Empty(t, res.Applied)
	requireSameSnapshot(t, schema, catalogSnapshot(t, conn, true))
	require.Equal(t, data, dataSnapshot(t, conn))

	// In order, as both tools apply them: a later file may redefine what an
	// earlier one made (create or replace), so the order matters.
	names, sqls := migrationFiles(t)
	for round := 0; round < 2; round++ {
		for _, n := range names {
			applyLikeSupabaseCLI(t, conn, n, sqls[n])
		}
		requireSameSnapshot(t, schema, catalogSnapshot(t, conn, true))
		require.Equal(t, data, dataSnapshot(t, conn), "round %d", round)
	}

}

// A database on the previous migration set, holding data, takes the newest
// migration without losing or changing a row.
func TestUpgradeKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := emptyDatabase(t)
	names, sqls := migrationFiles(t)
	require.GreaterOrEqual(t, len(names), 2)
	previous, last := names[:len(names)-1], names[len(names)-1]

	conn := connect(t, dsn)
	applied, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	require.True(t, applied)

	// dbmate over the previous set only.
	older := fstest.MapFS{}
	for _, n := range previous {
		older["migrations/"+n] = &fstest.MapFile{Data: []byte(sqls[n])}
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	db := dbmate.New(u)
	db.FS = fs.FS(older)
	db.MigrationsDir = []string{"migrations"}
	db.MigrationsTableName = migrate.HistoryTable
	db.AutoDumpSchema = false
	db.Log = nopWriter{}
	require.NoError(t, db.Migrate())

	status, err := migrate.Status(ctx, dsn)
	require.NoError(t, err)
	for _, m := range status {
		require.Equal(t, m.Name != last, m.Applied, m.Name)
	}

	seedRows(t, conn)
	before := dataSnapshot(t, conn)

	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	require.Equal(t, []string{last}, res.Applied)
	require.Equal(t, before, dataSnapshot(t, conn))

	// The upgraded database matches one built from scratch.
	fresh := connect(t, pgtest.NewDatabase(t))
	requireSameSnapshot(t, catalogSnapshot(t, fresh, false), catalogSnapshot(t, conn, false))
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// job_events_type_check keeps its rule (a lower-case letter, then up to 63
// of [a-z0-9_.]) whatever form the check takes.
func TestEventTypeRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	var job string
	require.NoError(t, tx.QueryRow(ctx, `with u as (insert into auth.users (id) values (gen_random_uuid()) returning id)
		insert into jobs (owner_id, source_type, source_url) select id, 'youtube', 'https://x.test/v' from u
		returning id`).Scan(&job))
	try := func(typ string) error {
		sp, err := tx.Begin(ctx)
		require.NoError(t, err)
		defer sp.Rollback(ctx) //nolint:errcheck
		_, err = sp.Exec(ctx, `insert into job_events (job_id, type) values ($1, $2)`, job, typ)
		return err
	}
	for _, ok := range []string{"a", "status", "progress", "worker.log_line", "x9", "a" + strings.Repeat("b", 63)} {
		require.NoError(t, try(ok), ok)
	}
	for _, bad := range []string{"", "A", "Status", "9a", "_a", ".a", "a-b", "a b", "é", "aé",
		"a" + strings.Repeat("b", 64), "a\n", "status;"} {
		err := try(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "job_events_type_check", bad)
	}
}
