package migrate_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/pgtest"
)

// On a database that already has the base (a second run, or Supabase
// itself) the bootstrap applies nothing.
func TestBootstrapSecondRunIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("MigratedDatabase", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, pgtest.NewDatabase(t))
		before := catalogSnapshot(t, conn, true)
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.False(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.False(t, applied)
		requireSameSnapshot(t, before, catalogSnapshot(t, conn, true))
	})

	t.Run("EmptyDatabase", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, emptyDatabase(t))
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.True(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.True(t, applied)

		needed, err = bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.False(t, needed)
		before := catalogSnapshot(t, conn, true)
		applied, err = bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.False(t, applied)

		// The script itself is also safe to run again (psql -f on a
		// database that has it), recreating nothing.
		script, err := os.ReadFile("../bootstrap/plain_postgres.sql")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, string(script), pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)
		requireSameSnapshot(t, before, catalogSnapshot(t, conn, true))
	})

	t.Run("PartialBaseIsCompleted", func(t *testing.T) {
		t.Parallel()
		// A database with the auth schema but no storage (as if someone
		// dropped it) is not taken for Supabase.
		conn := connect(t, emptyDatabase(t))
		_, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `drop schema storage cascade`)
		require.NoError(t, err)
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.True(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.True(t, applied)
		var objects *string
		require.NoError(t, conn.QueryRow(ctx, `select to_regclass('storage.objects')::text`).Scan(&objects))
		require.NotNil(t, objects)
	})
}

// A database with a real storage schema but no auth (or the reverse): the
// bootstrap adds what is missing and replaces nothing of what is there,
// not a function body, not a grant.
func TestBootstrapKeepsExistingSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, emptyDatabase(t))
	// Stand-ins for Supabase Storage's own objects, different from the
	// bootstrap's: a marker in foldername's body, no grants to anon.
	_, err := conn.Exec(ctx, `
		create schema storage;
		create table storage.buckets (id text primary key, name text not null unique, public boolean,
		  file_size_limit bigint, allowed_mime_types text[]);
		create table storage.objects (id uuid primary key default gen_random_uuid(),
		  bucket_id text references storage.buckets (id), name text, owner_id text, metadata jsonb);
		create function storage.foldername(name text) returns text[] language sql immutable
		  as $$ select (string_to_array(name, '/'))[1:1] /* real storage */ $$;
		create function storage.filename(name text) returns text language sql immutable
		  as $$ select 'real storage' $$;`, pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)
	storageState := func() string {
		var s string
		require.NoError(t, conn.QueryRow(ctx, `select string_agg(format('%s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proacl), '; ' order by p.oid)
			|| ' | ' || (select string_agg(format('%s %s', c.oid::regclass, c.relacl), '; ' order by c.oid) from pg_class c
			  where c.relnamespace = 'storage'::regnamespace)
			from pg_proc p where p.pronamespace = 'storage'::regnamespace`).Scan(&s))
		return s
	}
	before := storageState()

	needed, err := bootstrap.Needed(ctx, conn)
	require.NoError(t, err)
	require.True(t, needed)
	applied, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	require.True(t, applied)
	require.Equal(t, before, storageState())
	var uid *string
	require.NoError(t, conn.QueryRow(ctx, `select to_regprocedure('auth.uid()')::text`).Scan(&uid))
	require.NotNil(t, uid, "auth was created")
	var src string
	require.NoError(t, conn.QueryRow(ctx, `select prosrc from pg_proc where oid = 'storage.foldername(text)'::regprocedure`).Scan(&src))
	require.Contains(t, src, "real storage")
}

// The API roles are INHERIT, as on current Supabase; authenticator is not.
func TestBootstrapRolesInherit(t *testing.T) {
	t.Parallel()
	conn := connect(t, emptyDatabase(t))
	_, err := bootstrap.Apply(context.Background(), conn)
	require.NoError(t, err)
	rows, err := conn.Query(context.Background(), `select rolname || ' inherit=' || rolinherit from pg_roles
		where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by rolname`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"anon inherit=true", "authenticated inherit=true", "authenticator inherit=false",
		"service_role inherit=true"}, got)
}
