-- migrate:up
-- Retention inside the database where pg_cron is enabled: every 5 minutes
-- pg_cron runs
--   call clipper_internal.cleanup_expired(1000, 100)
-- (expired jobs and their events, in committed batches; the procedure is
-- defined in 20261127120000_retention_procedures.sql). On Supabase, enable
-- pg_cron first (Dashboard > Integrations > Cron, or
-- `create extension pg_cron with schema pg_catalog;`), then migrate. Where
-- pg_cron is not installed (plain Postgres, a project without it) this file
-- does nothing; the daemon's own retention schedule or `clipper cleanup`
-- do the same work, and running both is safe (the procedure skips rows
-- another run holds).
--
-- The job is created only if no job of that name exists, so a replay never
-- undoes a later change: change it with
--   select cron.alter_job((select jobid from cron.job where jobname = 'clipper-cleanup'), schedule := '*/15 * * * *');
-- or remove it with select cron.unschedule('clipper-cleanup'). pg_cron
-- enabled after this migration ran: run this file's SQL again (psql -f).
-- pg_cron runs the job as the role that scheduled it (the migration role)
-- in this database; see cron.job_run_details for its runs.

do $$
begin
  if to_regprocedure('cron.schedule(text, text, text)') is not null
     and to_regclass('cron.job') is not null then
    if not exists (select 1 from cron.job where jobname = 'clipper-cleanup') then
      perform cron.schedule('clipper-cleanup', '*/5 * * * *',
                            'call clipper_internal.cleanup_expired(1000, 100)');
    end if;
  end if;
end
$$;

-- migrate:down
