-- name: TakeRateLimit :one
-- GCRA (see the api_key_rate_limits migration) in one statement. The
-- upsert moves tat only when the request fits; the second branch reports
-- the current tat of a refused request (from the statement's snapshot,
-- which may trail a concurrent writer: it only sizes Retry-After). A
-- refusal that races the key's very first request returns no row.
--
-- The statement is its own transaction, and that transaction commits
-- without waiting for its WAL flush (synchronous_commit off for it alone,
-- set by the statement itself): every request of a key updates the key's
-- one row, so a durable commit would hold the row lock through a flush and
-- serialize the key's requests on the disk. What a crash can lose is the
-- last fraction of a second of GCRA state (wal_writer_delay, three times
-- at most): a key then gets that much of its allowance again.
with async as (
  select set_config('synchronous_commit', 'off', true)
), taken as (
  insert into clipper_internal.api_key_rate_limits as r (key_id, tat)
  select @key_id, now() + @emission_interval::interval from async
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
