-- migrate:up
-- NOTIFY only for jobs that someone streams. A transaction that sends
-- NOTIFY takes a database-wide lock at commit, held through its WAL flush,
-- so every notifying commit waits for the one before it. Only the daemon's
-- live event streams (SSE) consume clipper_job_events, so the events
-- trigger now notifies a job's events only while a daemon holds a lease on
-- it in clipper_internal.job_watches.
--
-- The daemon writes a watch when a stream opens, before the stream's first
-- read, renews its watches' leases while they stream, drops those of
-- closed streams at the next renewal, and drops everyone's expired ones. A
-- crashed daemon's watches stop counting when their lease runs out; until
-- then they only cause notifications nobody hears. See internal/watches.
--
-- No gap, even for a writer already under way when the stream opens: every
-- writer of a job's events holds the job's row lock (an UPDATE of the job,
-- or events.Append's FOR NO KEY UPDATE) when this trigger runs, and the
-- daemon writes the watch under FOR SHARE on the same row. A writer that
-- held the lock first commits before the watch does, so the stream's first
-- read sees its events; a writer that takes it later runs this trigger's
-- query after the watch committed (a volatile function takes a new snapshot
-- per query under READ COMMITTED) and notifies. Streams also re-read
-- periodically, which covers REPEATABLE READ writers whose snapshot
-- predates the watch.

create table if not exists clipper_internal.job_watches (
  job_id uuid not null,
  -- The daemon process that streams the job (a random id per process).
  daemon_id uuid not null,
  expires_at timestamptz not null,
  primary key (job_id, daemon_id)
);

comment on table clipper_internal.job_watches is
  'Jobs with a live event stream, per daemon process, leased: only their events are NOTIFYed on clipper_job_events.';

-- No foreign key to jobs: the cascade would cost every job deletion a
-- lookup here; a deleted job's watch goes with its stream.
alter table clipper_internal.job_watches enable row level security;
revoke all on table clipper_internal.job_watches from public, anon, authenticated;

create or replace function clipper_internal.job_events_notify() returns trigger
  language plpgsql
  -- Any writer of job_events (service_role through PostgREST, plain SQL)
  -- reads the watches: the function, not the writer, may read them.
  security definer
  set search_path = ''
as $$
begin
  -- Nobody streams anything: the common case costs one probe of a small
  -- table.
  if not exists (select 1 from clipper_internal.job_watches where expires_at > now()) then
    return null;
  end if;
  -- One notification per watched job and statement, with ids only
  -- (NOTIFY payloads must stay under 8000 bytes). A job's first event
  -- (status queued, no "from") is not notified: nobody can be waiting on a
  -- job that did not exist.
  perform pg_notify('clipper_job_events', json_build_object(
      'job_id', s.job_id, 'event_id', s.event_id, 'status', s.status)::text)
  from (
    select job_id, max(id) as event_id,
           (array_agg(data ->> 'to' order by id desc) filter (where type = 'status'))[1] as status
    from new_events
    where not (type = 'status' and not data ? 'from')
    group by job_id
  ) s
  where exists (select 1 from clipper_internal.job_watches w
                where w.job_id = s.job_id and w.expires_at > now());
  return null;
end
$$;

revoke all on function clipper_internal.job_events_notify() from public, anon, authenticated;

-- migrate:down
