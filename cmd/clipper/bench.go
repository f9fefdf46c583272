package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/clipper/clipper/internal/bench"
)

func runBench(ctx context.Context, args []string) error {
	fs := newFlags("bench", "[--quick] [--json] [--database-url URL | --database-url-file PATH]", `Loads realistic volumes into a throwaway database and prints throughput
and latency: single and batch creates, the job lifecycle (create, claim,
complete, every transition with its event), event appends, read-query
percentiles at volume (1M jobs and 10M events by default), cleanup under
concurrent writers, and the daemon over HTTP. The database is created on
--database-url's server (and dropped afterwards), or in a local cluster
of its own with durable settings (fsync on). It never uses DATABASE_URL,
so it cannot load test data into the application's database. Progress
goes to stderr; the table (or, with --json, one JSON object per line) to
stdout. Its first line names the machine, including whether the local
cluster's buffer pool got huge pages (vm.nr_hugepages; on a virtual
machine they can change the volume figures by more than 2x: docs/performance.md).`)
	quick := fs.Bool("quick", false, "small volumes and short phases (well under two minutes)")
	asJSON := fs.Bool("json", false, `print {"metric","value","unit"} JSON lines instead of a table`)
	dsn := fs.String("database-url", "", "a PostgreSQL server to create the throwaway database on (superuser)")
	dsnFile := fs.String("database-url-file", "", "a file holding --database-url (keeps the password off the command line, as DATABASE_URL_FILE does)")
	jobsN := fs.Int("jobs", 0, "jobs at volume (default 1000000, --quick 50000)")
	eventsN := fs.Int("events", 0, "events at volume (default 10 x jobs)")
	phase := fs.Duration("phase", 0, "length of each throughput phase (default 5s, --quick 1.5s)")
	clients := fs.Int("clients", 32, "concurrent clients for single-row phases")
	workers := fs.Int("workers", 8, "concurrent workers in the lifecycle phase")
	noHTTP := fs.Bool("no-http", false, "skip the daemon phase")
	keep := fs.Bool("keep", false, "keep the database afterwards")
	only := fs.String("only", "", "run only these phases, comma-separated (the volume phases load their data first): "+strings.Join(bench.PhaseNames(), ", "))
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dsnFile != "" {
		if *dsn != "" {
			return usageError{"give --database-url or --database-url-file, not both"}
		}
		b, err := os.ReadFile(*dsnFile)
		if err != nil {
			return usageError{"--database-url-file: cannot read the file it names"}
		}
		*dsn = strings.TrimSpace(string(b))
	}
	var phases []string
	if *only != "" {
		for _, p := range strings.Split(*only, ",") {
			phases = append(phases, strings.TrimSpace(p))
		}
	}
	start := time.Now()
	rep, err := bench.Run(ctx, bench.Options{
		DatabaseURL: *dsn, Quick: *quick, Jobs: *jobsN, Events: *eventsN, Phase: *phase,
		Clients: *clients, Workers: *workers, SkipHTTP: *noHTTP, Only: phases, Keep: *keep, Log: os.Stderr,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	rep.WriteTable(os.Stdout)
	fmt.Fprintf(os.Stderr, "bench: finished in %s\n", time.Since(start).Round(time.Second))
	return nil
}
