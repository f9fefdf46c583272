package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/httpapi"
)

type ctxKey struct{}

// TestRequestDeadline: a handler stuck on something that honours its
// context (a database call) ends at the request timeout with 503
// unavailable; a stream can lift the deadline and keeps the request's
// values.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	e := httpapi.New(httpapi.Options{RequestTimeout: 100 * time.Millisecond})
	e.GET("/stuck", func(c echo.Context) error {
		select {
		case <-c.Request().Context().Done():
			return apperr.FromDB(c.Request().Context().Err(), "job")
		case <-time.After(10 * time.Second): // hang guard
			return c.NoContent(http.StatusNoContent)
		}
	})
	e.GET("/stream", func(c echo.Context) error {
		ctx := context.WithValue(c.Request().Context(), ctxKey{}, "kept")
		free := httpapi.WithoutDeadline(ctx)
		if _, ok := free.Deadline(); ok {
			return c.String(http.StatusInternalServerError, "still has a deadline")
		}
		if free.Value(ctxKey{}) != "kept" {
			return c.String(http.StatusInternalServerError, "lost a value")
		}
		if _, ok := c.Request().Context().Deadline(); !ok {
			return c.String(http.StatusInternalServerError, "request has no deadline")
		}
		return c.NoContent(http.StatusNoContent)
	})

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stuck", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.JSONEq(t, `{"ok":false,"code":"unavailable","message":"database did not answer in time"}`, rec.Body.String())
	require.Equal(t, "1", rec.Header().Get("Retry-After"))

	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stream", nil))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
}

// TestClientAddress: X-Forwarded-For names the client only when it comes
// from a trusted proxy.
func TestClientAddress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		proxies []string
		want    string
	}{
		{nil, "192.0.2.10"},
		{[]string{"192.0.2.0/24"}, "203.0.113.7"},
	} {
		e := httpapi.New(httpapi.Options{TrustedProxies: c.proxies})
		e.GET("/ip", func(ec echo.Context) error { return ec.String(http.StatusOK, ec.RealIP()) })
		req := httptest.NewRequest(http.MethodGet, "/ip", nil)
		req.RemoteAddr = "192.0.2.10:5555"
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, c.want, rec.Body.String(), "proxies %v", c.proxies)
	}
}
