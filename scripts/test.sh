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

step "go vet"
go vet ./...

step "go test -race"
go test -race -count=1 -timeout 20m ./...
