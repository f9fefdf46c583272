-- migrate:up
-- Job events: the append-only trace of every job. Status and progress
-- changes write their event in the same transaction, from a trigger, so no
-- writer (daemon, worker, PostgREST) can change a job without its event.

create table if not exists public.job_events (
  id bigint generated always as identity,
  job_id uuid not null references public.jobs (id) on delete cascade,
  ts timestamptz not null default clock_timestamp(),
  type text not null,
  data jsonb not null default '{}',
  -- One index serves the foreign key (cascade deletes), events of a job in
  -- time order, and keeps the table partition-ready: both job_id (hash)
  -- and ts (range) are in the key.
  primary key (job_id, ts, id),
  constraint job_events_type_check check (type ~ '^[a-z][a-z0-9_.]{0,63}$'),
  constraint job_events_data_check check (jsonb_typeof(data) = 'object' and pg_column_size(data) <= 65536)
);

comment on table public.job_events is 'Append-only per-job event stream; rows go only with their job.';

create or replace function clipper_internal.job_events_append_only() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  -- A cascade from a deleted job runs inside the foreign key's trigger
  -- (depth 2); any other update, delete or truncate is refused.
  if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
    return null;
  end if;
  raise exception 'job_events is append-only: % is not allowed', lower(tg_op)
    using errcode = 'CL002';
end
$$;

create or replace function clipper_internal.job_events_notify() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  -- One notification per job and statement, with ids only (NOTIFY payloads
  -- must stay under 8000 bytes).
  perform pg_notify('clipper_job_events', json_build_object(
      'job_id', s.job_id, 'event_id', s.event_id, 'status', s.status)::text)
  from (
    select job_id, max(id) as event_id,
           (array_agg(data ->> 'to' order by id desc) filter (where type = 'status'))[1] as status
    from new_events
    group by job_id
  ) s;
  return null;
end
$$;

create or replace function clipper_internal.jobs_write_events() returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'status', jsonb_build_object('to', new.status));
    return null;
  end if;
  if new.status is distinct from old.status then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'status', jsonb_strip_nulls(jsonb_build_object(
      'from', old.status,
      'to', new.status,
      'attempt', new.attempts,
      'worker_id', new.worker_id,
      'error_code', new.error_code,
      'error_message', new.error_message,
      'result_keys', case when new.status = 'done' then to_jsonb(new.result_keys) end)));
  end if;
  if new.progress is distinct from old.progress and new.status = old.status then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'progress', jsonb_build_object('progress', new.progress));
  end if;
  return null;
end
$$;

do $$
begin
  if not exists (select 1 from pg_trigger where tgname = 'job_events_no_update'
                 and tgrelid = 'public.job_events'::regclass) then
    create trigger job_events_no_update before update on public.job_events
      for each statement execute function clipper_internal.job_events_append_only();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'job_events_no_delete'
                 and tgrelid = 'public.job_events'::regclass) then
    create trigger job_events_no_delete before delete on public.job_events
      for each statement execute function clipper_internal.job_events_append_only();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'job_events_no_truncate'
                 and tgrelid = 'public.job_events'::regclass) then
    create trigger job_events_no_truncate before truncate on public.job_events
      for each statement execute function clipper_internal.job_events_append_only();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'job_events_notify'
                 and tgrelid = 'public.job_events'::regclass) then
    create trigger job_events_notify after insert on public.job_events
      referencing new table as new_events
      for each statement execute function clipper_internal.job_events_notify();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'jobs_write_events_insert'
                 and tgrelid = 'public.jobs'::regclass) then
    create trigger jobs_write_events_insert after insert on public.jobs
      for each row execute function clipper_internal.jobs_write_events();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'jobs_write_events_update'
                 and tgrelid = 'public.jobs'::regclass) then
    -- Heartbeat-only updates skip this trigger entirely.
    create trigger jobs_write_events_update after update of status, progress on public.jobs
      for each row
      when (old.status is distinct from new.status or old.progress is distinct from new.progress)
      execute function clipper_internal.jobs_write_events();
  end if;
end
$$;

-- migrate:down
