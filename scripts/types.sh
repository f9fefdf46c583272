#!/usr/bin/env bash
# Regenerates the TypeScript types in db/typescript/generated from
# supabase/migrations: installs the pinned npm packages when the lockfile
# changed, then migrates a throwaway database and runs postgres-meta and
# drizzle-kit against it (internal/tools/typesgen).
#
#   scripts/types.sh [typesgen flags]   regenerate (-server DSN: default
#                                       $TEST_DATABASE_URL, else a
#                                       throwaway cluster)
#   scripts/types.sh deps               only install the npm packages
#                                       (the tests of db/typescript need them)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=db/typescript
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
  [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] ||
  [ "$dir/package.json" -nt "$dir/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$dir" --no-audit --no-fund
fi
if [ "${1:-}" = deps ]; then
  exit 0
fi
go run ./internal/tools/typesgen/cmd/typesgen "$@"
