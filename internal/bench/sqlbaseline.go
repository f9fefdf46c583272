package bench

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/clipper/clipper/internal/pgcluster"
)

//go:embed sql/lifecycle.pgbench
var lifecycleSQL []byte

// lifecycleSQL runs the lifecycle phase's work written by hand in SQL
// (sql/lifecycle.pgbench) with pgbench, as many clients as lifecycle
// workers, on the same database: what the Go path would reach if it cost
// nothing. Reports jobs/s and the Go path's share of it. Skipped, with a
// message, when pgbench is not installed.
func (e *env) lifecycleSQL(ctx context.Context) error {
	pgbench, err := findPgbench()
	if err != nil {
		e.logf("  lifecycle_sql skipped: %v", err)
		return nil
	}
	if err := e.emptyQueue(ctx); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "clipper-bench-sql-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "lifecycle.pgbench")
	if err := os.WriteFile(script, lifecycleSQL, 0o600); err != nil {
		return err
	}
	seconds := max(1, int(e.opts.Phase.Round(time.Second)/time.Second))
	count := func() (int64, error) {
		var n int64
		err := e.pool.QueryRow(ctx, "select count(*) from jobs where status = 'done' and worker_id like 'sql-worker-%'").Scan(&n)
		return n, err
	}
	before, err := count()
	if err != nil {
		return err
	}
	workers := strconv.Itoa(e.opts.Workers)
	cmd := exec.CommandContext(ctx, pgbench, "--no-vacuum", "--client", workers, "--jobs", workers,
		"--time", strconv.Itoa(seconds), "--file", script, e.dsn)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	prof := startProfile(ctx, e.pool)
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("pgbench: %w\n%s", err, out.String())
	}
	after, err := count()
	if err != nil {
		return err
	}
	rate := float64(after-before) / elapsed.Seconds()
	e.rep.add("lifecycle_sql", rate, "jobs/s")
	prof.finish(e, "lifecycle_sql")
	if goRate, ok := e.rep.Get("lifecycle"); ok {
		ratio := 0.0
		if rate > 0 {
			ratio = goRate / rate
		} else {
			e.logf("  lifecycle_sql completed no job (a machine too busy for the phase's length?)")
		}
		e.rep.add("lifecycle_vs_sql", ratio, "x")
	}
	return nil
}

// findPgbench looks on PATH, then beside the server binaries.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	dir, err := pgcluster.FindBinDir()
	if err != nil {
		return "", fmt.Errorf("pgbench is not installed: %w", err)
	}
	p := filepath.Join(dir, "pgbench")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pgbench is not installed (not on PATH, not in %s)", dir)
	}
	return p, nil
}
