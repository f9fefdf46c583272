-- migrate:up
-- Supabase's default privileges give anon and authenticated every
-- privilege on each new sequence in public, and 20261127000400 revoked only
-- the tables': either role could setval() job_events' identity to its
-- maximum (sequence changes survive a rollback) and make every later
-- event insert fail, and with it every status change, whose event the
-- jobs trigger writes. Inserting into an identity column needs no
-- sequence privilege, so the API roles need none; service_role keeps its
-- own.
--
-- Amended by 20261202140300_sequence_privileges_own_only.sql: this file
-- first revoked on every sequence in public, which in a project shared
-- with other apps took their sequences' rights away too. It now touches
-- only this project's sequence, so replaying it (the Supabase CLI or
-- dbmate over a database that lacks its history) is harmless.

do $$
declare
  seq text := pg_get_serial_sequence('public.job_events', 'id');
begin
  if seq is not null then
    execute format('revoke all on sequence %s from anon, authenticated', seq);
  end if;
end
$$;

-- migrate:down
