-- migrate:up
-- One copy of the reaping rule. It was written twice, in
-- clipper_internal.reap_stale_jobs (20261127120000_retention_procedures.sql,
-- for pg_cron) and in the daemon's query RequeueStaleJobs
-- (db/queries/jobs.sql), and the two had drifted: the first locked with
-- FOR UPDATE, the second with FOR NO KEY UPDATE. The rule now lives here
-- only; the daemon selects from this function and reap_stale_jobs, which
-- this migration redefines (same signature and defaults), counts its rows.
--
-- FOR NO KEY UPDATE is the right lock: the update changes no key, and the
-- weaker lock does not conflict with the FOR KEY SHARE that inserting a
-- job_events row takes on its job through the foreign key.

-- Jobs whose worker stopped heartbeating for older_than go back to the
-- queue, or fail (kept for retention) when they have no attempts left; at
-- most max_rows, the longest silent first. Returns the changed rows; each
-- change writes its status event (trigger).
create or replace function clipper_internal.requeue_stale_jobs(
  older_than interval,
  retention interval,
  max_rows integer)
returns setof public.jobs
language sql
set search_path = ''
as $$
  with stale as materialized (
    select id from public.jobs
    where status = 'processing' and last_heartbeat_at < now() - older_than
    order by last_heartbeat_at
    limit max_rows
    for no key update skip locked
  )
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
  returning j.*
$$;

create or replace function clipper_internal.reap_stale_jobs(
  older_than interval default interval '2 minutes',
  retention interval default interval '7 days',
  max_rows integer default 1000)
returns integer
language sql
set search_path = ''
as $$
  select count(*)::integer from clipper_internal.requeue_stale_jobs(older_than, retention, max_rows)
$$;

-- Supabase grants EXECUTE on new functions to its API roles: only the
-- database owner (the daemon, pg_cron) runs these.
revoke all on function clipper_internal.requeue_stale_jobs(interval, interval, integer) from public, anon, authenticated;
revoke all on function clipper_internal.reap_stale_jobs(interval, interval, integer) from public, anon, authenticated;

-- migrate:down
