#!/usr/bin/env bash
# Checks that supabase/migrations apply with the Supabase CLI (`supabase db
# push`, no Docker) as they do with dbmate, on a fresh database of the
# server named by TEST_DATABASE_URL (a superuser DSN; `clipper testdb --`
# provides one):
#
#   1. install the CLI (npm package supabase, pinned) into a cache folder;
#   2. create a database and give it the plain-Postgres base with psql;
#   3. `supabase db push` twice: all files, then nothing;
#   4. `clipper migrate` (dbmate, whose own history is empty) over it, twice;
#   5. check the tables and buckets, drop the database;
#   6. run the Go test TestSupabaseCLI with CLIPPER_SUPABASE_CLI set.
#
# With --install-only it installs the CLI and prints its path, for
#   export CLIPPER_SUPABASE_CLI=$(scripts/supabase-push-check.sh --install-only)
set -euo pipefail
cd "$(dirname "$0")/.."

SUPABASE_CLI_VERSION=2.117.0
cache_root=${CLIPPER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clipper}
cli_dir=$cache_root/supabase-cli-$SUPABASE_CLI_VERSION
cli=$cli_dir/node_modules/.bin/supabase

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'supabase-push-check: %s\n' "$*" >&2; exit 1; }

install_cli() {
  if [ -x "$cli" ] && [ "$("$cli" --version 2>/dev/null)" = "$SUPABASE_CLI_VERSION" ]; then
    return
  fi
  command -v npm >/dev/null || die "npm is needed to install the Supabase CLI"
  mkdir -p "$cli_dir"
  # Two checkouts testing at once share this cache: one installs, the
  # other waits for it (at most 10 minutes) and then finds it installed.
  (
    if command -v flock >/dev/null; then
      flock -w 600 9 || die "another install of the Supabase CLI held $cli_dir/.lock for 10 minutes"
    fi
    if [ -x "$cli" ] && [ "$("$cli" --version 2>/dev/null)" = "$SUPABASE_CLI_VERSION" ]; then
      exit 0
    fi
    say "installing supabase@$SUPABASE_CLI_VERSION into $cli_dir"
    cd "$cli_dir" && npm install --silent --no-audit --no-fund --save-exact "supabase@$SUPABASE_CLI_VERSION" >&2
  ) 9>"$cli_dir/.lock"
  [ -x "$cli" ] || die "npm did not produce $cli"
}

if [ "${1:-}" = "--install-only" ]; then
  install_cli
  printf '%s\n' "$cli"
  exit 0
fi

[ -n "${TEST_DATABASE_URL:-}" ] || die "TEST_DATABASE_URL is not set (run through: go run ./cmd/clipper testdb -- $0)"
command -v psql >/dev/null || die "psql is needed (PostgreSQL client)"

started=$SECONDS
install_cli
say "supabase CLI $("$cli" --version) ($((SECONDS - started)) s)"

# The same server, another database; sslmode=disable unless set (the CLI
# tries TLS first otherwise).
base=${TEST_DATABASE_URL%%\?*}
query=${TEST_DATABASE_URL#"$base"}
server=${base%/*}
case "$query" in
  *sslmode=*) ;;
  "") query="?sslmode=disable" ;;
  *) query="$query&sslmode=disable" ;;
esac
db=clipper_push_check_$$_$RANDOM
db_url=$server/$db$query

workdir=$(mktemp -d)
cleanup() {
  psql -X -q "$TEST_DATABASE_URL" -c "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

psql -X -q -v ON_ERROR_STOP=1 "$TEST_DATABASE_URL" -c "create database $db" >/dev/null
say "database $db"

step=$SECONDS
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$db_url" -f internal/bootstrap/plain_postgres.sql >/dev/null
say "plain-Postgres base applied with psql ($((SECONDS - step)) s)"

# A project folder with only supabase/migrations: db push needs no
# config.toml, and the CLI's scratch files (supabase/.temp) stay out of
# the repository.
mkdir -p "$workdir/supabase"
cp -R supabase/migrations "$workdir/supabase/migrations"
push() {
  DO_NOT_TRACK=1 SUPABASE_TELEMETRY_DISABLED=1 \
    "$cli" db push --workdir "$workdir" --db-url "$db_url" --include-all --yes 2>&1
}

step=$SECONDS
out=$(push) || { printf '%s\n' "$out" >&2; die "first db push failed"; }
printf '%s\n' "$out" >&2
applied=$(grep -c '^Applying migration ' <<<"$out" || true)
files=$(find supabase/migrations -maxdepth 1 -name '*.sql' | wc -l)
[ "$applied" -eq "$files" ] || die "first db push applied $applied of $files files"
say "db push #1 applied $applied migration(s) ($((SECONDS - step)) s)"

step=$SECONDS
out=$(push) || { printf '%s\n' "$out" >&2; die "second db push failed"; }
grep -q 'Remote database is up to date' <<<"$out" || { printf '%s\n' "$out" >&2; die "second db push was not a no-op"; }
if grep -q '^Applying migration ' <<<"$out"; then die "second db push applied migrations"; fi
say "db push #2: up to date ($((SECONDS - step)) s)"

step=$SECONDS
go build -o "$workdir/clipper" ./cmd/clipper
say "built clipper ($((SECONDS - step)) s)"
step=$SECONDS
DATABASE_URL=$db_url "$workdir/clipper" migrate >&2
out=$(DATABASE_URL=$db_url "$workdir/clipper" migrate)
grep -q 'up to date' <<<"$out" || { printf '%s\n' "$out" >&2; die "second clipper migrate was not a no-op"; }
say "clipper migrate (dbmate) over the CLI's database, twice ($((SECONDS - step)) s)"

found=$(psql -X -At "$db_url" -c "
  select count(*) from pg_class
  where oid in (to_regclass('public.jobs'), to_regclass('public.job_events'), to_regclass('public.api_keys'))
    and relrowsecurity")
[ "$found" = 3 ] || die "expected jobs, job_events, api_keys with RLS, found $found"
buckets=$(psql -X -At "$db_url" -c "select string_agg(id || ':' || public, ',' order by id) from storage.buckets")
[ "$buckets" = "results:false,sources:false" ] || die "buckets: $buckets"
say "tables (with RLS) and private buckets present"

step=$SECONDS
CLIPPER_SUPABASE_CLI=$cli go test -count=1 -run '^TestSupabaseCLI$' ./internal/migrate
say "Go test TestSupabaseCLI ($((SECONDS - step)) s)"

say "supabase push check passed in $((SECONDS - started)) s"
