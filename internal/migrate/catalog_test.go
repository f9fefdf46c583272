package migrate_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/supabase"
)

// emptyDatabase creates a database with nothing in it (no bootstrap, no
// migrations) and drops it when the test ends.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	// The template build bootstraps the cluster-wide roles under a lock;
	// two tests creating them at once would collide.
	pgtest.Template(t)
	admin := pgtest.ServerURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var name string
	require.NoError(t, conn.QueryRow(ctx, `select 'clipper_empty_' || substr(md5(random()::text), 1, 12)`).Scan(&name))
	_, err = conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	})
	return withSSLDisabled(pgtest.WithDatabase(admin, name))
}

// withSSLDisabled adds sslmode=disable unless the DSN sets a mode (the
// Supabase CLI tries TLS first otherwise).
func withSSLDisabled(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// snapshotSchemas leaves out the catalogs and the two tools' history
// tables, which legitimately differ between a dbmate and a CLI database.
const snapshotSchemas = `n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'clipper_meta', 'supabase_migrations')
	and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'`

// catalogSnapshot describes every object the migrations and the bootstrap
// create: schemas, relations and their columns, grants and comments,
// indexes, constraints, policies, triggers, functions, types, extensions,
// default privileges and the storage buckets. With oids, an object that
// was dropped and created again shows up as a change.
func catalogSnapshot(t *testing.T, conn *pgx.Conn, withOIDs bool) []string {
	t.Helper()
	oid := func(col string) string {
		if withOIDs {
			return "' oid=' || " + col + "::text"
		}
		return "''"
	}
	queries := []string{
		`select 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '') || ` + oid("n.oid") + `
		 from pg_namespace n where ` + snapshotSchemas,
		`select format('rel %s.%s kind=%s rls=%s force=%s acl=%s opts=%s comment=%s', n.nspname, c.relname, c.relkind,
		   c.relrowsecurity, c.relforcerowsecurity, c.relacl, c.reloptions, obj_description(c.oid, 'pg_class')) || ` + oid("c.oid") + `
		 from pg_class c join pg_namespace n on n.oid = c.relnamespace
		 where ` + snapshotSchemas + ` and c.relkind <> 't'`,
		`select format('col %s.%s.%s %s notnull=%s default=%s gen=%s ident=%s acl=%s comment=%s', n.nspname, c.relname, a.attname,
		   format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated,
		   a.attidentity, a.attacl, col_description(c.oid, a.attnum))
		 from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
		 left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
		 where ` + snapshotSchemas + ` and c.relkind in ('r', 'v', 'm', 'p', 'f') and a.attnum > 0 and not a.attisdropped`,
		`select 'index ' || pg_get_indexdef(i.indexrelid) || ` + oid("i.indexrelid") + `
		 from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
		 where ` + snapshotSchemas,
		`select format('constraint %s on %s: %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid)) || ` + oid("co.oid") + `
		 from pg_constraint co join pg_namespace n on n.oid = co.connamespace where ` + snapshotSchemas,
		`select format('policy %s on %s cmd=%s permissive=%s roles=%s using=%s check=%s', p.polname, p.polrelid::regclass,
		   p.polcmd, p.polpermissive, p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid),
		   pg_get_expr(p.polwithcheck, p.polrelid)) || ` + oid("p.oid") + `
		 from pg_policy p`,
		`select 'trigger ' || pg_get_triggerdef(tg.oid) || ' enabled=' || tg.tgenabled::text || ` + oid("tg.oid") + `
		 from pg_trigger tg join pg_class c on c.oid = tg.tgrelid join pg_namespace n on n.oid = c.relnamespace
		 where not tg.tgisinternal and ` + snapshotSchemas,
		`select format('function %s.%s(%s) definer=%s config=%s acl=%s volatile=%s src=%s', n.nspname, p.proname,
		   pg_get_function_identity_arguments(p.oid), p.prosecdef, p.proconfig, p.proacl, p.provolatile, md5(p.prosrc)) || ` + oid("p.oid") + `
		 from pg_proc p join pg_namespace n on n.oid = p.pronamespace where ` + snapshotSchemas,
		`select format('type %s.%s kind=%s labels=%s', n.nspname, ty.typname, ty.typtype,
		   (select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = ty.oid)) || ` + oid("ty.oid") + `
		 from pg_type ty join pg_namespace n on n.oid = ty.typnamespace
		 where ` + snapshotSchemas + ` and ty.typtype in ('e', 'd', 'c')
		   and not exists (select 1 from pg_class c where c.reltype = ty.oid and c.relkind <> 'c')`,
		`select 'extension ' || extname || ' ' || extversion from pg_extension`,
		`select format('default acl role=%s schema=%s type=%s acl=%s', d.defaclrole::regrole, d.defaclnamespace::regnamespace,
		   d.defaclobjtype, d.defaclacl) from pg_default_acl d`,
		`select format('bucket %s name=%s public=%s size=%s mime=%s', id, name, public, file_size_limit, allowed_mime_types)
		 from storage.buckets`,
	}
	var out []string
	for _, q := range queries {
		rows, err := conn.Query(context.Background(), q)
		require.NoError(t, err, q)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, q)
		out = append(out, lines...)
	}
	slices.Sort(out)
	return out
}

