-- name: LockExpiredJobs :many
-- One cleanup batch: expired jobs no worker holds, soonest expiry first.
-- for update also blocks new events for these jobs until the batch ends.
select id from jobs
where expires_at < now() and status <> 'processing'
order by expires_at
limit sqlc.arg(max_rows)
for update skip locked;

-- name: DeleteExpiredJobs :execrows
-- One cleanup batch in one statement: the jobs LockExpiredJobs would lock
-- (skipping rows other transactions hold), deleted; job_events rows go by
-- the foreign key's cascade. The ids go through an array so that every
-- plan (a generic one too) deletes by the primary key, never by a hash
-- join over a scan of the table.
delete from jobs where id = any (array(
  select id from jobs
  where expires_at < now() and status <> 'processing'
  order by expires_at
  limit sqlc.arg(max_rows)
  for update skip locked));

-- name: EventsDeletedInTx :one
-- job_events rows this transaction has deleted so far (the statistics
-- system's per-transaction counter, kept while track_counts is on, as
-- autovacuum needs): what a cleanup batch's cascade deleted, counted for
-- free.
select pg_stat_get_xact_tuples_deleted('public.job_events'::regclass)::bigint;

-- name: LockDueObjectDeletions :many
-- One drain batch of the object outbox: rows due now, soonest first. Held
-- only while the batch is checked and leased.
select id, bucket, name, generation from clipper_internal.object_deletions
where next_attempt_at <= now()
order by next_attempt_at, id
limit sqlc.arg(max_rows)
for update skip locked;

-- name: SourcesInUse :many
-- Which of these sources a job still names. for key share waits for a
-- transaction that is deleting such a job: once it commits, its job no
-- longer counts (and its trigger has queued the source again).
with naming as (
  select source_object from jobs
  where source_object = any(sqlc.arg(names)::text[])
  for key share
)
select distinct source_object::text from naming;

-- name: ForgetObjectDeletions :execrows
delete from clipper_internal.object_deletions where id = any(sqlc.arg(ids)::bigint[]);

-- name: LeaseObjectDeletions :exec
-- Rows a drain is working on are not due again before the lease ends: if
-- the drain dies, another takes them then.
update clipper_internal.object_deletions
set attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => sqlc.arg(lease_seconds)::float8)
where id = any(sqlc.arg(ids)::bigint[]);

-- name: FinishObjectDeletions :execrows
-- A row queued again meanwhile (a newer generation) stays, due again.
delete from clipper_internal.object_deletions d
where d.id = any(sqlc.arg(ids)::bigint[])
  and d.generation = (sqlc.arg(generations)::int[])[array_position(sqlc.arg(ids)::bigint[], d.id)];

-- name: RetryObjectDeletions :exec
-- Exponential backoff from the attempt count (already counted by the lease).
update clipper_internal.object_deletions
set last_error = sqlc.arg(last_error),
    next_attempt_at = now() + make_interval(secs => least(
      sqlc.arg(max_backoff_seconds)::float8,
      sqlc.arg(base_backoff_seconds)::float8 * power(2, least(greatest(attempts - 1, 0), 30))))
where id = any(sqlc.arg(ids)::bigint[]);

-- name: CountObjectDeletions :one
select count(*) from clipper_internal.object_deletions;

-- name: PruneWebhookRecords :one
select deliveries::bigint, upload_jobs::bigint
from clipper_internal.prune_webhook_records(
  make_interval(secs => sqlc.arg(older_than_seconds)::float8), sqlc.arg(max_rows)::int);
