-- migrate:up
-- Realtime for signed-in frontends: every statement that writes job events
-- (create, claim, progress, finish, cancel, appended events) also sends,
-- per job with an owner, one Broadcast message on the owner's private
-- topic 'clipper:jobs:<owner uid>', event 'job', through realtime.send()
-- (Supabase's recommended "Broadcast from the database": the message is a
-- row in realtime.messages, which Realtime relays to the topic's
-- subscribers). The payload holds ids and the job's state after the
-- statement, not the row:
--   {"job_id", "event_id" (the job's latest event), "status", "progress"}
-- A frontend signed in with Supabase subscribes with
-- supabase.channel('clipper:jobs:' + user.id, {config: {private: true}})
-- (db/typescript/README.md) and needs no API key and no polling.
--
-- Who may receive it: the RLS policy below on realtime.messages. Realtime
-- decides at join time by selecting a probe row of the topic as
-- `authenticated`, with the user's JWT claims and realtime.topic() set;
-- only the owner passes.
--
-- Where it is installed: only where Supabase Realtime's objects exist
-- (realtime.send and realtime.messages; Supabase runs Realtime's
-- migrations before a project's, on hosted projects and under
-- `supabase start`). On plain Postgres neither the trigger nor the policy
-- is created, so job writes there pay nothing for it; the function exists
-- everywhere so the schema is the same shape. Realtime enabled later on a
-- database migrated without it: run this file's SQL again (it is
-- idempotent), e.g. with psql -f.
--
-- No existing function is redefined: a trigger of its own sits beside
-- job_events_notify on the same statement (both read the one transition
-- table Postgres keeps per statement), so NOTIFY and its measurements are
-- untouched. It is security definer because realtime.messages has RLS
-- (Supabase's own examples of broadcast triggers are too); realtime.send
-- catches its own errors (a missing partition only raises a warning), so
-- a broadcast can never fail a job write.
--
-- Cost where it runs, measured here with EXPLAIN ANALYZE (10 000 jobs
-- created in one statement, then claimed in one; Realtime's objects from
-- internal/bootstrap/realtime.sql; 2 busy cores, three alternating runs):
-- the event triggers took 0.21-0.50 s / 0.68-0.93 s without the broadcast
-- and 0.64-1.07 s / 0.79-1.81 s with it, i.e. some 10-90 us per job and
-- statement, one realtime.send (a subtransaction and an insert) per job.

create or replace function clipper_internal.job_events_broadcast() returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  perform realtime.send(
      jsonb_build_object('job_id', j.id, 'event_id', s.event_id, 'status', j.status, 'progress', j.progress),
      'job',
      'clipper:jobs:' || j.owner_id::text,
      true)
  from (select job_id, max(id) as event_id from new_events group by job_id) s
  join public.jobs j on j.id = s.job_id
  where j.owner_id is not null;
  return null;
end
$$;

revoke all on function clipper_internal.job_events_broadcast() from public, anon, authenticated;

do $$
begin
  if to_regprocedure('realtime.send(jsonb, text, text, boolean)') is not null
     and not exists (select 1 from pg_trigger where tgname = 'job_events_broadcast'
                     and tgrelid = 'public.job_events'::regclass) then
    create trigger job_events_broadcast after insert on public.job_events
      referencing new table as new_events
      for each statement execute function clipper_internal.job_events_broadcast();
  end if;

  -- Permissive, for authenticated only: the owner may receive Broadcast
  -- on their own jobs topic. Other policies on realtime.messages (other
  -- apps in a shared project) are left alone.
  if to_regclass('realtime.messages') is not null
     and to_regprocedure('realtime.topic()') is not null
     and not exists (select 1 from pg_policies where schemaname = 'realtime' and tablename = 'messages'
                     and policyname = 'clipper_jobs_owner_receives') then
    create policy clipper_jobs_owner_receives on realtime.messages for select to authenticated
      using (
        extension = 'broadcast'
        and topic = 'clipper:jobs:' || (select auth.uid())::text
        and topic = (select realtime.topic())
      );
  end if;
end
$$;

-- migrate:down
