package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgcluster"
)

// openTempDir returns a new temporary folder that every user may enter.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir makes <TMPDIR>/<TestName><n>/<seq>, both 0700.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	return dir
}

// A folder the server user can reach is used as it is.
func TestPlaceKeepsAReachableFolder(t *testing.T) {
	dir := filepath.Join(openTempDir(t), "checkout", ".dev", "postgres")
	place, moved, err := Place(dir)
	require.NoError(t, err)
	require.False(t, moved)
	require.Equal(t, dir, place)
}

// As root, a checkout in a 0700 folder (like /root) gets its cluster under
// PlaceRoot: the same folder on every run, owned by the server user, and
// Remove deletes it.
func TestClusterOfAPrivateCheckoutMoves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (the server then runs as another user)")
	}
	if _, err := pgcluster.FindBinDir(); err != nil {
		t.Skip(err)
	}
	saved := PlaceRoot
	PlaceRoot = openTempDir(t)
	t.Cleanup(func() { PlaceRoot = saved })

	private, err := os.MkdirTemp(t.TempDir(), "private-") // 0700, owned by root
	require.NoError(t, err)
	dir := filepath.Join(private, "checkout", ".dev", "postgres")
	require.ErrorIs(t, pgcluster.Reachable(dir), pgcluster.ErrUnreachable)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lines []string
	opts := Options{Dir: dir, Database: "app", Fast: true, Logf: func(format string, _ ...any) { lines = append(lines, format) }}
	db, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	require.True(t, db.Moved)
	require.True(t, strings.HasPrefix(db.Dir, filepath.Join(PlaceRoot, "clipper-")), db.Dir)
	require.Equal(t, "postgres", filepath.Base(db.Dir))
	fi, err := os.Stat(db.Dir)
	require.NoError(t, err)
	require.NotEqual(t, uint32(0), fi.Sys().(*syscall.Stat_t).Uid, "the data belongs to the server user")
	note, err := os.ReadFile(filepath.Join(filepath.Dir(db.Dir), "checkout"))
	require.NoError(t, err)
	require.Equal(t, dir+"\n", string(note), "the folder names the checkout it serves")

	_, err = Remove(dir)
	require.ErrorContains(t, err, "already running", "Remove refuses while the server runs")
	require.NoError(t, db.Stop(ctx))

	// The next run finds the same cluster: no initdb.
	lines = nil
	again, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Stop(context.Background()) })
	require.Equal(t, db.Dir, again.Dir)
	for _, l := range lines {
		require.NotContains(t, l, "initdb")
	}
	require.NoError(t, again.Stop(ctx))

	removed, err := Remove(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Dir(db.Dir)}, removed)
	_, err = os.Stat(filepath.Dir(db.Dir))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// A folder under PlaceRoot that someone else made (or a symlink planted
// there) is refused, never used.
func TestPlaceRefusesAPlantedFolder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root")
	}
	saved := PlaceRoot
	PlaceRoot = openTempDir(t)
	t.Cleanup(func() { PlaceRoot = saved })
	private, err := os.MkdirTemp(t.TempDir(), "private-")
	require.NoError(t, err)
	dir := filepath.Join(private, ".dev", "postgres")
	elsewhere := openTempDir(t)
	require.NoError(t, os.Symlink(elsewhere, movedHome(dir)))
	_, _, err = Place(dir)
	require.ErrorContains(t, err, "refusing")

	require.NoError(t, os.Remove(movedHome(dir)))
	require.NoError(t, os.Mkdir(movedHome(dir), 0o777))
	require.NoError(t, os.Chmod(movedHome(dir), 0o777))
	_, _, err = Place(dir)
	require.ErrorContains(t, err, "refusing")
}
