-- migrate:up
-- Webhook deliveries: every authenticated database-webhook delivery the
-- daemon accepted, written in the same transaction as its effect, before
-- the sender gets its answer. The unique delivery key makes a replayed
-- delivery a no-op.

create table if not exists public.webhook_deliveries (
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
  job_id uuid references public.jobs (id) on delete set null,
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

comment on table public.webhook_deliveries is 'Accepted database-webhook deliveries; written by the daemon only.';
comment on column public.webhook_deliveries.delivery_key is 'Replays of one delivery share it: the webhook-id header, else a payload hash.';

-- One job per uploaded object, whatever the number of deliveries about it.
create unique index if not exists webhook_deliveries_storage_object_idx
  on public.webhook_deliveries (record_id)
  where action = 'job_created' and schema_name = 'storage' and table_name = 'objects';
-- Pruning old deliveries, newest-first listing.
create index if not exists webhook_deliveries_received_at_idx on public.webhook_deliveries (received_at);
-- The jobs foreign key (job deletes set it to null).
create index if not exists webhook_deliveries_job_id_idx on public.webhook_deliveries (job_id) where job_id is not null;

alter table public.webhook_deliveries enable row level security;
revoke all on table public.webhook_deliveries from anon, authenticated;
grant select on table public.webhook_deliveries to service_role;

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
