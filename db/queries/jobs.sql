-- name: GetJob :one
-- Primary key lookup.
select * from jobs where id = $1;

-- name: InsertJob :one
-- Returns no row when the idempotency scope already holds the key; the
-- caller then reads the existing job with GetJobByIdempotencyKey. A
-- concurrent insert of the same key waits for the first to commit.
insert into jobs (
  owner_id, api_key_id, source_type, source_url, source_object, params,
  max_attempts, idempotency_key, run_at, expires_at
) values (
  sqlc.narg(owner_id), sqlc.narg(api_key_id), sqlc.arg(source_type), sqlc.narg(source_url),
  sqlc.narg(source_object), sqlc.arg(params), sqlc.arg(max_attempts), sqlc.narg(idempotency_key),
  coalesce(sqlc.narg(run_at)::timestamptz, now()), sqlc.narg(expires_at)
)
on conflict ((coalesce(owner_id, api_key_id)), idempotency_key) do nothing
returning *;

-- name: GetJobByIdempotencyKey :one
select * from jobs
where coalesce(owner_id, api_key_id) = sqlc.arg(scope)::uuid and idempotency_key = sqlc.arg(idempotency_key)::text;

-- name: ListJobsByStatus :many
-- Newest first; keyset on jobs_status_created_at_idx (scanned backwards).
select * from jobs
where status = sqlc.arg(status)
  and (created_at, id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.arg(before_id)::uuid)
order by created_at desc, id desc
limit sqlc.arg(max_rows);

-- name: ListJobsByOwner :many
-- Newest first; keyset on jobs_owner_created_at_idx.
select * from jobs
where owner_id = sqlc.arg(owner_id)::uuid
  and (created_at, id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.arg(before_id)::uuid)
order by created_at desc, id desc
limit sqlc.arg(max_rows);

-- name: ListJobsByAPIKey :many
-- Newest first; keyset on jobs_api_key_created_at_idx.
select * from jobs
where api_key_id = sqlc.arg(api_key_id)::uuid
  and (created_at, id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.arg(before_id)::uuid)
order by created_at desc, id desc
limit sqlc.arg(max_rows);

-- name: ClaimJobs :many
-- The materialized CTE locks at most max_rows queued jobs, oldest first,
-- skipping rows other claimers hold; the planner cannot merge it into the
-- update and lock more. Expired jobs are left for cleanup.
with claimable as materialized (
  select id from jobs
  where status = 'queued'
    and run_at <= now()
    and attempts < max_attempts
    and (expires_at is null or expires_at > now())
  order by created_at, id
  limit sqlc.arg(max_rows)
  -- The update changes no key column: the weaker lock lets other
  -- sessions' foreign-key checks on these jobs proceed.
  for no key update skip locked
)
update jobs
set status = 'processing',
    attempts = attempts + 1,
    worker_id = sqlc.arg(worker_id)::text,
    claimed_at = now(),
    last_heartbeat_at = now(),
    progress = 0
where id in (select id from claimable)
returning *;

-- name: HeartbeatJob :one
-- Touches no indexed column, so the update can stay HOT.
update jobs
set last_heartbeat_at = now()
where id = sqlc.arg(id) and status = 'processing' and worker_id = sqlc.arg(worker_id)::text
returning *;

-- name: SetJobProgress :one
-- A progress report is also a heartbeat. The progress event comes from
-- the jobs_write_events trigger.
update jobs
set progress = sqlc.arg(progress)::smallint, last_heartbeat_at = now()
where id = sqlc.arg(id) and status = 'processing' and worker_id = sqlc.arg(worker_id)::text
returning *;

-- name: CompleteJob :one
-- Errors of earlier attempts stay in the job's events; a done job has none.
update jobs
set status = 'done',
    progress = 100,
    result_keys = sqlc.arg(result_keys)::text[],
    error_code = null,
    error_message = null,
    last_heartbeat_at = now(),
    expires_at = now() + sqlc.arg(retention_us)::bigint * interval '1 microsecond'
where id = sqlc.arg(id) and status = 'processing' and worker_id = sqlc.arg(worker_id)::text
returning *;

-- name: FailJob :one
-- A retryable failure with attempts left goes back to the queue after the
-- delay; any other failure is final and starts the retention period.
update jobs
set status = case when sqlc.arg(retryable)::boolean and attempts < max_attempts
                  then 'queued'::job_status else 'failed'::job_status end,
    worker_id = case when sqlc.arg(retryable)::boolean and attempts < max_attempts
                     then null else worker_id end,
    run_at = case when sqlc.arg(retryable)::boolean and attempts < max_attempts
                  then now() + sqlc.arg(delay_us)::bigint * interval '1 microsecond' else run_at end,
    expires_at = case when sqlc.arg(retryable)::boolean and attempts < max_attempts
                      then expires_at else now() + sqlc.arg(retention_us)::bigint * interval '1 microsecond' end,
    error_code = sqlc.arg(error_code)::text,
    error_message = sqlc.narg(error_message)::text
where id = sqlc.arg(id) and status = 'processing' and worker_id = sqlc.arg(worker_id)::text
returning *;

-- name: CancelJob :one
update jobs
set status = 'canceled',
    expires_at = now() + sqlc.arg(retention_us)::bigint * interval '1 microsecond'
where id = sqlc.arg(id) and status in ('queued', 'processing')
returning *;

-- name: RequeueStaleJobs :many
-- Jobs whose worker stopped heartbeating go back to the queue, or fail
-- when they have no attempts left. The rule is the database's
-- (clipper_internal.requeue_stale_jobs), shared with pg_cron's
-- clipper_internal.reap_stale_jobs.
select * from clipper_internal.requeue_stale_jobs(
  sqlc.arg(older_than_us)::bigint * interval '1 microsecond',
  sqlc.arg(retention_us)::bigint * interval '1 microsecond',
  sqlc.arg(max_rows)::integer);
