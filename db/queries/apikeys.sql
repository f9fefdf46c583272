-- name: CreateAPIKey :one
-- A lookup id collision returns no row, and the caller draws a new key.
insert into api_keys (lookup_id, hash, owner_id, name, scopes, rate_limit_per_minute, expires_at, rotated_from)
values (@lookup_id, @hash, @owner_id, @name, @scopes, @rate_limit_per_minute, @expires_at, @rotated_from)
on conflict (lookup_id) do nothing
returning id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
          last_used_at, expires_at, revoked_at, rotated_from;

-- name: GetAPIKey :one
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from
from api_keys where id = @id;

-- name: GetAPIKeyByLookupID :one
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from
from api_keys where lookup_id = @lookup_id;

-- name: GetAPIKeyForAuth :one
-- The only query that reads the hash (the others return the public
-- columns). Also returns the database's clock to judge expiry by, so every
-- replica agrees on when a key expires.
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from, hash, now()::timestamptz as checked_at
from api_keys where lookup_id = @lookup_id;

-- name: ListAPIKeys :many
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from
from api_keys order by created_at desc, id desc;

-- name: ListAPIKeysByOwner :many
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from
from api_keys where owner_id = @owner_id::uuid order by created_at desc, id desc;

-- name: ListAPIKeysWithoutOwner :many
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from
from api_keys where owner_id is null order by created_at desc, id desc;

-- name: TouchAPIKeyLastUsed :one
-- Moves last_used_at forward only, and writes nothing when it would not
-- move. Returns whether the key exists.
with touched as (
  update api_keys set last_used_at = @used_at::timestamptz
  where id = @id and (last_used_at is null or last_used_at < @used_at::timestamptz)
  returning id
)
select exists (select 1 from api_keys k where k.id = @id) as found;

-- name: TouchAPIKeysLastUsed :execrows
-- The batch form for write-behind. Rows are locked in id order so that
-- replicas flushing overlapping batches cannot deadlock. Unknown ids are
-- skipped (the key may have been deleted since it was used).
with batch as (
  select v.id, max(v.used_at) as used_at
  from (select unnest(@ids::uuid[]) as id, unnest(@used_ats::timestamptz[]) as used_at) v
  group by v.id
), locked as (
  select k.id, b.used_at
  from api_keys k join batch b on b.id = k.id
  where k.last_used_at is null or k.last_used_at < b.used_at
  order by k.id
  for update of k
)
update api_keys k set last_used_at = greatest(k.last_used_at, l.used_at)
from locked l where k.id = l.id;

-- name: RevokeAPIKey :one
-- Revoking twice keeps the first revocation time.
update api_keys set revoked_at = coalesce(revoked_at, now())
where id = @id
returning id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
          last_used_at, expires_at, revoked_at, rotated_from;

-- name: LockAPIKeyForRotation :one
select id, lookup_id, owner_id, name, scopes, rate_limit_per_minute, created_at,
       last_used_at, expires_at, revoked_at, rotated_from, now()::timestamptz as checked_at
from api_keys where id = @id
for update;

-- name: ExpireAPIKeyWithin :exec
-- Ends the key grace_seconds from now, never extending its life.
update api_keys
set expires_at = least(coalesce(expires_at, 'infinity'::timestamptz), now() + make_interval(secs => @grace_seconds::float8))
where id = @id;
