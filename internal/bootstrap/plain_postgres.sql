-- Plain-Postgres bootstrap: the parts of a Supabase database that the
-- migrations rely on. Never meant for Supabase itself (clipper migrate runs
-- it only where a piece is missing), and even then it creates each piece
-- only where that piece is missing: on a database with a real storage
-- schema but no auth (or the reverse) it adds what is absent and replaces
-- nothing, not a function body, not a grant.
-- Definitions follow Supabase's own (supabase/postgres, supabase/auth,
-- supabase/storage), trimmed to what this project uses.

-- API roles as current Supabase defines them (supabase/postgres,
-- migrations/db/init-scripts/00000000000000-initial-schema.sql and the
-- later "alter role ... inherit" migration): anon, authenticated and
-- service_role are INHERIT; authenticator is NOINHERIT and switches to
-- them with SET ROLE.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin inherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin inherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin inherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator noinherit login;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit;
  end if;
  -- Roles are cluster-wide: a cluster bootstrapped by an older version of
  -- this script made the API roles NOINHERIT. Bring them in line (only
  -- ever run on plain Postgres, where the roles are this script's).
  if exists (select 1 from pg_roles where rolname in ('anon', 'authenticated', 'service_role')
             and not rolinherit) then
    alter role anon inherit;
    alter role authenticated inherit;
    alter role service_role inherit;
  end if;
end
$$;

-- Role memberships: granting twice is a no-op.
grant anon, authenticated, service_role to authenticator;
-- The migration owner must be able to "set role" to the API roles (tests do).
grant anon, authenticated, service_role to current_user;

-- Supabase installs pgcrypto in the extensions schema; the seed hashes its
-- sign-in user's password with extensions.crypt().
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pgcrypto') then
    create schema if not exists extensions;
    create extension pgcrypto with schema extensions;
  end if;
end
$$;

-- auth: schema, the users table (the columns GoTrue's own migrations give
-- it that this project or its seed writes) and the JWT helpers.
do $bootstrap$
begin
  if to_regnamespace('auth') is null then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;

  -- GoTrue's users table as its migrations leave it (supabase/auth
  -- migrations/00_init_auth_schema.up.sql, 20210710035447_alter_users,
  -- 20210722035447_adds_confirmed_at, 20210730183235_add_email_change_confirmed,
  -- 20220114185340_add_banned_until, 20220323170000_add_user_reauthentication,
  -- 20221215195500_modify_users_email_unique_index, 20230116124310_alter_phone_type,
  -- 20230116124412_add_deleted_at, 20240214120130_add_is_anonymous_column):
  -- the seed's sign-in user is written with the same columns here and on
  -- Supabase. Left out: GoTrue's default '' on the phone_change, token
  -- columns (drizzle-kit 0.31 pull, which reads this table for the
  -- generated types, writes that default as invalid TypeScript); writers
  -- here set '' themselves, as the seed does.
  if to_regclass('auth.users') is null then
    create table auth.users (
      instance_id uuid,
      id uuid primary key,
      aud varchar(255),
      role varchar(255),
      email varchar(255),
      encrypted_password varchar(255),
      email_confirmed_at timestamptz,
      invited_at timestamptz,
      confirmation_token varchar(255),
      confirmation_sent_at timestamptz,
      recovery_token varchar(255),
      recovery_sent_at timestamptz,
      email_change_token_new varchar(255),
      email_change varchar(255),
      email_change_sent_at timestamptz,
      last_sign_in_at timestamptz,
      raw_app_meta_data jsonb,
      raw_user_meta_data jsonb,
      is_super_admin boolean,
      created_at timestamptz default now(),
      updated_at timestamptz default now(),
      phone text unique default null,
      phone_confirmed_at timestamptz,
      phone_change text,
      phone_change_token varchar(255),
      phone_change_sent_at timestamptz,
      confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
      email_change_token_current varchar(255),
      email_change_confirm_status smallint default 0
        check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
      banned_until timestamptz,
      reauthentication_token varchar(255),
      reauthentication_sent_at timestamptz,
      is_sso_user boolean not null default false,
      deleted_at timestamptz,
      is_anonymous boolean not null default false
    );
    create unique index users_email_partial_key on auth.users (email) where (is_sso_user = false);
  elsif not exists (select 1 from pg_attribute where attrelid = 'auth.users'::regclass
                    and attname = 'encrypted_password' and not attisdropped) then
    -- A users table from an older version of this script (id, email,
    -- raw_user_meta_data, created_at, updated_at): give it the columns a
    -- sign-in needs. A real GoTrue table always has encrypted_password.
    alter table auth.users
      add column instance_id uuid,
      add column aud varchar(255),
      add column role varchar(255),
      add column encrypted_password varchar(255),
      add column email_confirmed_at timestamptz,
      add column invited_at timestamptz,
      add column confirmation_token varchar(255),
      add column confirmation_sent_at timestamptz,
      add column recovery_token varchar(255),
      add column recovery_sent_at timestamptz,
      add column email_change_token_new varchar(255),
      add column email_change varchar(255),
      add column email_change_sent_at timestamptz,
      add column last_sign_in_at timestamptz,
      add column raw_app_meta_data jsonb,
      add column is_super_admin boolean,
      add column phone text unique default null,
      add column phone_confirmed_at timestamptz,
      add column phone_change text,
      add column phone_change_token varchar(255),
      add column phone_change_sent_at timestamptz,
      add column confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
      add column email_change_token_current varchar(255),
      add column email_change_confirm_status smallint default 0
        check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
      add column banned_until timestamptz,
      add column reauthentication_token varchar(255),
      add column reauthentication_sent_at timestamptz,
      add column is_sso_user boolean not null default false,
      add column deleted_at timestamptz,
      add column is_anonymous boolean not null default false;
  end if;

  -- GoTrue's identities (migrations/20210909172000_create_identities_table,
  -- 20221215195800_add_identities_email_column,
  -- 20231117164230_add_id_pkey_identities): one row per sign-in method;
  -- an email/password user has provider 'email', provider_id = its id.
  if to_regclass('auth.identities') is null then
    create table auth.identities (
      provider_id text not null,
      user_id uuid not null references auth.users (id) on delete cascade,
      identity_data jsonb not null,
      provider text not null,
      last_sign_in_at timestamptz,
      created_at timestamptz,
      updated_at timestamptz,
      email text generated always as (lower(identity_data ->> 'email')) stored,
      id uuid primary key default gen_random_uuid(),
      constraint identities_provider_id_provider_unique unique (provider_id, provider)
    );
    create index identities_user_id_idx on auth.identities (user_id);
    create index identities_email_idx on auth.identities (email text_pattern_ops);
  end if;

  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
    as $$
      select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $$;
    grant execute on function auth.uid() to anon, authenticated, service_role;
  end if;

  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
      language sql stable
    as $$
      select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
      )::text
    $$;
    grant execute on function auth.role() to anon, authenticated, service_role;
  end if;

  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
    as $$
      select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
      )::jsonb
    $$;
    grant execute on function auth.jwt() to anon, authenticated, service_role;
  end if;
