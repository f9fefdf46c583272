-- migrate:up
-- What the API roles may do through PostgREST. anon: nothing. authenticated:
-- read its own jobs, their events and its own keys' metadata (never the
-- hash); create jobs for itself; cancel its own jobs. Everything else
-- (claims, attempts, results, errors, events, keys) is the service side's.

alter table public.jobs enable row level security;
alter table public.job_events enable row level security;
alter table public.api_keys enable row level security;

revoke all on table public.jobs, public.job_events, public.api_keys from anon, authenticated;

grant select on table public.jobs to authenticated;
grant insert (source_type, source_url, source_object, params, idempotency_key) on table public.jobs to authenticated;
grant update (status) on table public.jobs to authenticated;
grant select on table public.job_events to authenticated;
grant select (id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
              last_used_at, expires_at, revoked_at, rotated_from)
  on table public.api_keys to authenticated;

grant all on table public.jobs, public.job_events, public.api_keys to service_role;

do $$
begin
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'jobs'
                 and policyname = 'jobs_select_own') then
    create policy jobs_select_own on public.jobs for select to authenticated
      using (owner_id = (select auth.uid()));
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'jobs'
                 and policyname = 'jobs_insert_own') then
    create policy jobs_insert_own on public.jobs for insert to authenticated
      with check (owner_id = (select auth.uid()) and status = 'queued');
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'jobs'
                 and policyname = 'jobs_cancel_own') then
    create policy jobs_cancel_own on public.jobs for update to authenticated
      using (owner_id = (select auth.uid()))
      with check (owner_id = (select auth.uid()) and status = 'canceled');
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'job_events'
                 and policyname = 'job_events_select_own') then
    create policy job_events_select_own on public.job_events for select to authenticated
      using (job_id in (select j.id from public.jobs j where j.owner_id = (select auth.uid())));
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'api_keys'
                 and policyname = 'api_keys_select_own') then
    create policy api_keys_select_own on public.api_keys for select to authenticated
      using (owner_id = (select auth.uid()));
  end if;
end
$$;

-- migrate:down
