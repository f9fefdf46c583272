-- migrate:up
-- job_events_type_check as first written, type ~ '^[a-z][a-z0-9_.]{0,63}$',
-- costs several microseconds per row: PostgreSQL's regex engine unrolls
-- the bounded repetition into 63 states. Every job event pays it, which
-- makes the check cost more than the rest of the insert. The same rule
-- with an unbounded class and a length limit accepts exactly the same
-- values (all allowed characters are single-byte) at a fraction of the
-- cost. Replaced only where the old form is still in place; existing rows
-- all satisfy it, so the validating scan cannot fail.

do $$
begin
  if exists (select 1 from pg_constraint
             where conrelid = 'public.job_events'::regclass and conname = 'job_events_type_check'
               and pg_get_constraintdef(oid) like '%{0,63}%') then
    alter table public.job_events drop constraint job_events_type_check;
  end if;
  if not exists (select 1 from pg_constraint
                 where conrelid = 'public.job_events'::regclass and conname = 'job_events_type_check') then
    alter table public.job_events add constraint job_events_type_check
      check (type ~ '^[a-z][a-z0-9_.]*$' and length(type) <= 64);
  end if;
end
$$;

-- migrate:down
