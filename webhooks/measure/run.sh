#!/usr/bin/env bash
# Measures what the opt-in jobs webhook (install.sql -v jobs_webhook=on)
# costs the job lifecycle: pgbench runs lifecycle.pgbench against a fresh,
# durable PostgreSQL (fsync on) with the migrations applied, alternating
# runs without and with the webhook installed over pg_net_standin.sql.
# Usage: webhooks/measure/run.sh [clients] [seconds] [rounds]
# SYNC=off starts the server with synchronous_commit=off, so that commits
# do not wait for the disk and the trigger's own work shows.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-8} seconds=${2:-20} rounds=${3:-3}
bin=$(pg_config --bindir 2>/dev/null || dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")
dir=$(mktemp -d) port=$((20000 + RANDOM % 20000))
# initdb and postgres refuse to run as root: hand them to postgres.
as=()
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as=(runuser -u postgres --); fi
trap '"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses= -c max_connections=50 -c synchronous_commit=${SYNC:-on}" start >/dev/null
url="postgres://postgres@/postgres?host=$dir&port=$port&sslmode=disable"
DATABASE_URL=$url go run ./cmd/clipper migrate >/dev/null
"$bin/psql" -X -q -d "$url" -v ON_ERROR_STOP=1 -f webhooks/measure/pg_net_standin.sql
install() {
  CLIPPER_WEBHOOK_SECRET=measure-secret "$bin/psql" -X -q -d "$url" -v ON_ERROR_STOP=1 \
    -v webhook_url=http://127.0.0.1:1/webhooks/supabase -v jobs_webhook="$1" -f webhooks/install.sql 2>&1 | grep -v NOTICE || true
}
run() {
  "$bin/pgbench" -n -c "$clients" -j 2 -T "$seconds" -f webhooks/measure/lifecycle.pgbench "$url" |
    awk -v w="$1" '/^tps/ {printf "%-28s %8.0f jobs/s\n", w, $3}'
}
echo "pgbench: $clients clients, $seconds s a run, $(nproc) CPUs, fsync on, synchronous_commit=${SYNC:-on}"
for _ in $(seq "$rounds"); do
  install off; run "without the jobs webhook"
  install on;  run "with the jobs webhook"
done
"$bin/psql" -X -q -At -d "$url" -c "select 'queued requests: ' || count(*) || ', ' || pg_size_pretty(sum(length(body))::bigint) || ' of bodies, ' || pg_size_pretty(avg(length(body))::bigint) || ' a request' from net.http_request_queue"
