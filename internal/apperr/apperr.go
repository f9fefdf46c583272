// Package apperr is the project's error vocabulary: stable codes, safe
// messages, the {ok:false,code,message} envelope, and the one place where
// PostgreSQL and driver errors are mapped onto codes.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code.
type Code string

// The codes callers can rely on.
const (
	NotFound          Code = "not_found"
	Conflict          Code = "conflict"
	InvalidTransition Code = "invalid_transition"
	InvalidInput      Code = "invalid_input"
	Unauthorized      Code = "unauthorized"
	Forbidden         Code = "forbidden"
	RateLimited       Code = "rate_limited"
	PayloadTooLarge   Code = "payload_too_large"
	Unavailable       Code = "unavailable"
	Internal          Code = "internal"
)

// Error is an error with a stable code and a message that is safe to show
// to a caller: it never holds a DSN, password, key or hash. The cause is
// kept for errors.Is/As and logs, never rendered to callers.
type Error struct {
	Code    Code
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return string(e.Code) + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an error with a code and a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code and message around a cause.
func Wrap(cause error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return CodeOf(err) == code }

// CodeOf returns err's code: Internal for an error without one, "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Envelope is the JSON shape of every failure.
type Envelope struct {
	OK      bool   `json:"ok"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// EnvelopeOf renders err. Errors without a code become "internal" with a
// fixed message, so an unexpected error never leaks its text.
func EnvelopeOf(err error) Envelope {
	var e *Error
	if errors.As(err, &e) {
		return Envelope{OK: false, Code: e.Code, Message: e.Message}
	}
	return Envelope{OK: false, Code: Internal, Message: "internal error"}
}

// HTTPStatus maps a code to its HTTP status.
func HTTPStatus(code Code) int {
	switch code {
	case NotFound:
		return http.StatusNotFound
	case Conflict, InvalidTransition:
		return http.StatusConflict
	case InvalidInput:
		return http.StatusBadRequest
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case RateLimited:
		return http.StatusTooManyRequests
	case PayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
