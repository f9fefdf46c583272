package daemon_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

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
		30*time.Second, 50*time.Millisecond, "ready once LISTEN is connected")
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

// The database password never reaches a response or a log line, whatever
// the request (the local test server trusts loopback, so any password in
// the DSN connects).
func TestDatabasePasswordNeverShown(t *testing.T) {
	t.Parallel()
	cfg := daemontest.Config(t)
	u, err := url.Parse(cfg.DatabaseURL)
	require.NoError(t, err)
	const password = "pw-Zq81-never-shown"
	u.User = url.UserPassword(u.User.Username(), password)
	cfg.DatabaseURL = u.String()
	d := daemontest.Start(t, cfg)

	var bodies []string
	for _, r := range []struct{ method, path, key string }{
		{"GET", "/readyz", ""}, {"GET", "/healthz", ""}, {"GET", "/metrics", ""},
		{"GET", "/v1/jobs", ""}, {"GET", "/v1/jobs", "clp_notakey"},
		{"GET", "/v1/jobs/not-a-uuid", ""}, {"POST", "/v1/jobs", ""}, {"GET", "/nowhere", ""},
	} {
		bodies = append(bodies, string(d.Do(t, r.method, r.path, r.key, nil).Body))
	}
	d.Stop(t)
	for _, b := range bodies {
		require.NotContains(t, b, password)
	}
	require.NotContains(t, d.Logs.String(), password)
}
