-- migrate:up
-- Only this project's sequences lose the API roles' rights.
-- 20261127130000_api_roles_sequence_privileges.sql used to run
--   revoke all on all sequences in schema public from anon, authenticated;
-- which, in a Supabase project shared with other apps, also took away
-- those apps' rights on their own sequences in public (a serial or
-- identity insert through PostgREST then fails with "permission denied
-- for sequence ..."). That file now revokes on job_events' identity
-- sequence only. What it revoked elsewhere cannot be restored from here:
-- nothing records which grants those sequences had. If another app shares
-- the database and was migrated with the old file, list the sequences in
-- public that are not this project's and that the API roles cannot use:
--   select c.oid::regclass from pg_class c
--   where c.relkind = 'S' and c.relnamespace = 'public'::regnamespace
--     and c.oid <> pg_get_serial_sequence('public.job_events', 'id')::regclass
--     and not has_sequence_privilege('authenticated', c.oid, 'usage');
-- and grant back what that app needs, e.g.
--   grant usage, select on sequence public.<name> to anon, authenticated;
--
-- This file states the rule again for databases migrated before the fix
-- (idempotent: revoking what is not granted changes nothing), for every
-- sequence owned by a column of a table in public that this project
-- created, so a later identity column is covered without touching others.

do $$
declare
  seq regclass;
begin
  for seq in
    select d.objid::regclass
    from pg_depend d
    join pg_class s on s.oid = d.objid and s.relkind = 'S'
    where d.classid = 'pg_class'::regclass
      and d.refclassid = 'pg_class'::regclass
      and d.refobjid in (select to_regclass(t) from unnest(array['public.jobs', 'public.job_events', 'public.api_keys']) t)
      and d.deptype in ('a', 'i')
  loop
    execute format('revoke all on sequence %s from anon, authenticated', seq);
  end loop;
end
$$;

-- migrate:down
