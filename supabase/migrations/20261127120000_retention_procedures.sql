-- migrate:up
-- Retention inside the database, for pg_cron on Supabase:
--   select cron.schedule('clipper-cleanup', '*/5 * * * *',
--     $$call clipper_internal.cleanup_expired(1000, 100)$$);
--   select cron.schedule('clipper-reap', '* * * * *',
--     $$select clipper_internal.reap_stale_jobs(interval '2 minutes', interval '7 days')$$);
-- They do what `clipper cleanup` and the daemon's schedule do; run one or
-- the other.

-- Deletes expired jobs no worker holds, soonest expiry first, in batches
-- of batch_size, committing after each batch so locks and the xmin horizon
-- stay short; events go by cascade. Stops when a batch comes up short or
-- after max_batches. Call it outside a transaction block (CALL commits).
-- No SET clause: a procedure with one cannot commit.
create or replace procedure clipper_internal.cleanup_expired(
  batch_size integer default 1000,
  max_batches integer default 1000)
language plpgsql
as $$
declare
  ids uuid[];
  n_events bigint;
  total_jobs bigint := 0;
  total_events bigint := 0;
  batches integer := 0;
begin
  if batch_size < 1 or batch_size > 10000 or max_batches < 1 then
    raise exception 'batch_size must be 1..10000 and max_batches positive' using errcode = '22023';
  end if;
  loop
    select array_agg(id) into ids from (
      select j.id from public.jobs j
      where j.expires_at < now() and j.status <> 'processing'
      order by j.expires_at
      limit batch_size
      for update skip locked) s;
    exit when ids is null;
    select count(*) into n_events from public.job_events e where e.job_id = any(ids);
    delete from public.jobs j where j.id = any(ids);
    total_jobs := total_jobs + cardinality(ids);
    total_events := total_events + n_events;
    batches := batches + 1;
    commit;
    exit when cardinality(ids) < batch_size or batches >= max_batches;
  end loop;
  raise notice 'clipper cleanup: deleted % jobs and % events in % batches', total_jobs, total_events, batches;
end
$$;

-- Jobs whose worker stopped heartbeating go back to the queue, or fail
-- when no attempts are left; each change writes its event (trigger).
create or replace function clipper_internal.reap_stale_jobs(
  older_than interval default interval '2 minutes',
  retention interval default interval '7 days',
  max_rows integer default 1000)
returns integer
language sql
set search_path = ''
as $$
  with stale as materialized (
    select id from public.jobs
    where status = 'processing' and last_heartbeat_at < now() - older_than
    order by last_heartbeat_at
    limit max_rows
    for update skip locked
  ), changed as (
    update public.jobs j
    set status = case when j.attempts < j.max_attempts then 'queued'::public.job_status
                      else 'failed'::public.job_status end,
        worker_id = case when j.attempts < j.max_attempts then null else j.worker_id end,
        run_at = case when j.attempts < j.max_attempts then now() else j.run_at end,
        expires_at = case when j.attempts < j.max_attempts then j.expires_at else now() + retention end,
        error_code = 'heartbeat_timeout',
        error_message = 'the worker stopped sending heartbeats'
    from stale
    where j.id = stale.id
    returning 1
  )
  select count(*)::integer from changed
$$;

revoke all on procedure clipper_internal.cleanup_expired(integer, integer) from public;
revoke all on function clipper_internal.reap_stale_jobs(interval, interval, integer) from public;

-- migrate:down
