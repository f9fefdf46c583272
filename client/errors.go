package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Code is a stable, machine-readable error code. The strings are the
// daemon's own (the "code" of its {"ok":false,"code","message"} answers),
// so a program can match on them whichever client produced the error.
type Code string

// The codes. Match with errors.Is against the Err* values, with CodeOf, or
// with IsJobLost for a worker's held job.
const (
	CodeNotFound          Code = "not_found"
	CodeConflict          Code = "conflict"
	CodeInvalidTransition Code = "invalid_transition"
	CodeInvalidInput      Code = "invalid_input"
	CodeUnauthorized      Code = "unauthorized"
	CodeForbidden         Code = "forbidden"
	CodeRateLimited       Code = "rate_limited"
	CodePayloadTooLarge   Code = "payload_too_large"
	CodeUnavailable       Code = "unavailable"
	CodeInternal          Code = "internal"
)

// Sentinels for errors.Is: errors.Is(err, client.ErrNotFound) is true for
// any *Error whose Code is not_found.
var (
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrConflict          = &Error{Code: CodeConflict}
	ErrInvalidTransition = &Error{Code: CodeInvalidTransition}
	ErrInvalidInput      = &Error{Code: CodeInvalidInput}
	ErrUnauthorized      = &Error{Code: CodeUnauthorized}
	ErrForbidden         = &Error{Code: CodeForbidden}
	ErrRateLimited       = &Error{Code: CodeRateLimited}
	ErrPayloadTooLarge   = &Error{Code: CodePayloadTooLarge}
	ErrUnavailable       = &Error{Code: CodeUnavailable}
	ErrInternal          = &Error{Code: CodeInternal}
)

// Error is every error this package returns for a failed call (apart from
// a caller's own context ending, which is returned as the context's error).
type Error struct {
	// Code is the stable code: the daemon's, or the one a PostgREST or
	// Storage error maps to (see PostgREST).
	Code Code
	// Message is for people; it never holds the API key or token.
	Message string
	// Status is the HTTP status of the answer, 0 when none arrived.
	Status int
	// RequestID is the daemon's X-Request-Id, for its logs.
	RequestID string
	// RetryAfter is what a 429 or 503 answer asked to wait.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent.
	Attempts int
	// PostgREST is PostgREST's own error body, for errors of the User
	// client ({code, message, details, hint}); nil otherwise.
	PostgREST *PostgRESTError
	// Transfer is true for errors of a transfer to or from a signed URL
	// (Client.Download, Client.Upload, User.UploadSource): their not_found
	// is a missing object, never a lost job.
	Transfer bool
	// Err is the underlying cause (a network error), if any.
	Err error
}

// PostgRESTError is the body PostgREST answers errors with. Code is a
// PostgreSQL SQLSTATE (42501, 23505, ...) or one of PostgREST's own
// (PGRST116, ...).
type PostgRESTError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details string `json:"details"`
	Hint    string `json:"hint"`
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the Err* sentinels by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Status == 0 && t.Err == nil && t.Code == e.Code
}

// CodeOf returns err's code: "" for nil, CodeInternal for an error that is
// not an *Error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// IsJobLost reports whether err means the worker no longer holds the job:
// it was canceled, taken back after a missed heartbeat and given to
// another worker, finished, or deleted (invalid_transition or not_found).
// The worker should stop working on it and drop it; retrying cannot help.
func IsJobLost(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Transfer {
		return false
	}
	return e.Code == CodeInvalidTransition || e.Code == CodeNotFound
}

// codeForStatus is the code of an answer without a readable code.
func codeForStatus(status int) Code {
	switch status {
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusMethodNotAllowed, http.StatusNotAcceptable:
		return CodeInvalidInput
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusRequestEntityTooLarge:
		return CodePayloadTooLarge
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// ctxErr returns the caller's context error as is, so that errors.Is(err,
// context.Canceled) works for callers who end their own work.
func ctxErr(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// redact drops the query of the URL a transport error names: a signed
// URL's token must not reach messages or logs.
func redact(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	if u, perr := url.Parse(ue.URL); perr == nil && u.RawQuery != "" {
		u.RawQuery = "…"
		return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
	}
	return err
}