// requireSameSnapshot fails with the lines only one snapshot has.
func requireSameSnapshot(t *testing.T, want, got []string) {
	t.Helper()
	var missing, extra []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			missing = append(missing, l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			extra = append(extra, l)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("catalog changed\n-- gone or altered:\n%s\n-- new or altered:\n%s",
			strings.Join(missing, "\n"), strings.Join(extra, "\n"))
	}
	require.Equal(t, want, got)
}

// dataSnapshot returns a digest of every row of the tables that hold data,
// over the columns the first migrations created.
func dataSnapshot(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	tables := map[string]string{
		"auth.users":      `select id, email from auth.users order by id`,
		"jobs":            `select id, owner_id, api_key_id, source_type, source_url, source_object, params, status, attempts, worker_id, result_keys, error_code, created_at, finished_at, expires_at from public.jobs order by id`,
		"job_events":      `select id, job_id, ts, type, data from public.job_events order by job_id, ts, id`,
		"api_keys":        `select id, lookup_id, hash, owner_id, name, scopes, revoked_at from public.api_keys order by id`,
		"storage.objects": `select bucket_id, name from storage.objects order by bucket_id, name`,
	}
	out := map[string]string{}
	for name, q := range tables {
		var digest string
		var n int
		err := conn.QueryRow(context.Background(),
			`select count(*), coalesce(md5(string_agg(t::text, E'\n')), '') from (`+q+`) t`).Scan(&n, &digest)
		require.NoError(t, err, name)
		out[name] = fmt.Sprintf("%d rows %s", n, digest)
	}
	return out
}

// seedRows writes a little of everything, as the service would.
func seedRows(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `
		insert into auth.users (id, email) values
		  ('00000000-0000-4000-8000-00000000000a', 'a@example.com'),
		  ('00000000-0000-4000-8000-00000000000b', 'b@example.com');
		insert into public.api_keys (id, lookup_id, hash, owner_id, name, scopes) values
		  ('00000000-0000-4000-8000-0000000000c1', 'abcdefgh0001', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA',
		   '00000000-0000-4000-8000-00000000000a', 'ci', '{jobs:read}');
		insert into public.jobs (id, owner_id, source_type, source_url, params, idempotency_key) values
		  ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-00000000000a', 'youtube',
		   'https://youtu.be/x', '{"start": 1}', 'k1'),
		  ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-00000000000b', 'youtube',
		   'https://youtu.be/y', '{}', null);
		insert into public.jobs (id, api_key_id, owner_id, source_type, source_object) values
		  ('00000000-0000-4000-8000-0000000000d3', '00000000-0000-4000-8000-0000000000c1', null, 'upload', 'keys/00000000-0000-4000-8000-0000000000c1/in.mp4');
		update public.jobs set status = 'processing', attempts = 1, worker_id = 'w1', claimed_at = now(),
		  last_heartbeat_at = now() where id = '00000000-0000-4000-8000-0000000000d1';
		update public.jobs set progress = 50 where id = '00000000-0000-4000-8000-0000000000d1';
		update public.jobs set status = 'done', result_keys = '{00000000-0000-4000-8000-0000000000d1/out.mp4}', expires_at = now() + interval '7 days'
		  where id = '00000000-0000-4000-8000-0000000000d1';
		update public.jobs set status = 'canceled' where id = '00000000-0000-4000-8000-0000000000d2';`,
		pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
}

// migrationFiles returns the embedded migrations, name and SQL, in order.
func migrationFiles(t *testing.T) (names []string, sql map[string]string) {
	t.Helper()
	sql = map[string]string{}
	entries, err := fs.ReadDir(supabase.Migrations, "migrations")
	require.NoError(t, err)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(supabase.Migrations, "migrations/"+e.Name())
		require.NoError(t, err)
		names = append(names, e.Name())
		sql[e.Name()] = string(b)
	}
	require.NotEmpty(t, names)
	return names, sql
}

// applyLikeSupabaseCLI runs a whole migration file, down section included,
// in one transaction, which is what `supabase db push` does.
func applyLikeSupabaseCLI(t *testing.T, conn *pgx.Conn, name, sql string) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err, name)
	require.NoError(t, tx.Commit(ctx))
}

var lineComment = regexp.MustCompile(`--[^\n]*`)

// declared lists the names a migration set creates with a statement of
// the form pattern (first group: the name), less those it drops with drop.
func declared(sqls []string, create, drop string) []string {
	cre := regexp.MustCompile(`(?i)` + create)
	dre := regexp.MustCompile(`(?i)` + drop)
	set := map[string]bool{}
	type op struct {
		at     int
		name   string
		create bool
	}
	for _, s := range sqls {
		s = lineComment.ReplaceAllString(s, "")
		// In file order: a migration may drop an object and create it anew
		// (a row trigger replaced by a statement trigger of the same name).
		var ops []op
		for _, m := range cre.FindAllStringSubmatchIndex(s, -1) {
			ops = append(ops, op{m[0], strings.ToLower(s[m[2]:m[3]]), true})
		}
		for _, m := range dre.FindAllStringSubmatchIndex(s, -1) {
			ops = append(ops, op{m[0], strings.ToLower(s[m[2]:m[3]]), false})
		}
		slices.SortFunc(ops, func(a, b op) int { return a.at - b.at })
		for _, o := range ops {
			if o.create {
				set[o.name] = true
			} else {
				delete(set, o.name)
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
