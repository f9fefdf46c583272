#!/usr/bin/env bash
# The whole test suite. Run it through `make test`, which gives it a
# throwaway PostgreSQL (TEST_DATABASE_URL) and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(find . -name '*.go' -not -path '*/node_modules/*' -not -path './.dev/*' -print0 | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "shellcheck: the shell scripts"
if ! command -v shellcheck >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Serialised: a second checkout testing at the same time would
  # otherwise find apt's locks taken and fail. Waits at most 10 minutes.
  (
    flock -w 600 9 || { echo "apt-get: another install held /var/lock/clipper-apt.lock for 10 minutes"; exit 1; }
    command -v shellcheck >/dev/null ||
      apt-get install -y -qq shellcheck >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
  ) 9>/var/lock/clipper-apt.lock
fi
if command -v shellcheck >/dev/null; then
  shellcheck scripts/*.sh .ci/run
else
  echo "SKIPPED: shellcheck is not installed (it is installed here only as root with apt-get: apt-get install shellcheck)"
fi

step "sqlc: generated code matches db/queries and the migrations"
(cd db && go tool sqlc diff)

step "npm: pinned TypeScript toolchain for db/typescript"
./scripts/types.sh deps

step "Supabase CLI (pinned) for the migration compatibility test"
CLIPPER_SUPABASE_CLI=$(./scripts/supabase-push-check.sh --install-only)
export CLIPPER_SUPABASE_CLI

step "go vet"
go vet ./...

step "go test -race"
go test -race -count=1 -timeout 20m ./...

step "fuzz (short runs)"
# A count of executions, not a duration: with -fuzztime as a duration, Go's
# fuzzing coordinator (go1.26) can report its own deadline as a failure,
# "context deadline exceeded" with no failing input, when the machine is
# busy at the moment it ends (golang/go#75804, fixed in go1.27).
for target in "FuzzParse ./internal/apikeys" "FuzzParsePayload ./webhooks" "FuzzVerifySignature ./webhooks"; do
  read -r fuzz pkg <<<"$target"
  go test -run '^$' -fuzz "^$fuzz\$" -fuzztime 50000x "$pkg"
done
