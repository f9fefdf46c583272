package migrate_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The enum labels sqlc generates from db/schema/enums.sql must be the ones
// the migrations create.
func TestEnumsMatchSqlc(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)

	labels := func(typ string) []string {
		rows, err := tx.Query(ctx, `select enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid
			where t.typname = $1 order by e.enumsortorder`, typ)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	var status []string
	for _, s := range dbgen.AllJobStatusValues() {
		status = append(status, string(s))
	}
	require.Equal(t, status, labels("job_status"))
	var source []string
	for _, s := range dbgen.AllJobSourceTypeValues() {
		source = append(source, string(s))
	}
	require.Equal(t, source, labels("job_source_type"))
}

func TestUpTwiceIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	require.Empty(t, res.Applied)

	status, err := migrate.Status(ctx, dsn)
	require.NoError(t, err)
	files, err := migrate.Files()
	require.NoError(t, err)
	require.Len(t, status, len(files))
	for _, m := range status {
		require.True(t, m.Applied, m.Name)
	}
}
