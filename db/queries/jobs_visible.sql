-- name: ListJobsByOwnerAndStatus :many
-- One user's jobs in one status, newest first; keyset on
-- jobs_owner_created_at_idx, the status checked on the rows it yields.
select * from jobs
where owner_id = sqlc.arg(owner_id)::uuid
  and status = sqlc.arg(status)
  and (created_at, id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.arg(before_id)::uuid)
order by created_at desc, id desc
limit sqlc.arg(max_rows);

-- name: ListJobsByAPIKeyAndStatus :many
-- One API key's jobs in one status, newest first; keyset on
-- jobs_api_key_created_at_idx.
select * from jobs
where api_key_id = sqlc.arg(api_key_id)::uuid
  and status = sqlc.arg(status)
  and (created_at, id) < (sqlc.arg(before_created_at)::timestamptz, sqlc.arg(before_id)::uuid)
order by created_at desc, id desc
limit sqlc.arg(max_rows);
