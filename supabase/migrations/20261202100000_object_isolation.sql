-- migrate:up
-- Tenant isolation of storage objects, for every writer (the daemon,
-- PostgREST, plain SQL):
--
-- 1. Object names. clipper_internal.valid_object_name accepts exactly the
--    names Supabase Storage accepts (its isValidKey, src/storage/limits.ts:
--    `\w / ! - . * ' ( ) space & $ @ = ; : + , ?`, JavaScript's \w being
--    [A-Za-z0-9_], so nothing outside ASCII), at most 1024 bytes, and none
--    that could mean another folder: no `.` or `..` segment, no empty
--    segment (`a//b`, a trailing `/`), no leading `/`. Go's
--    storage.ValidateObjectName is the same rule; rls/objectname_test.go
--    runs one table of names (and random ones) through both.
-- 2. A job's source lies in its principal's folder of the sources bucket:
--    `<owner uid>/...` for a job with an owner; `keys/<api key id>/...`
--    for a job made by an API key that has no owner. A job with neither
--    (made by the service side, or whose key was deleted: the key's
--    foreign key sets null) belongs to the operator; only admin keys see it.
-- 3. A job's results lie under its own prefix, `<job id>/...`, so no two
--    jobs share a result object and a job's owner is never handed another
--    job's result.
-- 4. Storage policies: a user writes and reads sources only under
--    `<uid>/` with a valid name (the folder policy checked only the first
--    segment, so `A/../B/x.mp4` passed it), and may read (and so sign URLs
--    with supabase-js for) the result objects of their own jobs.
-- 5. Anonymous sign-ins (Supabase gives them the authenticated role, with
--    is_anonymous: true in the JWT) create no jobs and upload no sources,
--    unless clipper_internal.settings.allow_anonymous_jobs is true:
--      update clipper_internal.settings set allow_anonymous_jobs = true;
--    A table, not a GUC: any session may SET a custom GUC for itself.
--    A token without the claim (third-party auth) is not anonymous.
--
-- The helpers live in clipper_internal (PostgREST does not expose it). The
-- policies and constraints run them as the calling role, so authenticated
-- and service_role get EXECUTE on exactly these; a function referenced by
-- a policy or constraint is found by its oid and needs no USAGE on its
-- schema, but a function's body is looked up by name when it runs, so
-- job_result_keys_allowed, which calls valid_object_name, is security
-- definer (it reads nothing; the API roles keep no USAGE on
-- clipper_internal). The folder rule is written into the constraint itself
-- (mirrored by jobs.SourceFolder in Go): every UPDATE of an upload job
-- evaluates it. Measured per row over 100k rows (EXPLAIN ANALYZE of a
-- count, 2 busy cores): as a security definer helper 32 to 42 us, written
-- inline 7 us; valid_object_name alone 7 to 14 us, of which the regular
-- expressions are about 3 us (its SET search_path keeps PostgreSQL from
-- inlining it).
--
-- Constraints are added NOT VALID and validated only when no existing row
-- breaks them, so that upgrading a database with older rows (results at the
-- bucket root, say) succeeds; new and updated rows obey them either way.
-- A queued or processing job whose source breaks the rule (such as a job on
-- another user's upload) would then make every claim or reap batch that
-- reaches it fail, so it is canceled first, with error_code
-- source_not_allowed and its status event; finished jobs are left as they
-- are (nothing updates them; cleanup deletes them in time).
-- The policies clipper_sources_insert_own and clipper_sources_select_own of
-- 20261127000500 are altered in place (ALTER POLICY is idempotent).

create or replace function clipper_internal.valid_object_name(name text) returns boolean
  language sql immutable parallel safe
  set search_path = ''
as $$
  select coalesce(
    octet_length(name) between 1 and 1024
    and name collate "C" ~ '^[A-Za-z0-9_/!.*''() &$=@;:+,?-]+$'
    and name collate "C" !~ '^/|/$|//|(^|/)\.\.?(/|$)',
    false)
$$;

comment on function clipper_internal.valid_object_name(text) is
  'Whether Supabase Storage accepts name as an object key and it names no other folder (no ., .., empty segment, leading /).';

-- plpgsql, not SQL: measured per call on 100k rows, 13 to 22 us for one
-- key against 32 to 54 us for the same loop as a SQL function (which
-- starts an executor for its query on every call). It runs only when a
-- job has results (the constraint skips empty result_keys).
create or replace function clipper_internal.job_result_keys_allowed(job_id uuid, result_keys text[])
  returns boolean
  language plpgsql immutable parallel safe security definer
  set search_path = ''
as $$
declare
  k text;
begin
  foreach k in array coalesce(result_keys, '{}') loop
    if not (clipper_internal.valid_object_name(k) and starts_with(k, job_id::text || '/')) then
      return false;
    end if;
  end loop;
  return true;
end
$$;

comment on function clipper_internal.job_result_keys_allowed(uuid, text[]) is
  'Whether every result key is a valid object name under <job id>/.';

-- The job a result object belongs to: the uuid of its first segment.
create or replace function clipper_internal.object_job_id(name text) returns uuid
  language sql immutable parallel safe
  set search_path = ''
as $$
  select case when name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/'
              then left(name, 36)::uuid end
$$;

create table if not exists clipper_internal.settings (
  id boolean primary key default true,
  -- Whether anonymous sign-ins may create jobs and upload sources.
  allow_anonymous_jobs boolean not null default false,
  constraint settings_one_row check (id)
);

comment on table clipper_internal.settings is 'Operator settings of the database rules; one row.';

insert into clipper_internal.settings default values on conflict do nothing;
alter table clipper_internal.settings enable row level security;
revoke all on table clipper_internal.settings from anon, authenticated;

-- Whether the request may create jobs and upload sources: not an anonymous
-- sign-in, unless the setting allows them. Security definer to read the
-- setting, which the API roles cannot.
create or replace function clipper_internal.may_create_jobs() returns boolean
  language sql stable security definer
  set search_path = ''
as $$
  select coalesce(auth.jwt() ->> 'is_anonymous', '') <> 'true'
      or coalesce((select s.allow_anonymous_jobs from clipper_internal.settings s), false)
$$;

revoke all on function clipper_internal.valid_object_name(text) from public;
revoke all on function clipper_internal.job_result_keys_allowed(uuid, text[]) from public;
revoke all on function clipper_internal.object_job_id(text) from public;
revoke all on function clipper_internal.may_create_jobs() from public;
grant execute on function clipper_internal.valid_object_name(text),
  clipper_internal.job_result_keys_allowed(uuid, text[]),
  clipper_internal.object_job_id(text),
  clipper_internal.may_create_jobs()
  to authenticated, service_role;

update public.jobs j
set status = 'canceled', error_code = 'source_not_allowed',
    error_message = 'the source object is outside the job''s own folder of the sources bucket'
where j.status in ('queued', 'processing') and j.source_object is not null
  and not (clipper_internal.valid_object_name(j.source_object)
           and case
             when j.owner_id is not null then starts_with(j.source_object, j.owner_id::text || '/')
             when j.api_key_id is not null then starts_with(j.source_object, 'keys/' || j.api_key_id::text || '/')
             else true
           end);

do $$
begin
  if not exists (select 1 from pg_constraint where conrelid = 'public.jobs'::regclass
                 and conname = 'jobs_source_object_folder_check') then
    alter table public.jobs add constraint jobs_source_object_folder_check
      check (source_object is null or (
        clipper_internal.valid_object_name(source_object)
        and case
          when owner_id is not null then starts_with(source_object, owner_id::text || '/')
          when api_key_id is not null then starts_with(source_object, 'keys/' || api_key_id::text || '/')
          else true
        end))
      not valid;
  end if;
  if not exists (select 1 from pg_constraint where conrelid = 'public.jobs'::regclass
                 and conname = 'jobs_result_keys_job_check') then
    alter table public.jobs add constraint jobs_result_keys_job_check
      check (cardinality(result_keys) = 0 or clipper_internal.job_result_keys_allowed(id, result_keys))
      not valid;
  end if;
  if exists (select 1 from pg_constraint where conrelid = 'public.jobs'::regclass
             and conname = 'jobs_source_object_folder_check' and not convalidated)
     and not exists (select 1 from public.jobs j where j.source_object is not null
                     and not (clipper_internal.valid_object_name(j.source_object)
                              and case
                                when j.owner_id is not null then starts_with(j.source_object, j.owner_id::text || '/')
                                when j.api_key_id is not null then starts_with(j.source_object, 'keys/' || j.api_key_id::text || '/')
                                else true
                              end)) then
    alter table public.jobs validate constraint jobs_source_object_folder_check;
  end if;
  if exists (select 1 from pg_constraint where conrelid = 'public.jobs'::regclass
             and conname = 'jobs_result_keys_job_check' and not convalidated)
     and not exists (select 1 from public.jobs j where cardinality(j.result_keys) > 0
                     and not clipper_internal.job_result_keys_allowed(j.id, j.result_keys)) then
    alter table public.jobs validate constraint jobs_result_keys_job_check;
  end if;
end
$$;

alter policy clipper_sources_insert_own on storage.objects to authenticated
  with check (bucket_id = 'sources'
              and clipper_internal.valid_object_name(name)
              and starts_with(name, (select auth.uid())::text || '/'));

alter policy clipper_sources_select_own on storage.objects to authenticated
  using (bucket_id = 'sources'
         and clipper_internal.valid_object_name(name)
         and starts_with(name, (select auth.uid())::text || '/'));

do $$
begin
  if not exists (select 1 from pg_policies where schemaname = 'storage' and tablename = 'objects'
                 and policyname = 'clipper_results_select_own') then
    -- createSignedUrl(s) in Storage reads the object as the caller first
    -- (signObjectUrl's findObject, supabase/storage src/storage/object.ts):
    -- this lets a signed-in owner sign URLs for their own jobs' results.
    create policy clipper_results_select_own on storage.objects for select to authenticated
      using (bucket_id = 'results'
             and exists (select 1 from public.jobs j
                         where j.id = clipper_internal.object_job_id(objects.name)
                           and j.owner_id = (select auth.uid())
                           and objects.name = any (j.result_keys)));
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'storage' and tablename = 'objects'
                 and policyname = 'clipper_sources_insert_not_anonymous') then
    -- Restrictive, and only about this project's bucket: other buckets of
    -- a shared project keep their own rules.
    create policy clipper_sources_insert_not_anonymous on storage.objects as restrictive
      for insert to authenticated
      with check (bucket_id <> 'sources' or (select clipper_internal.may_create_jobs()));
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = 'jobs'
                 and policyname = 'jobs_insert_not_anonymous') then
    create policy jobs_insert_not_anonymous on public.jobs as restrictive
      for insert to authenticated
      with check ((select clipper_internal.may_create_jobs()));
  end if;
end
$$;

-- migrate:down
