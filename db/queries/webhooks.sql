-- name: InsertWebhookDelivery :one
-- Returns no row when the delivery key is already recorded (a replay). A
-- concurrent replay waits here until the first delivery commits.
insert into clipper_internal.webhook_deliveries (delivery_key, type, schema_name, table_name, record_id, payload)
values (
  sqlc.arg(delivery_key), sqlc.arg(type), sqlc.arg(schema_name), sqlc.arg(table_name),
  sqlc.narg(record_id), sqlc.arg(payload)
)
on conflict (delivery_key) do nothing
returning id;

-- name: GetWebhookDeliveryByKey :one
select id, action, job_id from clipper_internal.webhook_deliveries where delivery_key = sqlc.arg(delivery_key);

-- name: SetWebhookDeliveryAction :exec
update clipper_internal.webhook_deliveries
set action = sqlc.arg(action), job_id = sqlc.narg(job_id)
where id = sqlc.arg(id);

-- name: LockWebhookSubject :exec
-- Serializes deliveries about one subject (e.g. one storage object) until
-- the transaction ends.
select pg_advisory_xact_lock(hashtextextended(sqlc.arg(subject)::text, 0));

-- name: GetUploadJob :one
select job_id from clipper_internal.upload_jobs where object_id = sqlc.arg(object_id);

-- name: InsertUploadJob :exec
insert into clipper_internal.upload_jobs (object_id, job_id)
values (sqlc.arg(object_id), sqlc.arg(job_id))
on conflict (object_id) do nothing;

-- name: AuthUserExists :one
select clipper_internal.auth_user_exists(sqlc.arg(user_id)::uuid)::boolean as found;

-- name: UnreconciledUploads :many
select object_id::uuid, name::text, payload::jsonb
from clipper_internal.unreconciled_uploads(
  make_interval(secs => sqlc.arg(min_age_seconds)::float8),
  make_interval(secs => sqlc.arg(max_age_seconds)::float8),
  sqlc.arg(max_rows)::int);
