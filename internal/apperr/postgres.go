package apperr

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// SQLSTATEs raised by the project's own triggers (see supabase/migrations).
const (
	sqlstateInvalidTransition = "CL001"
	sqlstateAppendOnly        = "CL002"
)

// FromDB maps an error from pgx or PostgreSQL onto a coded error. what
// names the thing operated on ("job", "api key") for not-found messages.
// Messages name constraints and columns, never values: a failing row's
// detail can hold a key hash.
func FromDB(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Wrap(err, NotFound, "%s not found", what)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Wrap(err, Unavailable, "database did not answer in time")
	}
	if errors.Is(err, context.Canceled) {
		return Wrap(err, Unavailable, "request canceled")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fromPgError(err, pgErr, what)
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, puddle.ErrClosedPool) {
		return Wrap(err, Unavailable, "database unavailable")
	}
	return Wrap(err, Internal, "internal error")
}

func fromPgError(err error, pgErr *pgconn.PgError, what string) error {
	code := pgErr.Code
	switch {
	case code == sqlstateInvalidTransition:
		return Wrap(err, InvalidTransition, "%s", pgErr.Message)
	case code == sqlstateAppendOnly:
		return Wrap(err, Forbidden, "%s", pgErr.Message)
	case code == "23505": // unique_violation
		return Wrap(err, Conflict, "%s already exists (%s)", what, pgErr.ConstraintName)
	case code == "23503": // foreign_key_violation
		return Wrap(err, InvalidInput, "%s refers to a row that does not exist (%s)", what, pgErr.ConstraintName)
	case code == "23514": // check_violation
		return Wrap(err, InvalidInput, "%s is not valid (%s)", what, pgErr.ConstraintName)
	case code == "23502": // not_null_violation
		return Wrap(err, InvalidInput, "%s needs a value for %s", what, pgErr.ColumnName)
	case code == "22001": // string_data_right_truncation
		return Wrap(err, InvalidInput, "%s: a value is too long", what)
	case strings.HasPrefix(code, "22"): // data exceptions: bad uuid, json, number, enum
		return Wrap(err, InvalidInput, "%s: a value has the wrong form", what)
	case code == "42501": // insufficient_privilege, including RLS refusals
		return Wrap(err, Forbidden, "not allowed")
	case code == "40001", code == "40P01": // serialization failure, deadlock
		return Wrap(err, Conflict, "concurrent update, try again")
	case code == "55P03": // lock_not_available
		return Wrap(err, Conflict, "%s is locked, try again", what)
	case code == "57014": // query_canceled (statement_timeout)
		return Wrap(err, Unavailable, "database did not answer in time")
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"),
		strings.HasPrefix(code, "57P"), code == "25006": // connection, resources, shutdown, read-only
		return Wrap(err, Unavailable, "database unavailable")
	default:
		return Wrap(err, Internal, "internal error")
	}
}
