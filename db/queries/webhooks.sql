-- name: InsertWebhookDelivery :one
-- Returns no row when the delivery key is already recorded (a replay). A
-- concurrent replay waits here until the first delivery commits.
insert into webhook_deliveries (delivery_key, type, schema_name, table_name, record_id, payload)
values (
  sqlc.arg(delivery_key), sqlc.arg(type), sqlc.arg(schema_name), sqlc.arg(table_name),
  sqlc.narg(record_id), sqlc.arg(payload)
)
on conflict (delivery_key) do nothing
returning id;

-- name: GetWebhookDeliveryByKey :one
select id, action, job_id from webhook_deliveries where delivery_key = sqlc.arg(delivery_key);

-- name: SetWebhookDeliveryAction :exec
update webhook_deliveries
set action = sqlc.arg(action), job_id = sqlc.narg(job_id)
where id = sqlc.arg(id);

-- name: LockWebhookSubject :exec
-- Serializes deliveries about one subject (e.g. one storage object) until
-- the transaction ends.
select pg_advisory_xact_lock(hashtextextended(sqlc.arg(subject)::text, 0));

-- name: GetStorageObjectDelivery :one
-- The delivery that made the job for an uploaded object, if any.
select id, job_id from webhook_deliveries
where schema_name = 'storage' and table_name = 'objects' and action = 'job_created'
  and record_id = sqlc.arg(object_id)::text;

-- name: AuthUserExists :one
select clipper_internal.auth_user_exists(sqlc.arg(user_id)::uuid)::boolean as found;
