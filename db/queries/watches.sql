-- name: WatchJob :exec
-- Records that daemon_id streams the job, under FOR SHARE on the job's row:
-- it waits for the job's event writers already under way (they hold the
-- row's update lock) and every later one sees the watch. See
-- 20261202160000_notify_watched_jobs.sql.
with job as (
  select id from jobs where id = sqlc.arg(job_id) for share
)
insert into clipper_internal.job_watches (job_id, daemon_id, expires_at)
select job.id, sqlc.arg(daemon_id), now() + make_interval(secs => sqlc.arg(lease_seconds)::float8)
from job
on conflict (job_id, daemon_id) do update set expires_at = excluded.expires_at;

-- name: RenewJobWatches :exec
-- The daemon's watches become exactly job_ids, leased anew.
insert into clipper_internal.job_watches (job_id, daemon_id, expires_at)
select unnest(sqlc.arg(job_ids)::uuid[]), sqlc.arg(daemon_id), now() + make_interval(secs => sqlc.arg(lease_seconds)::float8)
on conflict (job_id, daemon_id) do update set expires_at = excluded.expires_at;

-- name: DropJobWatches :execrows
-- Drops the daemon's watches not in job_ids (streams that closed) and
-- every daemon's expired ones (daemons that died).
delete from clipper_internal.job_watches
where (daemon_id = sqlc.arg(daemon_id) and job_id <> all(sqlc.arg(job_ids)::uuid[]))
   or expires_at < now();
