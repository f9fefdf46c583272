-- Supabase Realtime's database objects for Broadcast from the database, as
-- Realtime's own migrations leave them in a project database
-- (github.com/supabase/realtime, lib/realtime/tenants/repo/migrations/):
--   20231204144023_set_required_grants.ex            schema and function grants
--   20240523004032_redefine_authorization_tables.ex  realtime.topic()
--   20241030150047_messages_partitioning.ex          messages, partitioned by day
--   20240919163303_add_payload_to_messages.ex,
--   20241108114728_messages_using_uuid.ex,
--   20260514120000_add_binary_payload_to_messages.ex columns and key
--   20250905041441_create_messages_replay_index.ex   replay index
--   20260605120000_rename_broadcast_send_warning.ex  realtime.send(), latest body
--   20260707120000_restrict_realtime_schema.ex       owner supabase_realtime_admin
-- and the daily partitions the Realtime server creates
-- (lib/realtime/tenants.ex, create_messages_partitions: yesterday to
-- today + 3, named messages_YYYY_MM_DD).
--
-- Not part of plain_postgres.sql on purpose: a plain Postgres has no
-- Realtime server, so the migrations' broadcast is a no-op there. Tests
-- (and anyone emulating a Supabase database) apply this file before the
-- migrations, as Supabase runs Realtime's migrations before a project's.
-- Creates only what is missing.

do $bootstrap$
begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin with noinherit nologin noreplication;
  end if;

  if to_regnamespace('realtime') is null then
    create schema realtime;
    grant usage on schema realtime to anon, authenticated, service_role;
  end if;

  if to_regclass('realtime.messages') is null then
    create table realtime.messages (
      topic text not null,
      extension text not null,
      payload jsonb,
      event text,
      private boolean default false,
      updated_at timestamp not null default now(),
      inserted_at timestamp not null default now(),
      id uuid not null default gen_random_uuid(),
      binary_payload bytea,
      primary key (id, inserted_at)
    ) partition by range (inserted_at);
    alter table realtime.messages
      add constraint messages_payload_exclusive check (payload is null or binary_payload is null);
    create index messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
      where extension = 'broadcast' and private is true;
    alter table realtime.messages enable row level security;
    grant select, insert, update on realtime.messages to anon, authenticated, service_role;
    alter table realtime.messages owner to supabase_realtime_admin;
  end if;

  if to_regprocedure('realtime.topic()') is null then
    create function realtime.topic() returns text as $$
    select nullif(current_setting('realtime.topic', true), '')::text;
    $$ language sql stable;
    alter function realtime.topic() owner to supabase_realtime_admin;
    grant execute on function realtime.topic() to anon, authenticated, service_role;
  end if;

  if to_regprocedure('realtime.send(jsonb, text, text, boolean)') is null then
    create function realtime.send(payload jsonb, event text, topic text, private boolean default true) returns void
    as $$
    declare
      generated_id uuid;
      final_payload jsonb;
    begin
      begin
        generated_id := gen_random_uuid();

        -- Check if payload has an 'id' key, if not, add the generated UUID
        if payload ? 'id' then
          final_payload := payload;
        else
          final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;

        -- Set the topic configuration
        execute format('SET LOCAL realtime.topic TO %L', topic);

        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
      exception
        when others then
          raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
      end;
    end;
    $$
    language plpgsql;
    alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
    grant execute on function realtime.send(jsonb, text, text, boolean) to anon, authenticated, service_role;
  end if;
end
$bootstrap$;

-- The Realtime server's partitions, yesterday to today + 3 (UTC dates).
do $bootstrap$
declare
  d date;
  name text;
begin
  for d in select generate_series((now() at time zone 'utc')::date - 1, (now() at time zone 'utc')::date + 3, interval '1 day')::date loop
    name := 'messages_' || to_char(d, 'YYYY_MM_DD');
    if to_regclass('realtime.' || name) is null then
      execute format('create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
                     name, d::text, (d + 1)::text);
      execute format('alter table realtime.%I owner to supabase_realtime_admin', name);
    end if;
  end loop;
end
$bootstrap$;
