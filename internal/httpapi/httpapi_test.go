package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/metrics"
)

func serve(t *testing.T, method, path, body string) (*httptest.ResponseRecorder, apperr.Envelope) {
	t.Helper()
	var logs strings.Builder
	e := httpapi.New(httpapi.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: metrics.New(), BodyLimit: "64"})
	e.GET("/panic", func(echo.Context) error { panic("boom: secret-in-panic") })
	e.POST("/bind", func(c echo.Context) error {
		var v struct {
			Name string `json:"name"`
		}
		if err := httpapi.BindJSON(c, &v); err != nil {
			return err
		}
		return httpapi.OK(c, http.StatusCreated, v)
	})
	e.GET("/plain-error", func(echo.Context) error { return io.ErrUnexpectedEOF })
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var env apperr.Envelope
	_ = json.Unmarshal(rec.Body.Bytes(), &env)
	require.NotContains(t, rec.Body.String(), "secret-in-panic")
	return rec, env
}

func TestErrorsRenderAsEnvelopes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method, path, body string
		status             int
		code               apperr.Code
	}{
		{"GET", "/panic", "", http.StatusInternalServerError, apperr.Internal},
		{"GET", "/plain-error", "", http.StatusInternalServerError, apperr.Internal},
		{"GET", "/nowhere", "", http.StatusNotFound, apperr.NotFound},
		{"DELETE", "/bind", "", http.StatusBadRequest, apperr.InvalidInput},
		{"POST", "/bind", `{"name":`, http.StatusBadRequest, apperr.InvalidInput},
		{"POST", "/bind", `{"other":1}`, http.StatusBadRequest, apperr.InvalidInput},
		{"POST", "/bind", `{"name":1}`, http.StatusBadRequest, apperr.InvalidInput},
		{"POST", "/bind", `{"name":"a"} {"name":"b"}`, http.StatusBadRequest, apperr.InvalidInput},
		{"POST", "/bind", `{"name":"` + strings.Repeat("x", 200) + `"}`, http.StatusRequestEntityTooLarge, apperr.PayloadTooLarge},
	}
	for _, c := range cases {
		rec, env := serve(t, c.method, c.path, c.body)
		require.Equal(t, c.status, rec.Code, "%s %s %s", c.method, c.path, c.body)
		require.False(t, env.OK)
		require.Equal(t, c.code, env.Code, "%s %s %s: %s", c.method, c.path, c.body, rec.Body.String())
		require.NotEmpty(t, env.Message)
		require.NotEmpty(t, rec.Header().Get(echo.HeaderXRequestID))
	}
	rec, env := serve(t, "GET", "/plain-error", "")
	require.Equal(t, "internal error", env.Message, "an uncoded error's text is never shown: %s", rec.Body.String())

	rec, _ = serve(t, "POST", "/bind", `{"name":"ok"}`)
	require.Equal(t, http.StatusCreated, rec.Code)
	require.JSONEq(t, `{"ok":true,"data":{"name":"ok"}}`, rec.Body.String())
}
