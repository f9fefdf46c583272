package schemadump_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/tools/schemadump"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// db/schema/schema.sql is the schema the migrations build, line for line.
func TestSnapshotIsCurrent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dump, err := schemadump.Dump(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	committed, err := os.ReadFile(filepath.Join("..", "..", "..", schemadump.Path))
	require.NoError(t, err)
	if string(dump) != string(committed) {
		t.Fatalf("%s is out of date with supabase/migrations: run `make generate` and commit the result.\nFirst difference:\n%s",
			schemadump.Path, firstDifference(string(committed), string(dump)))
	}
}

// The snapshot does not change from one dump to the next: nothing in it
// depends on the run (pg_dump's version lines and \restrict keys are gone).
func TestDumpIsDeterministic(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	a, err := schemadump.Dump(ctx, dsn)
	require.NoError(t, err)
	b, err := schemadump.Dump(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	require.Equal(t, string(a), string(b))
	require.True(t, strings.HasPrefix(string(a), schemadump.Header))
	for _, volatile := range []string{`\restrict`, `\unrestrict`, "Dumped from database version", "Dumped by pg_dump version"} {
		require.NotContains(t, string(a), volatile)
	}
	require.Contains(t, string(a), "CREATE TABLE public.jobs")
}

// firstDifference quotes the first differing line of two texts, with context.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  committed:  %s\n  migrations: %s", i+1, wl, gl)
		}
	}
	return "(trailing whitespace)"
}
