-- Installs clipper's database webhooks on a Supabase database:
--
--   clipper_sources_webhook  after insert on storage.objects (bucket sources)
--   clipper_jobs_webhook     after insert or status update on public.jobs,
--                            only with -v jobs_webhook=on (see README.md:
--                            it records deliveries only, and costs an HTTP
--                            call and a stored row per status change)
--
-- Each POSTs the row change to the daemon through
-- supabase_functions.http_request (pg_net), with "Authorization: Bearer
-- <secret>". Run it with psql; the secret may come from the environment
-- (psql 15 or later) instead of the command line:
--
--   CLIPPER_WEBHOOK_SECRET=... psql "$SUPABASE_DB_URL" -v ON_ERROR_STOP=1 \
--     -v webhook_url=https://clipper.example.com/webhooks/supabase \
--     -f webhooks/install.sql
--
-- Running it again replaces the triggers (to change the URL or rotate the
-- secret); without jobs_webhook=on it removes a jobs webhook installed
-- earlier. Where supabase_functions.http_request does not exist (a plain
-- PostgreSQL) it changes nothing and says so in a notice. Not a migration:
-- the URL and the secret belong to one deployment.

\set ON_ERROR_STOP on

\if :{?webhook_secret}
\else
\getenv webhook_secret CLIPPER_WEBHOOK_SECRET
\endif
\if :{?webhook_url}
\else
\set webhook_url ''
\endif
\if :{?webhook_secret}
\else
\set webhook_secret ''
\endif
\if :{?jobs_webhook}
\else
\set jobs_webhook off
\endif

begin;

-- Trigger arguments are literals, so the do-block below builds the
-- statements itself; it reads the parameters from these transaction-local
-- settings, which end with the transaction.
set local clipper.webhook_url = :'webhook_url';
set local clipper.webhook_secret = :'webhook_secret';
set local clipper.jobs_webhook = :'jobs_webhook';

do $install$
declare
  url text := current_setting('clipper.webhook_url');
  secret text := current_setting('clipper.webhook_secret');
  jobs_webhook text := lower(current_setting('clipper.jobs_webhook'));
  headers text;
  timeout_ms constant text := '5000';
begin
  if url !~ '^https?://[^[:space:]]+$' then
    raise exception 'webhook_url must be an http(s) URL: psql -v webhook_url=https://<daemon>/webhooks/supabase';
  end if;
  if secret = '' or secret ~ '[[:space:]]' then
    raise exception 'webhook_secret must be set, without spaces, to CLIPPER_WEBHOOK_SECRET: psql -v webhook_secret=... or the CLIPPER_WEBHOOK_SECRET environment variable';
  end if;
  if jobs_webhook not in ('on', 'off') then
    raise exception 'jobs_webhook must be on or off: psql -v jobs_webhook=on';
  end if;
  if to_regprocedure('supabase_functions.http_request()') is null then
    raise notice 'clipper webhooks: supabase_functions.http_request() does not exist (not a Supabase database, or database webhooks are not enabled); nothing installed';
    return;
  end if;

  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'Authorization', 'Bearer ' || secret)::text;

  drop trigger if exists clipper_sources_webhook on storage.objects;
  execute format(
    'create trigger clipper_sources_webhook after insert on storage.objects for each row '
    'when (new.bucket_id = %L) '
    'execute function supabase_functions.http_request(%L, %L, %L, %L, %L)',
    'sources', url, 'POST', headers, '{}', timeout_ms);

  drop trigger if exists clipper_jobs_webhook on public.jobs;
  if jobs_webhook = 'off' then
    raise notice 'clipper webhooks: installed clipper_sources_webhook, posting to %', url;
    return;
  end if;
  -- Opt-in. "update of status" leaves out heartbeats and progress reports;
  -- deletes (retention, by the thousand) are left out too.
  execute format(
    'create trigger clipper_jobs_webhook after insert or update of status on public.jobs '
    'for each row execute function supabase_functions.http_request(%L, %L, %L, %L, %L)',
    url, 'POST', headers, '{}', timeout_ms);

  raise notice 'clipper webhooks: installed clipper_sources_webhook and clipper_jobs_webhook, posting to %', url;
end
$install$;

commit;
