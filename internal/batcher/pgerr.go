package batcher

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ItemFault reports whether err, returned by one item's statement in a
// batch's transaction, is that item's own fault: its values broke a
// constraint (SQLSTATE class 23), had the wrong form (22), or a trigger or
// policy refused them (the project's CL codes, P0 raise_exception, 42501).
// The batch then runs again without the item. Any other error (the
// connection, a timeout, a deadlock) says nothing about the item and fails
// the whole batch.
func ItemFault(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	c := pgErr.Code
	return strings.HasPrefix(c, "22") || strings.HasPrefix(c, "23") || strings.HasPrefix(c, "CL") ||
		strings.HasPrefix(c, "P0") || c == "42501"
}

// MaxRetries bounds how often a batch runs again after Retryable errors.
const MaxRetries = 3

// Retryable reports whether a batch's transaction failed for a reason of
// its own timing (a deadlock or serialization failure with another
// transaction) rather than its items: running the batch again is the
// right answer, and no caller should see the error.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
