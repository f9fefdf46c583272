-- name: LockExpiredJobs :many
-- One cleanup batch: expired jobs no worker holds, soonest expiry first.
-- for update also blocks new events for these jobs until the batch ends.
select id from jobs
where expires_at < now() and status <> 'processing'
order by expires_at
limit sqlc.arg(max_rows)
for update skip locked;

-- name: CountEventsOfJobs :one
-- An index-only range scan of job_events' primary key per job.
select count(*) from job_events where job_id = any(sqlc.arg(job_ids)::uuid[]);

-- name: DeleteJobsByID :execrows
-- job_events rows go by the foreign key's cascade.
delete from jobs where id = any(sqlc.arg(job_ids)::uuid[]);
