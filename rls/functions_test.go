package rls_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/rls"
)

// functionSchemas are the schemas whose functions TestFunctionExecute
// checks: every schema PostgREST can expose on Supabase (public and
// graphql_public by the CLI's config.toml template, `[api] schemas`; plus
// storage in the self-hosted docker setup, PGRST_DB_SCHEMAS=
// public,storage,graphql_public), the project's own schemas, and auth,
// where the plain-Postgres bootstrap adds Supabase's helpers.
var functionSchemas = []string{"public", "graphql_public", "storage", "auth", "clipper_internal", "clipper_meta"}

// exposedSchemas are those PostgREST can expose (see functionSchemas).
var exposedSchemas = []string{"public", "graphql_public", "storage"}

// executableByAPIRoles is every function anon or authenticated may
// execute, with the reason. Anything else they can execute is a hole:
// revoke it in a migration, or add it here with its reason (and whether
// anon may execute it too, or only authenticated). absent says
// why an entry may be missing from the plain-Postgres test database;
// every other entry must exist, so the list cannot go stale.
var executableByAPIRoles = map[string]struct {
	reason, absent    string
	authenticatedOnly bool // anon must not execute it
}{
	"auth.uid()":               {reason: "Supabase's own (the bootstrap copies it); every RLS policy calls it as the requesting role"},
	"auth.jwt()":               {reason: "Supabase's own; policies read JWT claims (is_anonymous) with it"},
	"auth.role()":              {reason: "Supabase's own, granted to the API roles by Supabase; reads the request's role claim"},
	"storage.foldername(text)": {reason: "Supabase Storage's own; the sources bucket's folder policies call it"},
	"storage.filename(text)":   {reason: "Supabase Storage's own, granted to the API roles by Supabase; a pure string function"},
	"graphql_public.graphql(text, text, jsonb, jsonb)": {
		reason: "Supabase's pg_graphql entry point; it runs queries with the caller's rights and RLS",
		absent: "exists only on Supabase"},
	"realtime.topic()": {
		reason: "Supabase Realtime's own; realtime.messages policies call it to name the topic",
		absent: "the bootstrap copy lands with the Realtime broadcast migration"},
	"realtime.send(jsonb, text, text, boolean)": {
		reason: "Supabase Realtime's own, granted to the API roles by Supabase; what it writes to realtime.messages is subject to that table's RLS",
		absent: "the bootstrap copy lands with the Realtime broadcast migration"},
	"clipper_internal.valid_object_name(text)": {
		reason: "storage policies and jobs constraints check object names with it as the calling role", authenticatedOnly: true,
		absent: "lands with the object-isolation migration"},
	"clipper_internal.job_source_allowed(text, uuid, uuid)": {
		reason: "the jobs source-folder constraint runs it as the inserting role", authenticatedOnly: true,
		absent: "lands with the object-isolation migration"},
	"clipper_internal.job_result_keys_allowed(uuid, text[])": {
		reason: "the jobs result-keys constraint runs it as the writing role", authenticatedOnly: true,
		absent: "lands with the object-isolation migration"},
	"clipper_internal.object_job_id(text)": {
		reason: "the results read policy maps an object to its job with it", authenticatedOnly: true,
		absent: "lands with the object-isolation migration"},
	"clipper_internal.uuid_v7()": {
		reason: "the jobs.id default runs it as the inserting role; it returns a new id and reads nothing", authenticatedOnly: true,
		absent: "lands with the time-ordered job ids migration"},
	"clipper_internal.may_create_jobs()": {
		reason: "the restrictive policy that keeps anonymous sign-ins from creating jobs calls it", authenticatedOnly: true,
		absent: "lands with the object-isolation migration"},
}

// TestFunctionExecute: anon and authenticated can execute exactly the
// allow-listed functions in the exposed and the project's schemas, and
// nothing else in any schema but the system ones.
func TestFunctionExecute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	rows, err := tx.Query(ctx, `
		select format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
		       n.nspname = any($1),
		       has_function_privilege('anon', p.oid, 'execute'),
		       has_function_privilege('authenticated', p.oid, 'execute')
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
		  -- An extension's functions in a schema PostgREST does not expose
		  -- (pgcrypto in Supabase's extensions schema) are the platform's,
		  -- not this project's, and no API request can call them.
		  and not (n.nspname <> all($2) and exists (
		        select 1 from pg_depend d
		        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'))
		order by 1`, functionSchemas, exposedSchemas)
	require.NoError(t, err)
	type fn struct {
		Name                 string
		InScope, Anon, Authd bool
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	require.NoError(t, err)

	seen := map[string]bool{}
	var checked int
	var holes []string
	for _, f := range fns {
		seen[f.Name] = true
		if f.InScope {
			checked++
		}
		allowed, listed := executableByAPIRoles[f.Name]
		switch {
		case (f.Anon || f.Authd) && !listed:
			holes = append(holes, f.Name)
		case f.Anon && allowed.authenticatedOnly:
			holes = append(holes, f.Name+" (by anon)")
		}
	}
	require.Empty(t, holes, "anon or authenticated can execute these, which are not on the allow-list: revoke in a migration, or add each with a reason")
	required := 0
	for name, allowed := range executableByAPIRoles {
		if allowed.absent == "" {
			required++
			require.True(t, seen[name], "allow-listed %s does not exist: drop it from the list", name)
		}
	}
	require.Greater(t, checked, required, "the query found the schemas' functions")
}

// TestTriggersNeedNoExecute: with EXECUTE on the trigger functions revoked
// from the API roles, the triggers still run for an authenticated user's
// own writes through PostgREST: the insert and the cancel pass
// jobs_before_write and write their events (jobs_write_events).
func TestTriggersNeedNoExecute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	user := uuid.NewString()
	_, err := tx.Exec(ctx, `insert into auth.users (id) values ($1)`, user)
	require.NoError(t, err)

	var events []string
	err = rls.Do(ctx, tx, rls.Request{Role: rls.Authenticated, Claims: rls.UserClaims(user), Method: "POST", Path: "/jobs"},
		func(tx pgx.Tx) error {
			var id string
			if err := tx.QueryRow(ctx, `insert into jobs (source_type, source_url)
				values ('youtube', 'https://youtu.be/dQw4w9WgXcQ') returning id::text`).Scan(&id); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `update jobs set status = 'canceled' where id = $1`, id); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `select data->>'to' from job_events where job_id = $1 order by ts, id`, id)
			if err != nil {
				return err
			}
			events, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	require.NoError(t, err)
	require.Equal(t, []string{"queued", "canceled"}, events)
}
