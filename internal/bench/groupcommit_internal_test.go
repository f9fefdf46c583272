package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
)

// The group commit phase reports each figure with group commit off and
// on. Values are not asserted: they are figures to read.
func TestGroupCommitPhaseReportsBoth(t *testing.T) {
	t.Parallel()
	pool, dsn := pgtest.NewPool(t)
	e := &env{opts: Options{Clients: 4, Phase: 200 * time.Millisecond, Log: io.Discard}, rep: &Report{}, pool: pool, dsn: dsn}
	e.opts.defaults()
	require.NoError(t, e.groupCommit(context.Background()))
	for _, name := range []string{
		"create_single_gc_off", "create_single_gc_on", "create_single_gc_off_p95_ms", "create_single_gc_on_p95_ms",
		"event_append_single_gc_off", "event_append_single_gc_on",
		"event_append_single_gc_off_p95_ms", "event_append_single_gc_on_p95_ms",
		"http_create_job_rps_4c_gc_off", "http_create_job_rps_4c_gc_on",
		"http_create_job_4c_gc_off_p95_ms", "http_create_job_4c_gc_on_p95_ms",
	} {
		v, ok := e.rep.Get(name)
		require.True(t, ok, "metric %s missing", name)
		require.Greater(t, v, 0.0, name)
	}
}
