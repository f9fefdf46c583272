package migrate_test

import (
	"context"
	"io/fs"
	"net/url"
	"testing"
	"testing/fstest"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/migrate"
)

// A database whose older rows break the isolation rules (a source outside
// its owner's folder, results at the bucket root) still upgrades: the new
// constraints are left NOT VALID, keep every row, and bind new writes.
func TestUpgradeWithRowsOutsideTheirFolders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const isolation = "20261202100000_object_isolation.sql"
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	applied, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	require.True(t, applied)

	names, sqls := migrationFiles(t)
	require.Contains(t, names, isolation)
	older := fstest.MapFS{}
	for _, n := range names {
		if n < isolation {
			older["migrations/"+n] = &fstest.MapFile{Data: []byte(sqls[n])}
		}
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	db := dbmate.New(u)
	db.FS = fs.FS(older)
	db.MigrationsDir = []string{"migrations"}
	db.MigrationsTableName = migrate.HistoryTable
	db.AutoDumpSchema = false
	db.Log = nopWriter{}
	require.NoError(t, db.Migrate())

	_, err = conn.Exec(ctx, `
		insert into auth.users (id) values ('00000000-0000-4000-8000-00000000000a'), ('00000000-0000-4000-8000-00000000000b');
		insert into public.jobs (id, owner_id, source_type, source_object) values
		  ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-00000000000a', 'upload',
		   '00000000-0000-4000-8000-00000000000b/private.mp4');
		update public.jobs set status = 'processing', attempts = 1, worker_id = 'w', claimed_at = now(),
		  last_heartbeat_at = now() where id = '00000000-0000-4000-8000-0000000000d1';
		update public.jobs set status = 'done', result_keys = '{clip.mp4}'
		  where id = '00000000-0000-4000-8000-0000000000d1';
		insert into public.jobs (id, owner_id, source_type, source_object) values
		  ('00000000-0000-4000-8000-0000000000d2', '00000000-0000-4000-8000-00000000000a', 'upload',
		   '00000000-0000-4000-8000-00000000000b/private.mp4'),
		  ('00000000-0000-4000-8000-0000000000d3', '00000000-0000-4000-8000-00000000000a', 'upload',
		   '00000000-0000-4000-8000-00000000000a/mine.mp4');`)
	require.NoError(t, err)

	_, err = migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)

	var notValid []string
	rows, err := conn.Query(ctx, `select conname from pg_constraint where conrelid = 'public.jobs'::regclass
		and conname in ('jobs_source_object_folder_check', 'jobs_result_keys_job_check') and not convalidated order by 1`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		notValid = append(notValid, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"jobs_result_keys_job_check", "jobs_source_object_folder_check"}, notValid)

	var source string
	require.NoError(t, conn.QueryRow(ctx, `select source_object from public.jobs
		where id = '00000000-0000-4000-8000-0000000000d1'`).Scan(&source))
	require.Equal(t, "00000000-0000-4000-8000-00000000000b/private.mp4", source, "the finished row is kept")

	// The queued job on another user's upload is canceled, so that claims
	// (which would fail on it) go on; the rightful one stays queued.
	var status, code string
	require.NoError(t, conn.QueryRow(ctx, `select status::text, coalesce(error_code, '') from public.jobs
		where id = '00000000-0000-4000-8000-0000000000d2'`).Scan(&status, &code))
	require.Equal(t, []string{"canceled", "source_not_allowed"}, []string{status, code})
	var claimed string
	require.NoError(t, conn.QueryRow(ctx, `update public.jobs set status = 'processing', attempts = 1, worker_id = 'w',
		claimed_at = now(), last_heartbeat_at = now() where status = 'queued' returning id::text`).Scan(&claimed))
	require.Equal(t, "00000000-0000-4000-8000-0000000000d3", claimed)
	_, err = conn.Exec(ctx, `insert into public.jobs (owner_id, source_type, source_object)
		values ('00000000-0000-4000-8000-00000000000a', 'upload', '00000000-0000-4000-8000-00000000000b/x.mp4')`)
	require.ErrorContains(t, err, "jobs_source_object_folder_check")

	// Once the old rows are gone, applying the migration again validates.
	_, err = conn.Exec(ctx, `delete from public.jobs`)
	require.NoError(t, err)
	applyLikeSupabaseCLI(t, conn, isolation, sqls[isolation])
	var left int
	require.NoError(t, conn.QueryRow(ctx, `select count(*) from pg_constraint where conrelid = 'public.jobs'::regclass
		and conname in ('jobs_source_object_folder_check', 'jobs_result_keys_job_check') and not convalidated`).Scan(&left))
	require.Zero(t, left)
}
