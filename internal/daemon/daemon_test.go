package daemon_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestHealthReadyMetricsAndEnvelope(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, daemontest.Config(t))

	r := d.Do(t, "GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.JSONEq(t, `{"ok":true,"data":{"status":"up"}}`, string(r.Body))
	require.NotEmpty(t, r.Header.Get("X-Request-Id"))

	require.Eventually(t, func() bool { return d.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
		10e9, 50e6, "ready once LISTEN is connected")
	r = d.Do(t, "GET", "/readyz", "", nil)
	require.JSONEq(t, `{"ok":true,"data":{"database":"ok","migrations":"ok","listen":"ok"}}`, string(r.Body))

	r = d.Do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), "clipper_http_request_duration_seconds")
	require.Contains(t, string(r.Body), "clipper_db_pool_connections")

	r = d.Do(t, "GET", "/no/such/route", "", nil)
	require.Equal(t, http.StatusNotFound, r.Status)
	require.JSONEq(t, `{"ok":false,"code":"not_found","message":"no such route"}`, string(r.Body))
}
