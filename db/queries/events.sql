-- name: LockJobForEvents :one
-- Serializes appends with every other writer of the job's events (status
-- and progress updates hold the same row lock); see internal/events.
select id from jobs where id = sqlc.arg(job_id) for no key update;

-- name: LockJobsForEvents :many
-- Locks in id order so that two batches over the same jobs cannot deadlock.
select id from jobs where id = any(sqlc.arg(job_ids)::uuid[]) order by id for no key update;

-- name: InsertJobEvent :one
insert into job_events (job_id, type, data)
values (sqlc.arg(job_id), sqlc.arg(type), sqlc.arg(data))
returning *;

-- name: GetJobEventPosition :one
-- Where an event sits in its job's stream, to resume after it.
select ts from job_events where job_id = sqlc.arg(job_id) and id = sqlc.arg(id);

-- name: ListJobEvents :many
-- A range scan of the primary key (job_id, ts, id).
select * from job_events
where job_id = sqlc.arg(job_id)
  and (ts, id) > (sqlc.arg(after_ts)::timestamptz, sqlc.arg(after_id)::bigint)
order by ts, id
limit sqlc.arg(max_rows);

-- name: JobExists :one
select exists (select 1 from jobs where id = sqlc.arg(id));

