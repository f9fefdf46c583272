-- A stand-in for what a Supabase database webhook does inside the
-- transaction that fires it, for measuring on a plain PostgreSQL (pg_net
-- is not packaged here). It follows Supabase's own definitions:
-- supabase_functions.http_request() (supabase/postgres,
-- docker/volumes/db/webhooks.sql) builds the JSON body from OLD and NEW,
-- calls net.http_post, and writes an audit row to supabase_functions.hooks;
-- net.http_post (supabase/pg_net, sql/pg_net.sql) inserts the request into
-- net.http_request_queue, an unlogged table that pg_net's background
-- worker sends after commit. The worker's HTTP call, its response row and
-- the daemon's delivery row come on top and are not measured here.

create schema if not exists net;
create unlogged table if not exists net.http_request_queue (
  id bigserial primary key,
  method text not null,
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds int not null
);

create or replace function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
  headers jsonb default '{"Content-Type": "application/json"}', timeout_milliseconds int default 1000)
returns bigint language plpgsql as $$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', url, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;
  return request_id;
end
$$;

create schema if not exists supabase_functions;
create table if not exists supabase_functions.hooks (
  id bigserial primary key,
  hook_table_id integer not null,
  hook_name text not null,
  created_at timestamptz not null default now(),
  request_id bigint
);
create index if not exists supabase_functions_hooks_request_id_idx on supabase_functions.hooks (request_id);
create index if not exists supabase_functions_hooks_h_table_id_h_name_idx on supabase_functions.hooks (hook_table_id, hook_name);

create or replace function supabase_functions.http_request() returns trigger
  language plpgsql security definer set search_path = supabase_functions
as $$
declare
  request_id bigint;
  payload jsonb;
begin
  payload := jsonb_build_object('old_record', old, 'record', new, 'type', tg_op,
                                'table', tg_table_name, 'schema', tg_table_schema);
  request_id := net.http_post(tg_argv[0], payload, tg_argv[3]::jsonb, tg_argv[2]::jsonb, tg_argv[4]::integer);
  insert into supabase_functions.hooks (hook_table_id, hook_name, request_id)
  values (tg_relid, tg_name, request_id);
  return new;
end
$$;
