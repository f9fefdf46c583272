-- migrate:up
-- Functions the API roles must not call. PostgreSQL grants EXECUTE on
-- every new function to PUBLIC, and Supabase's default privileges grant it
-- to anon and authenticated in public as well, so each function is
-- closed here by name (rls/functions_test.go checks every function anon
-- and authenticated can execute against an allow-list, and fails on any
-- new one).
--
-- These are trigger functions: called directly they only fail, but they
-- have no business being callable, and jobs_write_events is security
-- definer. Revoking EXECUTE does not stop the triggers: PostgreSQL checks
-- EXECUTE on a trigger function when the trigger is created, not when it
-- fires (the test inserts and cancels a job as authenticated to prove it).
-- Functions that RLS policies call (auth.uid(), auth.jwt(),
-- storage.foldername()) are Supabase's and stay executable: a policy's
-- expression runs with the rights of the role making the request.
--
-- Named one by one rather than "all routines in schema clipper_internal",
-- so that a helper another migration grants on purpose (one a policy
-- needs) is not revoked behind its back. Skips a function that no longer
-- exists, so the file replays cleanly.
do $$
declare
  f text;
begin
  foreach f in array array[
    'clipper_internal.api_keys_notify()',
    'clipper_internal.job_events_append_only()',
    'clipper_internal.job_events_notify()',
    'clipper_internal.jobs_before_write()',
    'clipper_internal.jobs_write_events()',
    'clipper_internal.auth_user_exists(uuid)',
    'clipper_internal.reap_stale_jobs(interval, interval, integer)'
  ] loop
    if to_regprocedure(f) is not null then
      execute format('revoke execute on function %s from public, anon, authenticated', to_regprocedure(f));
    end if;
  end loop;
  if to_regprocedure('clipper_internal.cleanup_expired(integer, integer)') is not null then
    revoke execute on procedure clipper_internal.cleanup_expired(integer, integer) from public, anon, authenticated;
  end if;
end
$$;

-- migrate:down
