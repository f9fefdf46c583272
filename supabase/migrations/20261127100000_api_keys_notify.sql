-- migrate:up
-- Every daemon replica caches verified API keys. A change that matters to
-- authentication (revocation, expiry, scopes, rate limit, owner, secret)
-- or a deletion is announced on clipper_api_keys with ids only, and each
-- replica evicts that key from its cache at once. last_used_at, written by
-- the daemons themselves in batches, announces nothing.

create or replace function clipper_internal.api_keys_notify() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  perform pg_notify('clipper_api_keys', json_build_object(
      'id', old.id, 'lookup_id', old.lookup_id, 'op', lower(tg_op))::text);
  return null;
end
$$;

do $$
begin
  if not exists (select 1 from pg_trigger where tgname = 'api_keys_notify_update'
                 and tgrelid = 'public.api_keys'::regclass) then
    create trigger api_keys_notify_update after update on public.api_keys
      for each row
      when ((old.revoked_at, old.expires_at, old.scopes, old.rate_limit_per_minute,
             old.owner_id, old.hash, old.lookup_id, old.name)
            is distinct from
            (new.revoked_at, new.expires_at, new.scopes, new.rate_limit_per_minute,
             new.owner_id, new.hash, new.lookup_id, new.name))
      execute function clipper_internal.api_keys_notify();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'api_keys_notify_delete'
                 and tgrelid = 'public.api_keys'::regclass) then
    create trigger api_keys_notify_delete after delete on public.api_keys
      for each row execute function clipper_internal.api_keys_notify();
  end if;
end
$$;

-- migrate:down
