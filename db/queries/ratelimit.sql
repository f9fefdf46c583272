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
