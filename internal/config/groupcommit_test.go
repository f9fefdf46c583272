package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/config"
)

func TestGroupCommitWindow(t *testing.T) {
	t.Setenv("CLIPPER_GROUP_COMMIT_WINDOW", "")
	c, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, time.Millisecond, c.GroupCommitWindow, "on by default")

	t.Setenv("CLIPPER_GROUP_COMMIT_WINDOW", "0")
	c, err = config.Load()
	require.NoError(t, err)
	require.Zero(t, c.GroupCommitWindow, "0 turns it off")

	t.Setenv("CLIPPER_GROUP_COMMIT_WINDOW", "2ms")
	c, err = config.Load()
	require.NoError(t, err)
	require.Equal(t, 2*time.Millisecond, c.GroupCommitWindow)

	t.Setenv("CLIPPER_GROUP_COMMIT_WINDOW", "1s")
	_, err = config.Load()
	require.ErrorContains(t, err, "CLIPPER_GROUP_COMMIT_WINDOW")
}
