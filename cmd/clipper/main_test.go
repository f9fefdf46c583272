package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUsageAndCommandErrors(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &out))
	for _, c := range commands() {
		require.Contains(t, out.String(), c.name)
	}

	out.Reset()
	require.Equal(t, 2, run([]string{"frobnicate"}, &out))
	require.Contains(t, out.String(), `unknown command "frobnicate"`)

	t.Setenv("DATABASE_URL", "")
	out.Reset()
	require.Equal(t, 2, run([]string{"migrate", "--status"}, &out))
	require.Contains(t, out.String(), "DATABASE_URL is not set")

	out.Reset()
	require.Equal(t, 0, run([]string{"cleanup", "--help"}, &out))
	require.Equal(t, 2, run([]string{"cleanup", "--batch-size", "0"}, &out))
	require.Contains(t, out.String(), "--batch-size must be 1 to")
}
