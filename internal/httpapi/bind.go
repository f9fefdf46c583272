package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apperr"
)

// BindJSON decodes the request body into v strictly: JSON content type,
// one object, no unknown fields. Errors are invalid_input (or
// payload_too_large) with a message naming the problem, never the body.
func BindJSON(c echo.Context, v any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return apperr.New(apperr.InvalidInput, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.New(apperr.InvalidInput, "request body must hold one JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &maxErr), errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
		return apperr.New(apperr.PayloadTooLarge, "request body too large")
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.InvalidInput, "request body is empty")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.InvalidInput, "request body is not valid JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return apperr.New(apperr.InvalidInput, "field %q has the wrong type", typeErr.Field)
		}
		return apperr.New(apperr.InvalidInput, "request body has the wrong shape")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return apperr.New(apperr.InvalidInput, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return apperr.New(apperr.InvalidInput, "request body could not be read")
	}
}
