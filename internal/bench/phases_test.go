package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOnlyRunsTheNamedPhasesAndTheLoadTheyNeed(t *testing.T) {
	all, err := selectPhases(nil)
	require.NoError(t, err)
	for _, name := range PhaseNames() {
		require.True(t, all(name), "no --only runs %s", name)
	}

	only, err := selectPhases([]string{"group-commit", "cleanup"})
	require.NoError(t, err)
	var ran []string
	for _, name := range PhaseNames() {
		if only(name) {
			ran = append(ran, name)
		}
	}
	require.Equal(t, []string{"load", "cleanup", "group-commit"}, ran, "cleanup measures on the bulk load")

	_, err = selectPhases([]string{"lifecycle", "nope"})
	require.ErrorContains(t, err, `unknown phase "nope"`)
	require.ErrorContains(t, err, "group-commit", "the error lists the phases")
}
