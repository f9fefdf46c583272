-- migrate:up
-- Jobs: one row per clip request, written by the API and the workers.
-- Illegal states are refused by constraints; illegal status changes by
-- clipper_internal.jobs_before_write, whoever makes them.

create schema if not exists clipper_internal;
revoke all on schema clipper_internal from public;

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'public' and t.typname = 'job_status') then
    create type public.job_status as enum ('queued', 'processing', 'done', 'failed', 'canceled');
  end if;
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'public' and t.typname = 'job_source_type') then
    create type public.job_source_type as enum ('youtube', 'upload');
  end if;
end
$$;

create table if not exists public.jobs (
  id uuid primary key default gen_random_uuid(),
  -- The Supabase user the job belongs to; null for jobs made by an
  -- API key that has no owner.
  owner_id uuid default auth.uid() references auth.users (id) on delete cascade,
  api_key_id uuid,
  source_type public.job_source_type not null,
  source_url text,
  source_object text,
  params jsonb not null default '{}',
  status public.job_status not null default 'queued',
  attempts integer not null default 0,
  max_attempts integer not null default 3,
  idempotency_key text,
  idempotency_scope uuid generated always as (coalesce(owner_id, api_key_id)) stored,
  run_at timestamptz not null default now(),
  worker_id text,
  claimed_at timestamptz,
  last_heartbeat_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  progress smallint not null default 0,
  result_keys text[] not null default '{}',
  error_code text,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  expires_at timestamptz,

  constraint jobs_source_check check (
    (source_type = 'youtube' and source_url is not null and source_object is null)
    or (source_type = 'upload' and source_object is not null and source_url is null)),
  constraint jobs_source_url_check check (source_url ~ '^https?://' and length(source_url) <= 2048),
  constraint jobs_source_object_check check (length(source_object) between 1 and 1024),
  constraint jobs_params_check check (jsonb_typeof(params) = 'object' and pg_column_size(params) <= 65536),
  constraint jobs_max_attempts_check check (max_attempts between 1 and 100),
  constraint jobs_attempts_check check (attempts between 0 and max_attempts),
  constraint jobs_progress_check check (progress between 0 and 100),
  constraint jobs_idempotency_key_check check (length(idempotency_key) between 1 and 255),
  constraint jobs_worker_id_check check (length(worker_id) between 1 and 255),
  constraint jobs_error_code_check check (length(error_code) between 1 and 100),
  constraint jobs_error_message_check check (length(error_message) <= 4000),
  constraint jobs_result_keys_check check (cardinality(result_keys) <= 100),
  -- finished_at is set exactly when the status is final.
  constraint jobs_finished_check check (
    (finished_at is not null) = (status in ('done', 'failed', 'canceled'))),
  constraint jobs_processing_check check (
    status <> 'processing'
    or (worker_id is not null and claimed_at is not null and last_heartbeat_at is not null)),
  constraint jobs_queued_check check (status <> 'queued' or worker_id is null),
  constraint jobs_failed_check check (status <> 'failed' or error_code is not null),
  constraint jobs_done_check check (status <> 'done' or error_code is null)
);

comment on table public.jobs is 'Clip jobs: created queued by the API, claimed and finished by workers.';
comment on column public.jobs.idempotency_scope is 'Owner, else API key: an idempotency key is unique within it.';
comment on column public.jobs.run_at is 'Not claimable before this time (retry backoff).';
comment on column public.jobs.result_keys is 'Object names in the results bucket.';

-- Replayed creates find the first job (on conflict ... do nothing).
create unique index if not exists jobs_idempotency_key_idx
  on public.jobs (idempotency_scope, idempotency_key);
-- list-by-status with keyset pagination, and the claim query.
create index if not exists jobs_status_created_at_idx on public.jobs (status, created_at, id);
-- Expired-job selection for cleanup.
create index if not exists jobs_expires_at_idx on public.jobs (expires_at) where expires_at is not null;
-- RLS (owner_id = auth.uid()) and a user's own listing; also the auth.users FK.
create index if not exists jobs_owner_created_at_idx on public.jobs (owner_id, created_at, id) where owner_id is not null;
-- Jobs made by one key; also the api_keys FK.
create index if not exists jobs_api_key_created_at_idx on public.jobs (api_key_id, created_at, id) where api_key_id is not null;

create or replace function clipper_internal.jobs_before_write() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if new.status <> 'queued' or new.attempts <> 0 then
      raise exception 'a job is created queued with no attempts' using errcode = 'CL001';
    end if;
    return new;
  end if;

  new.updated_at := now();
  if new.status is distinct from old.status then
    if not (
      (old.status = 'queued' and new.status in ('processing', 'canceled'))
      or (old.status = 'processing' and new.status in ('done', 'failed', 'queued', 'canceled'))
    ) then
      raise exception 'job % cannot go from % to %', old.id, old.status, new.status
        using errcode = 'CL001';
    end if;
    if new.status in ('done', 'failed', 'canceled') then
      new.finished_at := coalesce(new.finished_at, now());
    end if;
    if new.status = 'processing' then
      new.started_at := coalesce(old.started_at, now());
    end if;
  end if;
  return new;
end
$$;

do $$
begin
  if not exists (select 1 from pg_trigger where tgname = 'jobs_before_write'
                 and tgrelid = 'public.jobs'::regclass) then
    create trigger jobs_before_write before insert or update on public.jobs
      for each row execute function clipper_internal.jobs_before_write();
  end if;
end
$$;

-- migrate:down
