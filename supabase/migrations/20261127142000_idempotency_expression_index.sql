-- migrate:up
-- 1. The idempotency index moves from the generated column
--    idempotency_scope to the same expression. A unique index makes its
--    columns "key" columns, and PostgreSQL treats a stored generated column
--    as written by every UPDATE: so far every heartbeat or progress report
--    took a key-strength row lock (FOR UPDATE) and blocked other sessions'
--    foreign-key checks on the job (KEY SHARE) until it committed. On the
--    expression over owner_id, api_key_id and idempotency_key, which those
--    updates do not write, they take FOR NO KEY UPDATE. The index keeps its
--    name, so replaying the first migration leaves this one alone; the
--    column stays (readable, no longer indexed).
-- 2. A job that becomes final with no expires_at (e.g. canceled by a
--    frontend through PostgREST, which may write only status) gets one:
--    now() + the clipper.job_retention setting (default 7 days; set it with
--    `alter database ... set clipper.job_retention = '14 days'`), so that
--    cleanup removes it in time like every other finished job.

do $$
begin
  if exists (select 1 from pg_indexes where schemaname = 'public' and indexname = 'jobs_idempotency_key_idx'
             and indexdef like '%(idempotency_scope, idempotency_key)%') then
    drop index public.jobs_idempotency_key_idx;
  end if;
end
$$;

create unique index if not exists jobs_idempotency_key_idx
  on public.jobs ((coalesce(owner_id, api_key_id)), idempotency_key);

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
      new.expires_at := coalesce(new.expires_at, now() + coalesce(
        nullif(current_setting('clipper.job_retention', true), '')::interval, interval '7 days'));
    end if;
    if new.status = 'processing' then
      new.started_at := coalesce(old.started_at, now());
    end if;
  end if;
  return new;
end
$$;

-- migrate:down