end
$bootstrap$;

-- storage: the two tables and the path helpers (supabase/storage
-- migrations 0002-storage-schema.sql and later).
do $bootstrap$
begin
  if to_regnamespace('storage') is null then
    create schema storage;
    grant usage on schema storage to anon, authenticated, service_role;
  end if;

  if to_regclass('storage.buckets') is null then
    create table storage.buckets (
      id text primary key,
      name text not null unique,
      owner uuid,
      owner_id text,
      public boolean default false,
      avif_autodetection boolean default false,
      file_size_limit bigint,
      allowed_mime_types text[],
      created_at timestamptz default now(),
      updated_at timestamptz default now()
    );
    alter table storage.buckets enable row level security;
    grant all on storage.buckets to anon, authenticated, service_role;
  end if;

  if to_regclass('storage.objects') is null then
    create table storage.objects (
      id uuid primary key default gen_random_uuid(),
      bucket_id text references storage.buckets (id),
      name text,
      owner uuid,
      owner_id text,
      metadata jsonb,
      path_tokens text[] generated always as (string_to_array(name, '/')) stored,
      version text,
      user_metadata jsonb,
      created_at timestamptz default now(),
      updated_at timestamptz default now(),
      last_accessed_at timestamptz default now()
    );
    create unique index bucketid_objname on storage.objects (bucket_id, name);
    alter table storage.objects enable row level security;
    grant all on storage.objects to anon, authenticated, service_role;
  end if;

  if to_regprocedure('storage.foldername(text)') is null then
    create function storage.foldername(name text) returns text[]
      language plpgsql immutable
    as $$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[1:array_length(_parts, 1) - 1];
    end
    $$;
    grant execute on function storage.foldername(text) to anon, authenticated, service_role;
  end if;

  if to_regprocedure('storage.filename(text)') is null then
    create function storage.filename(name text) returns text
      language plpgsql immutable
    as $$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[array_length(_parts, 1)];
    end
    $$;
    grant execute on function storage.filename(text) to anon, authenticated, service_role;
  end if;
end
$bootstrap$;

-- Supabase grants the API roles these defaults on public; mirror them so
-- that the migrations' explicit revokes are tested against the same start.
-- Granting what is already granted changes nothing.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
