package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bench"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The benchmark runs end to end at a tiny size and reports every metric
// the issue asks for. Values are not asserted: they are figures to read,
// not a timed test.
func TestBenchReportsEveryMetric(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs every benchmark phase")
	}
	// The bench migrates a database of its own on the test server. On a
	// fresh server, the plain-Postgres bootstrap creates cluster-wide roles,
	// which the other tests' template build (in this binary or another)
	// creates at the same moment: two CREATE ROLE of one name race (a
	// unique violation, seen once). Building the template first, under its
	// lock, leaves the bench's bootstrap nothing cluster-wide to create.
	pgtest.Template(t)
	rep, err := bench.Run(context.Background(), bench.Options{
		DatabaseURL: pgtest.ServerURL(t), Jobs: 3000, Events: 30000, Clients: 4, Workers: 2,
		Phase: 300 * time.Millisecond, Samples: 30,
	})
	require.NoError(t, err)
	want := []string{
		"create_single", "create_batch", "lifecycle", "event_append_single", "event_append_batch",
		"lifecycle_sql", "lifecycle_vs_sql", "progress_unwatched", "progress_all_watched", "stream_event_latency_p95_ms",
		"list_by_status_p95_ms", "list_by_status_deep_p95_ms", "get_job_p95_ms", "events_by_job_p95_ms",
		"expired_select_p95_ms", "list_by_status_p50_ms", "list_by_status_p99_ms",
		"cleanup_events_per_s", "cleanup_objects_per_s", "writer_p95_ms_during_cleanup", "writer_p95_ms", "peak_rss_mb",
		"http_get_job_p95_ms", "http_get_job_rps", "http_create_job_p95_ms",
		"auth_baseline_valid_rps", "auth_baseline_cached_key_p95_ms",
		"auth_flood_valid_rps", "auth_flood_cached_key_p95_ms", "auth_flood_new_key_p95_ms", "auth_flood_attack_refused_fast",
		"auth_flood_unguarded_valid_rps", "auth_flood_unguarded_cached_key_p95_ms",
	}
	for _, name := range want {
		v, ok := rep.Get(name)
		require.True(t, ok, "metric %s missing", name)
		require.GreaterOrEqual(t, v, 0.0, name)
	}
	v, _ := rep.Get("lifecycle")
	require.Greater(t, v, 0.0, "the lifecycle phase completed jobs")

	var buf bytes.Buffer
	require.NoError(t, rep.WriteJSON(&buf))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Contains(t, lines[0], `"machine"`)
	// A server the bench did not start: it cannot see its memory mappings.
	require.Contains(t, lines[0], `"huge_pages":"unknown"`)
	for _, line := range lines[1:] {
		var m struct {
			Metric string   `json:"metric"`
			Value  *float64 `json:"value"`
			Unit   string   `json:"unit"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		require.NotEmpty(t, m.Metric)
		require.NotNil(t, m.Value)
		require.NotEmpty(t, m.Unit)
	}
}
