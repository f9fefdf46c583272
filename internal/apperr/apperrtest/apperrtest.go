// Package apperrtest holds the assertions tests make about the project's
// errors, so that every package checks codes and envelopes the same way.
package apperrtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
)

// RequireCode checks an error's code and that it renders as an envelope
// with that code and a message.
func RequireCode(t testing.TB, err error, code apperr.Code) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, apperr.CodeOf(err), "error: %v", err)
	env := apperr.EnvelopeOf(err)
	require.False(t, env.OK)
	require.Equal(t, code, env.Code)
	require.NotEmpty(t, env.Message)
}

// RequireError checks an error's code and that its safe message holds msg.
func RequireError(t testing.TB, err error, code apperr.Code, msg string) {
	t.Helper()
	RequireCode(t, err, code)
	require.Contains(t, apperr.EnvelopeOf(err).Message, msg)
}
