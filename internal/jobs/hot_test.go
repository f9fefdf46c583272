package jobs_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
)

// The hot tables carry the storage parameters of migration
// 20261127150000_hot_table_settings.sql, and nothing else.
func TestHotTableSettings(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	opts := func(table string) []string {
		var o []string
		require.NoError(t, tx.QueryRow(context.Background(),
			`select coalesce(reloptions, '{}') from pg_class where oid = $1::regclass`, table).Scan(&o))
		slices.Sort(o)
		return o
	}
	require.Equal(t, []string{"autovacuum_vacuum_scale_factor=0.02", "vacuum_index_cleanup=on"}, opts("public.jobs"))
	require.Equal(t, []string{"autovacuum_vacuum_scale_factor=0.05"}, opts("public.job_events"))
}

// hotWrittenColumns are the jobs columns a heartbeat or a progress report
// may change: what their statements set, and updated_at, which the
// jobs_before_write trigger sets on every update.
var hotWrittenColumns = []string{"last_heartbeat_at", "progress", "updated_at"}

// Heartbeats and progress reports change no indexed column, so they can
// be HOT updates: no index entry is written, and the previous row version
// is pruned from its page without VACUUM. An index that covers a column
// they change (as a key, inside an expression, or in a partial index's
// predicate) makes every heartbeat write a new entry into every index of
// jobs. This test reads the indexes from the catalog, so it fails exactly
// when such an index appears, whatever the machine is doing. (How many
// updates really are HOT depends on concurrent snapshots and free space:
// scripts/measure-hot-updates.sh measures that.)
func TestHeartbeatsTouchNoIndexedColumn(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// The columns the repository's heartbeat and progress statements
	// really change, seen on a row, must be among hotWrittenColumns, so the
	// list cannot silently fall behind the SQL.
	j := claimOnly(t, b, "w1")
	// Age the row with triggers off (the trigger would set updated_at to
	// now()), so that a statement's now() differs from every value it may set.
	_, err := b.tx.Exec(b.ctx, `set local session_replication_role = replica`)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, `update jobs set last_heartbeat_at = now() - interval '1 hour',
		updated_at = now() - interval '1 hour', progress = 1 where id = $1`, j.ID)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, `set local session_replication_role = origin`)
	require.NoError(t, err)
	changed := func(op func() error) []string {
		t.Helper()
		before := rowJSON(t, b.tx, j.ID)
		require.NoError(t, op())
		after := rowJSON(t, b.tx, j.ID)
		var cols []string
		for k, v := range after {
			if before[k] != v {
				cols = append(cols, k)
			}
		}
		slices.Sort(cols)
		return cols
	}
	hb := changed(func() error { _, err := b.repo.Heartbeat(b.ctx, j.ID, "w1"); return err })
	require.Equal(t, []string{"last_heartbeat_at", "updated_at"}, hb)
	pr := changed(func() error { _, err := b.repo.Progress(b.ctx, j.ID, "w1", 40); return err })
	require.Subset(t, hotWrittenColumns, pr)
	require.Contains(t, pr, "progress")

	require.Empty(t, indexesCovering(t, b.tx, hotWrittenColumns),
		"indexes of jobs that cover a column every heartbeat or progress report writes")
}

// The guard above sees every way an index can cover a column.
func TestIndexesCoveringSeesKeysExpressionsAndPredicates(t *testing.T) {
	t.Parallel()
	for name, ddl := range map[string]string{
		"key":        `create index hot_probe on jobs (last_heartbeat_at)`,
		"second key": `create index hot_probe on jobs (status, updated_at)`,
		"expression": `create index hot_probe on jobs ((coalesce(last_heartbeat_at, created_at)))`,
		"predicate":  `create index hot_probe on jobs (created_at) where progress < 100`,
		"include":    `create index hot_probe on jobs (created_at) include (updated_at)`,
		"unique":     `create unique index hot_probe on jobs (id, progress)`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tx := pgtest.Tx(t)
			require.Empty(t, indexesCovering(t, tx, hotWrittenColumns))
			_, err := tx.Exec(context.Background(), ddl)
			require.NoError(t, err)
			require.Equal(t, []string{"hot_probe"}, indexesCovering(t, tx, hotWrittenColumns))
		})
	}
}

// indexesCovering names the indexes of public.jobs that use any of cols:
// key and INCLUDE columns from pg_index.indkey, columns in expressions and
// predicates from the dependencies Postgres records for them.
func indexesCovering(t *testing.T, q pgx.Tx, cols []string) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), `
		with idx as (
		  select i.indexrelid, i.indrelid, k.attnum
		  from pg_index i
		  cross join lateral unnest(i.indkey::int2[]) as k(attnum)
		  where i.indrelid = 'public.jobs'::regclass and k.attnum > 0
		  union
		  select d.objid, d.refobjid, d.refobjsubid
		  from pg_depend d
		  join pg_index i on i.indexrelid = d.objid
		  where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass
		    and d.refobjid = 'public.jobs'::regclass and d.refobjsubid > 0)
		select distinct c.relname
		from idx
		join pg_attribute a on a.attrelid = idx.indrelid and a.attnum = idx.attnum
		join pg_class c on c.oid = idx.indexrelid
		where a.attname = any($1)
		order by 1`, cols)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// rowJSON reads a job row as column name to JSON text.
func rowJSON(t *testing.T, q pgx.Tx, id any) map[string]string {
	t.Helper()
	rows, err := q.Query(context.Background(),
		`select key, value::text from jsonb_each((select to_jsonb(j) from jobs j where id = $1))`, id)
	require.NoError(t, err)
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		m[k] = v
	}
	require.NoError(t, rows.Err())
	return m
}
