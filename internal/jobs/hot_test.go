package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/jobs"
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

// hotCount reads the cumulative update and HOT update counts of jobs.
// pg_stat_force_next_flush makes this backend flush its pending counts
// before it reports ready for the next statement, and each autocommit
// statement reads a fresh statistics snapshot.
func hotCount(t *testing.T, conn *pgx.Conn) (upd, hot int64) {
	t.Helper()
	ctx := context.Background()
	_, err := conn.Exec(ctx, "select pg_stat_force_next_flush()")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables
		where relid = 'public.jobs'::regclass`).Scan(&upd, &hot))
	return upd, hot
}

// Heartbeats and progress reports change no indexed column, so they are
// HOT updates: no index entry is written, and the previous row version is
// pruned from its page without VACUUM. An index on a column they set
// (last_heartbeat_at, updated_at, progress) would make every heartbeat
// write a new entry into every index of jobs; this test fails then.
func TestHeartbeatsAreHOT(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	repo := jobs.New(conn)

	const workers, perWorker, rounds = 4, 16, 12
	batch := make([]jobs.CreateParams, workers*perWorker)
	for i := range batch {
		batch[i] = jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":12.5,"end":47,"format":"mp4"}`)}
	}
	_, err = repo.CreateBatch(ctx, batch)
	require.NoError(t, err)
	held := make([][]uuid.UUID, workers)
	for w := range held {
		got, err := repo.Claim(ctx, fmt.Sprintf("w%d", w), perWorker)
		require.NoError(t, err)
		require.Len(t, got, perWorker)
		for _, j := range got {
			held[w] = append(held[w], j.ID)
		}
	}

	upd0, hot0 := hotCount(t, conn)
	for r := 1; r <= rounds; r++ {
		for w, ids := range held {
			for _, id := range ids {
				if r%4 == 0 {
					_, err = repo.Progress(ctx, id, fmt.Sprintf("w%d", w), r*5)
				} else {
					_, err = repo.Heartbeat(ctx, id, fmt.Sprintf("w%d", w))
				}
				require.NoError(t, err)
			}
		}
	}
	want := int64(rounds * workers * perWorker)
	var upd, hot int64
	// The counts normally arrive with the flush above; allow for a slow
	// server anyway.
	require.Eventually(t, func() bool {
		u, h := hotCount(t, conn)
		upd, hot = u-upd0, h-hot0
		return upd >= want
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, want, upd)
	// Measured: all of them with no other session, 97% with eight workers
	// updating concurrently; but any snapshot that holds back the xmin
	// horizon (autovacuum's ANALYZE, a loaded machine running the whole
	// suite: 17% once) keeps old versions from being pruned, and then an
	// update finds no room on its page. What this test guards against is
	// not a ratio but an index on a column every heartbeat writes
	// (last_heartbeat_at, or updated_at, which the trigger sets): then no
	// update at all can be HOT.
	t.Logf("%d of %d heartbeats and progress reports were HOT", hot, upd)
	require.Positive(t, hot,
		"no heartbeat or progress report was HOT; indexes on jobs: %s", jobsIndexes(t, conn))

	// Each job's heartbeats stayed on its page; the table did not grow a
	// page per heartbeat.
	var pages int64
	require.NoError(t, conn.QueryRow(ctx, `select pg_relation_size('public.jobs') / current_setting('block_size')::int`).Scan(&pages))
	require.Less(t, pages, int64(workers*perWorker), "jobs has %d pages for %d jobs", pages, workers*perWorker)
}

func jobsIndexes(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		`select pg_get_indexdef(indexrelid) from pg_index where indrelid = 'public.jobs'::regclass order by 1`)
	require.NoError(t, err)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(defs, "; ")
}
