-- migrate:up
-- Objects of deleted jobs: an outbox of storage objects to delete, filled
-- in the transaction that deletes the jobs, drained through Storage.
--
-- On Supabase, SQL may not delete from storage.objects (Storage's
-- migration 0055 adds storage.protect_delete), and a SQL delete would
-- leave the bytes behind anyway: objects go through the Storage API
-- (DELETE /object/{bucket} {"prefixes": [...]}) or the local backend,
-- which cannot take part in a database transaction. So the names are
-- written here, by a statement trigger on jobs, in the same transaction
-- as the delete: whoever deletes jobs (the daemon's cleanup, `clipper
-- cleanup`, clipper_internal.cleanup_expired under pg_cron, a user
-- deleted from auth.users, plain SQL) leaves the names, and a crash either
-- keeps both the jobs and no names, or neither jobs nor lost names. The
-- cleanup loop (internal/retention) drains the rows: it leases a batch,
-- calls Storage, then forgets the names, or keeps them with a backoff.
-- Deleting an object that is already gone is not an error, so a drain cut
-- short by a crash is simply run again.
--
-- Queued: every name in the job's result_keys (bucket results), and the
-- source of an upload job (bucket sources). The source is queued even when
-- another job still names it: the drain decides, after the deleting
-- transactions have committed, and drops a source that a job still names
-- (that job's own deletion queues it again). Deciding here instead would
-- lose the object when two transactions delete the last two jobs of one
-- source at once (each sees the other's job still there).
--
-- Cost: one insert ... select per delete statement. `clipper bench --quick`
-- (50k jobs, 70% done with one result each; cleanup in batches of 1000
-- beside eight writers) deleted 956 and 890 jobs/s without this trigger,
-- 814 and 1000 with it, on a 2-core machine busy with other work: no
-- difference beyond the noise.
--
-- A name queued again while a drain holds it (an upload job deleted after
-- its source was re-uploaded) bumps generation, so that drain's success
-- does not forget the newer request.

create table if not exists clipper_internal.object_deletions (
  id bigint generated always as identity primary key,
  bucket text not null,
  name text not null,
  -- The job whose deletion queued the name last. Not a foreign key: the
  -- job is gone.
  job_id uuid,
  queued_at timestamptz not null default now(),
  generation integer not null default 1,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- The project's own message for the last failure (never a key or a URL
  -- with a token).
  last_error text,
  constraint object_deletions_bucket_name_key unique (bucket, name),
  constraint object_deletions_bucket_check check (bucket in ('sources', 'results'))
);

comment on table clipper_internal.object_deletions is
  'Storage objects of deleted jobs, waiting to be deleted through Storage; filled by the jobs delete trigger.';

-- The drain takes the due rows, soonest first.
create index if not exists object_deletions_next_attempt_at_idx
  on clipper_internal.object_deletions (next_attempt_at);

alter table clipper_internal.object_deletions enable row level security;
revoke all on table clipper_internal.object_deletions from anon, authenticated;

-- The drain's check that no job still names a source, and the same check
-- for readers. Partial: youtube jobs have no source object. source_object
-- never changes after insert, so the index keeps updates of jobs HOT.
create index if not exists jobs_source_object_idx
  on public.jobs (source_object) where source_object is not null;

-- security definer: it runs as whoever deletes the jobs, and service_role
-- (which may delete jobs through PostgREST) has no rights in
-- clipper_internal.
create or replace function clipper_internal.jobs_queue_object_deletions() returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  insert into clipper_internal.object_deletions as d (bucket, name, job_id)
  select distinct on (o.bucket, o.name) o.bucket, o.name, o.job_id
  from (
    select 'results'::text as bucket, k.name, g.id as job_id
    from gone g cross join lateral unnest(g.result_keys) as k(name)
    where k.name <> ''
    union all
    select 'sources'::text, g.source_object, g.id
    from gone g
    where g.source_type = 'upload' and g.source_object <> ''
  ) o
  order by o.bucket, o.name
  on conflict (bucket, name) do update
    set generation = d.generation + 1,
        job_id = excluded.job_id,
        queued_at = now(),
        next_attempt_at = least(d.next_attempt_at, now());
  return null;
end
$$;

revoke all on function clipper_internal.jobs_queue_object_deletions() from public, anon, authenticated;

do $$
begin
  if not exists (select 1 from pg_trigger where tgname = 'jobs_queue_object_deletions'
                 and tgrelid = 'public.jobs'::regclass) then
    create trigger jobs_queue_object_deletions after delete on public.jobs
      referencing old table as gone
      for each statement execute function clipper_internal.jobs_queue_object_deletions();
  end if;
end
$$;

-- Retention of the webhook records. Deliveries are kept for older_than
-- (replays within it stay no-ops), then deleted oldest first. An
-- upload_jobs row goes once its job is deleted and its object is gone from
-- storage.objects (deleted through the outbox above): while the object
-- exists, the row is what keeps the reconcile from making it a job again.
-- One copy of the rule: the daemon's cleanup and `clipper cleanup` call
-- this function, and pg_cron can too:
--   select cron.schedule('clipper-prune-webhooks', '*/5 * * * *',
--     $$select * from clipper_internal.prune_webhook_records(interval '7 days', 1000)$$);

create index if not exists webhook_deliveries_received_at_idx
  on clipper_internal.webhook_deliveries (received_at);
create index if not exists upload_jobs_created_at_idx
  on clipper_internal.upload_jobs (created_at);

create or replace function clipper_internal.prune_webhook_records(
  older_than interval default interval '7 days',
  max_rows integer default 1000)
returns table (deliveries bigint, upload_jobs bigint)
language sql
set search_path = ''
as $$
  with old_deliveries as materialized (
    select d.id from clipper_internal.webhook_deliveries d
    where d.received_at < now() - older_than
    order by d.received_at
    limit max_rows
    for update skip locked
  ), pruned_deliveries as (
    delete from clipper_internal.webhook_deliveries d
    using old_deliveries o where d.id = o.id
    returning 1
  ), old_uploads as materialized (
    select u.object_id from clipper_internal.upload_jobs u
    where u.created_at < now() - older_than
      and not exists (select 1 from public.jobs j where j.id = u.job_id)
      and not exists (select 1 from storage.objects s where s.id = u.object_id)
    order by u.created_at
    limit max_rows
    for update of u skip locked
  ), pruned_uploads as (
    delete from clipper_internal.upload_jobs u
    using old_uploads o where u.object_id = o.object_id
    returning 1
  )
  select (select count(*) from pruned_deliveries), (select count(*) from pruned_uploads)
$$;

revoke all on function clipper_internal.prune_webhook_records(interval, integer) from public, anon, authenticated;

-- Uploads whose webhook delivery never arrived (pg_net sends once, with a
-- short timeout): objects in the sources bucket created between max_age
-- and min_age ago that no delivery turned into a job (no upload_jobs row)
-- and that no earlier reconcile handled (it may have rejected them),
-- each with the body the sources webhook sends for it (built as
-- supabase_functions.http_request builds it), so that the daemon applies
-- the webhook's own rules. min_age leaves deliveries in flight alone.
create or replace function clipper_internal.unreconciled_uploads(
  min_age interval,
  max_age interval,
  max_rows integer)
returns table (object_id uuid, name text, payload jsonb)
language sql
stable
set search_path = ''
as $$
  select o.id, o.name,
         jsonb_build_object('old_record', null, 'record', to_jsonb(o), 'type', 'INSERT',
                            'table', 'objects', 'schema', 'storage')
  from storage.objects o
  where o.bucket_id = 'sources'
    and o.created_at < now() - min_age
    and o.created_at >= now() - max_age
    and not exists (select 1 from clipper_internal.upload_jobs u where u.object_id = o.id)
    -- Reconciled once already (and rejected): the record says why.
    and not exists (select 1 from clipper_internal.webhook_deliveries d
                    where d.delivery_key = 'reconcile:' || o.id::text)
    -- Folder markers the dashboard writes; the webhook ignores them too.
    and storage.filename(o.name) <> '.emptyFolderPlaceholder'
  order by o.created_at
  limit max_rows
$$;

revoke all on function clipper_internal.unreconciled_uploads(interval, interval, integer) from public, anon, authenticated;

-- migrate:down
