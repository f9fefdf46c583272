-- migrate:up
-- API keys: only an argon2id PHC hash of the secret is stored, found
-- through a public lookup id carried in the key itself.

create table if not exists public.api_keys (
  id uuid primary key default gen_random_uuid(),
  lookup_id text not null,
  hash text not null,
  owner_id uuid references auth.users (id) on delete cascade,
  name text not null,
  scopes text[] not null default '{}',
  rate_limit_per_minute integer,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  rotated_from uuid references public.api_keys (id) on delete set null,
  constraint api_keys_lookup_id_key unique (lookup_id),
  constraint api_keys_lookup_id_check check (lookup_id ~ '^[a-z0-9]{8,32}$'),
  constraint api_keys_hash_check check (hash like '$argon2id$%'),
  constraint api_keys_name_check check (length(name) between 1 and 200),
  constraint api_keys_scopes_check check (
    scopes <@ array['jobs:read', 'jobs:write', 'worker', 'keys:admin', 'admin']::text[]),
  constraint api_keys_rate_limit_check check (rate_limit_per_minute between 1 and 1000000)
);

comment on table public.api_keys is 'API keys: argon2id hashes only; the plaintext is shown once at creation.';
comment on column public.api_keys.lookup_id is 'Public id embedded in the key (clp_<lookup_id>_<secret>).';
comment on column public.api_keys.rate_limit_per_minute is 'Requests per minute; null means the daemon default.';

create index if not exists api_keys_owner_id_idx on public.api_keys (owner_id) where owner_id is not null;
create index if not exists api_keys_rotated_from_idx on public.api_keys (rotated_from) where rotated_from is not null;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'jobs_api_key_id_fkey'
                 and conrelid = 'public.jobs'::regclass) then
    alter table public.jobs add constraint jobs_api_key_id_fkey
      foreign key (api_key_id) references public.api_keys (id) on delete set null;
  end if;
end
$$;

-- migrate:down
