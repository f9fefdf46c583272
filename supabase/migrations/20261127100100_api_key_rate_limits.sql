-- migrate:up
-- Per-key rate limits shared by every daemon replica, as GCRA (the
-- generic cell rate algorithm): one row per key holding its theoretical
-- arrival time (tat). A request at now is allowed when
-- greatest(tat, now) + interval <= now + period, and then moves tat to
-- that sum; interval is period / limit. One short upsert per request,
-- no window rows to clean up (a row whose tat is past is the same as no
-- row; rows go with their key), and the update touches no indexed column,
-- so it stays a HOT update. Kept out of public: PostgREST never sees it.

create table if not exists clipper_internal.api_key_rate_limits (
  key_id uuid primary key references public.api_keys (id) on delete cascade,
  tat timestamptz not null
) with (fillfactor = 70);

comment on table clipper_internal.api_key_rate_limits is
  'GCRA state per API key: the theoretical arrival time of the next request.';

alter table clipper_internal.api_key_rate_limits enable row level security;
revoke all on table clipper_internal.api_key_rate_limits from anon, authenticated;

-- migrate:down
