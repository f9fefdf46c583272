#!/usr/bin/env bash
# The whole test suite. Run it through `make test`, which gives it a
# throwaway PostgreSQL (TEST_DATABASE_URL) and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
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
for target in "FuzzParse ./internal/apikeys" "FuzzParsePayload ./webhooks" "FuzzVerifySignature ./webhooks"; do
  set -- $target
  go test -run '^$' -fuzz "^$1\$" -fuzztime 10s "$2"
done
