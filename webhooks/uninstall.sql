-- Removes the database webhooks that install.sql created. Run it with
-- psql: psql "$SUPABASE_DB_URL" -v ON_ERROR_STOP=1 -f webhooks/uninstall.sql
-- Safe anywhere: missing triggers are skipped.

\set ON_ERROR_STOP on

begin;

do $uninstall$
begin
  if to_regclass('storage.objects') is not null then
    drop trigger if exists clipper_sources_webhook on storage.objects;
  end if;
  if to_regclass('public.jobs') is not null then
    drop trigger if exists clipper_jobs_webhook on public.jobs;
  end if;
end
$uninstall$;

commit;
