-- migrate:up
-- Webhook deliveries: every authenticated database-webhook delivery the
-- daemon accepted, written in the same transaction as its effect, before
-- the sender gets its answer. The unique delivery key makes a replayed
-- delivery a no-op. Kept out of public: PostgREST never sees it (payloads
-- hold users' rows); operators read it as the database owner.

create table if not exists clipper_internal.webhook_deliveries (
  id bigint generated always as identity primary key,
  -- 'id:<webhook-id header>', else 'sha256:<hash of the canonical payload>'.
  delivery_key text not null,
  received_at timestamptz not null default now(),
  type text not null,
  schema_name text not null,
  table_name text not null,
  -- The row's "id" (record, or old_record for a DELETE), when it has one.
  record_id text,
  payload jsonb not null,
  -- What the delivery did: see webhooks.Action.
  action text not null default 'recorded',
  -- The job the delivery made or found. Not a foreign key: the record of a
  -- delivery outlives the job's retention.
  job_id uuid,
  constraint webhook_deliveries_delivery_key_key unique (delivery_key),
  constraint webhook_deliveries_delivery_key_check check (length(delivery_key) between 1 and 300),
  constraint webhook_deliveries_type_check check (type in ('INSERT', 'UPDATE', 'DELETE')),
  constraint webhook_deliveries_schema_name_check check (length(schema_name) between 1 and 63),
  constraint webhook_deliveries_table_name_check check (length(table_name) between 1 and 63),
  constraint webhook_deliveries_record_id_check check (length(record_id) between 1 and 255),
  constraint webhook_deliveries_payload_check check (jsonb_typeof(payload) = 'object'),
  constraint webhook_deliveries_action_check check (
    action in ('job_created', 'job_exists', 'rejected', 'recorded', 'ignored'))
);

comment on table clipper_internal.webhook_deliveries is
  'Accepted database-webhook deliveries; written by the daemon only.';
comment on column clipper_internal.webhook_deliveries.delivery_key is
  'Replays of one delivery share it: the webhook-id header, else a payload hash.';

-- One job per object uploaded to the sources bucket, however many
-- deliveries report the upload (ownerless jobs have no idempotency key to
-- make them unique).
create table if not exists clipper_internal.upload_jobs (
  object_id uuid primary key,
  job_id uuid not null,
  created_at timestamptz not null default now()
);

comment on table clipper_internal.upload_jobs is
  'The job made for each storage object uploaded to the sources bucket.';

alter table clipper_internal.webhook_deliveries enable row level security;
alter table clipper_internal.upload_jobs enable row level security;
revoke all on table clipper_internal.webhook_deliveries, clipper_internal.upload_jobs from anon, authenticated;

-- auth.users belongs to Supabase and is outside sqlc's view of the schema;
-- this keeps the daemon's owner check a typed query.
create or replace function clipper_internal.auth_user_exists(user_id uuid) returns boolean
  language sql stable
  set search_path = ''
as $$
  select exists (select 1 from auth.users u where u.id = user_id)
$$;

revoke all on function clipper_internal.auth_user_exists(uuid) from public, anon, authenticated;

-- migrate:down
