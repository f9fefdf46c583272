#!/usr/bin/env bash
# Prints the measurements behind the hot-table settings (migration
# 20261127150000_hot_table_settings.sql): HOT updates of jobs by kind of
# statement and fillfactor, dead index entries on the claim path before
# and after VACUUM, the index pass that VACUUM skips with
# vacuum_index_cleanup = auto, and job_events' size under rolling
# retention at several vacuum scale factors. Every figure is a count
# (statistics counters, relation sizes, buffers, cost units), so it does
# not depend on how busy the machine is.
#
# Uses TEST_DATABASE_URL (a superuser DSN) if set, else a throwaway
# cluster. Takes about 15 minutes on 2 cores.
#
#   scripts/measure-hot-updates.sh                  # everything
#   scripts/measure-hot-updates.sh Fillfactor       # tests matching a pattern
#   CLIPPER_MEASURE_TICKS=200 CLIPPER_MEASURE_RETAINED=300000 scripts/measure-hot-updates.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pattern=${1:-}
CLIPPER_MEASURE_HOT=1 exec go test -count=1 -timeout 90m -v \
  -run "^TestMeasure.*${pattern}" ./internal/jobs/
