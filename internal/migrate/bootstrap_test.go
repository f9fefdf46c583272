package migrate_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/pgtest"
)

// On a database that already has the base (a second run, or Supabase
// itself) the bootstrap applies nothing.
func TestBootstrapSecondRunIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("MigratedDatabase", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, pgtest.NewDatabase(t))
		before := catalogSnapshot(t, conn, true)
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.False(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.False(t, applied)
		requireSameSnapshot(t, before, catalogSnapshot(t, conn, true))
	})

	t.Run("EmptyDatabase", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, emptyDatabase(t))
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.True(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.True(t, applied)

		needed, err = bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.False(t, needed)
		before := catalogSnapshot(t, conn, true)
		applied, err = bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.False(t, applied)

		// The script itself is also safe to run again (psql -f on a
		// database that has it), recreating nothing.
		script, err := os.ReadFile("../bootstrap/plain_postgres.sql")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, string(script), pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)
		requireSameSnapshot(t, before, catalogSnapshot(t, conn, true))
	})

	t.Run("PartialBaseIsCompleted", func(t *testing.T) {
		t.Parallel()
		// A database with the auth schema but no storage (as if someone
		// dropped it) is not taken for Supabase.
		conn := connect(t, emptyDatabase(t))
		_, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `drop schema storage cascade`)
		require.NoError(t, err)
		needed, err := bootstrap.Needed(ctx, conn)
		require.NoError(t, err)
		require.True(t, needed)
		applied, err := bootstrap.Apply(ctx, conn)
		require.NoError(t, err)
		require.True(t, applied)
		var objects *string
		require.NoError(t, conn.QueryRow(ctx, `select to_regclass('storage.objects')::text`).Scan(&objects))
		require.NotNil(t, objects)
	})
}
