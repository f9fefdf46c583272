-- name: CopyJobs :copyfrom
-- Batch create through COPY; the row trigger still writes each status event.
insert into jobs (owner_id, api_key_id, source_type, source_url, source_object, params, max_attempts, run_at, expires_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9);
