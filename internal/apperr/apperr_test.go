package apperr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
)

func TestFromDBCodes(t *testing.T) {
	t.Parallel()
	pg := func(code, constraint string) error {
		return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, ConstraintName: constraint,
			Message: "m", Detail: "Failing row contains ($argon2id$v=19$secret-hash)"})
	}
	cases := []struct {
		err  error
		code apperr.Code
	}{
		{pgx.ErrNoRows, apperr.NotFound},
		{context.DeadlineExceeded, apperr.Unavailable},
		{context.Canceled, apperr.Unavailable},
		{puddle.ErrClosedPool, apperr.Unavailable},
		{pg("CL001", ""), apperr.InvalidTransition},
		{pg("CL002", ""), apperr.Forbidden},
		{pg("23505", "jobs_pkey"), apperr.Conflict},
		{pg("23503", "jobs_owner_id_fkey"), apperr.InvalidInput},
		{pg("23514", "api_keys_hash_check"), apperr.InvalidInput},
		{pg("22P02", ""), apperr.InvalidInput},
		{pg("42501", ""), apperr.Forbidden},
		{pg("40001", ""), apperr.Conflict},
		{pg("57014", ""), apperr.Unavailable},
		{pg("08006", ""), apperr.Unavailable},
		{pg("XX000", ""), apperr.Internal},
		{errors.New("something else"), apperr.Internal},
	}
	for _, c := range cases {
		err := apperr.FromDB(c.err, "job")
		require.Equal(t, c.code, apperr.CodeOf(err), "%v", c.err)
		env := apperr.EnvelopeOf(err)
		require.False(t, env.OK)
		require.Equal(t, c.code, env.Code)
		require.NotContains(t, env.Message, "argon2id", "a failing row's detail never reaches a caller")
	}
	require.Nil(t, apperr.FromDB(nil, "job"))
}

// Every code has its one HTTP status; a code without a case is a 500.
func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	for code, status := range map[apperr.Code]int{
		apperr.NotFound:             http.StatusNotFound,
		apperr.Conflict:             http.StatusConflict,
		apperr.InvalidTransition:    http.StatusConflict,
		apperr.InvalidInput:         http.StatusBadRequest,
		apperr.Unauthorized:         http.StatusUnauthorized,
		apperr.Forbidden:            http.StatusForbidden,
		apperr.RateLimited:          http.StatusTooManyRequests,
		apperr.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
		apperr.Unavailable:          http.StatusServiceUnavailable,
		apperr.Internal:             http.StatusInternalServerError,
		apperr.Code("no_such_code"): http.StatusInternalServerError,
	} {
		require.Equal(t, status, apperr.HTTPStatus(code), "%s", code)
	}
}

func TestEnvelopeOfUncodedErrorHidesIt(t *testing.T) {
	t.Parallel()
	env := apperr.EnvelopeOf(errors.New("dial tcp: postgres://user:hunter2@db/x"))
	require.Equal(t, apperr.Envelope{OK: false, Code: apperr.Internal, Message: "internal error"}, env)
}
