-- name: CopyJobs :copyfrom
-- Batch create through COPY. COPY fires the statement-level trigger
-- jobs_write_events_insert too: one INSERT writes every copied job's
-- status event ({"to": "queued"}).
insert into jobs (owner_id, api_key_id, source_type, source_url, source_object, params, max_attempts, run_at, expires_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: CompleteJobs :many
-- CompleteJob for many jobs of one worker in one statement; the
-- statement-level trigger jobs_write_events_update writes all their status
-- events in one INSERT. Jobs not in processing or held by another worker
-- are left alone and not returned.
update jobs j
set status = 'done',
    progress = 100,
    result_keys = c.result_keys,
    error_code = null,
    error_message = null,
    last_heartbeat_at = now(),
    expires_at = now() + sqlc.arg(retention_us)::bigint * interval '1 microsecond'
from jsonb_to_recordset(sqlc.arg(completions)::jsonb) as c(id uuid, result_keys text[])
where j.id = c.id and j.status = 'processing' and j.worker_id = sqlc.arg(worker_id)::text
returning j.id;

-- name: DatabaseNow :one
-- The transaction's now(): COPY cannot use a column default for some rows
-- only, and a client clock ahead of the server's would delay claims.
select now()::timestamptz;
