-- name: TakeRateLimit :one
-- GCRA (see the api_key_rate_limits migration) in one statement. The
-- upsert moves tat only when the request fits; the second branch reports
-- the current tat of a refused request (from the statement's snapshot,
-- which may trail a concurrent writer: it only sizes Retry-After). A
-- refusal that races the key's very first request returns no row.
with taken as (
  insert into clipper_internal.api_key_rate_limits as r (key_id, tat)
  values (@key_id, now() + @emission_interval::interval)
  on conflict (key_id) do update
    set tat = greatest(r.tat, now()) + @emission_interval::interval
    where greatest(r.tat, now()) + @emission_interval::interval
          <= now() + @period::interval
  returning r.tat
)
select true as allowed, t.tat, now()::timestamptz as checked_at from taken t
union all
select false as allowed, r.tat, now()::timestamptz as checked_at
from clipper_internal.api_key_rate_limits r
where r.key_id = @key_id and not exists (select 1 from taken);

-- name: TakeRateLimits :many
-- A batch of requests of several keys in one statement: for each key
-- (distinct in key_ids) counts[i] requests, each needing emissions_us[i]
-- microseconds. It
-- admits as many as the key's GCRA lets in one after another (the same
-- as counts[i] TakeRateLimit statements at one instant), moves the key's
-- tat past them, and returns where they started (start: the key's tat,
-- or now when it is behind) and how many were admitted. The rows are
-- locked in key order, as concurrent batches and single takes see them.
-- A key without a row yet returns none (EnsureRateLimitRows makes it).
-- Time is counted in whole microseconds, the resolution of interval, so
-- the division is exact. The arrays have one length (unnest in the select
-- list zips them).
with req as (
  select unnest(sqlc.arg(key_ids)::uuid[]) as key_id, unnest(sqlc.arg(counts)::int[]) as n,
         unnest(sqlc.arg(emissions_us)::bigint[]) as emission_us
),
cur as (
  select r.key_id, greatest(r.tat, now()) as start
  from clipper_internal.api_key_rate_limits r
  where r.key_id = any (sqlc.arg(key_ids)::uuid[])
  order by r.key_id
  for update
),
fit as (
  select c.key_id, c.start, q.emission_us,
         least(q.n, greatest(
           (extract(epoch from (now() + sqlc.arg(period)::interval - c.start)) * 1000000)::bigint / q.emission_us, 0))::int as admitted
  from cur c join req q on q.key_id = c.key_id
),
moved as (
  update clipper_internal.api_key_rate_limits r
  set tat = f.start + (f.admitted * f.emission_us) * interval '1 microsecond'
  from fit f
  where r.key_id = f.key_id and f.admitted > 0
)
select f.key_id, f.start::timestamptz as start, f.admitted, now()::timestamptz as checked_at from fit f;

-- name: EnsureRateLimitRows :exec
-- Makes the GCRA row of keys that have none yet, with nothing spent
-- (tat = now). Keys that do not exist are skipped: their requests fail
-- through TakeRateLimit, as a single request of them does.
insert into clipper_internal.api_key_rate_limits (key_id, tat)
select k.id, now() from unnest(sqlc.arg(key_ids)::uuid[]) as k(id)
where exists (select 1 from public.api_keys a where a.id = k.id)
order by k.id
on conflict (key_id) do nothing;
