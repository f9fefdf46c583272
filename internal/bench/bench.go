// Package bench measures the data layer at realistic volume: write
// throughput (single, batch, full job lifecycle, events), read latency
// percentiles on a loaded database, cleanup under concurrent writers, and
// the daemon over HTTP. It prints a table, or JSON lines.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/devenv"
	"github.com/clipper/clipper/internal/migrate"
)

// Options size a run. Zero values take the defaults (or the quick ones).
type Options struct {
	DatabaseURL string // a server to create the throwaway database on; "" starts a local cluster
	Quick       bool   // small volumes and short phases (well under two minutes)
	Jobs        int    // jobs loaded for the latency phases (default 1M, quick 50k)
	Events      int    // events loaded (default 10M, quick 500k)
	Clients     int    // concurrent clients for single-row phases (default 32)
	Workers     int    // concurrent workers in the lifecycle phase (default 8)
	Phase       time.Duration
	Samples     int  // latency samples per query (default 2000, quick 500)
	SkipHTTP    bool // no daemon phase
	// Only runs just the named phases (PhaseNames), and the bulk load the
	// volume phases need; empty runs them all.
	Only []string
	Keep bool // keep the database (and local cluster folder) afterwards
	Log  io.Writer
}

func (o *Options) defaults() {
	if o.Jobs == 0 {
		o.Jobs = 1_000_000
		if o.Quick {
			o.Jobs = 50_000
		}
	}
	if o.Events == 0 {
		o.Events = 10 * o.Jobs
	}
	if o.Clients == 0 {
		o.Clients = 32
	}
	if o.Workers == 0 {
		o.Workers = 8
	}
	if o.Phase == 0 {
		o.Phase = 5 * time.Second
		if o.Quick {
			o.Phase = 1500 * time.Millisecond
		}
	}
	if o.Samples == 0 {
		o.Samples = 2000
		if o.Quick {
			o.Samples = 500
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Metric is one figure, printed as {"metric","value","unit"}.
type Metric struct {
	Name  string  `json:"metric"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Report is everything a run measured.
type Report struct {
	Machine Machine
	Metrics []Metric
}

// Machine is the first line of a report.
type Machine struct {
	Cores      int    `json:"cores"`
	Postgres   string `json:"postgres"`
	GoVersion  string `json:"go"`
	Jobs       int    `json:"jobs"`
	Events     int    `json:"events"`
	DurableWAL bool   `json:"fsync"`
	// HugePages is whether the server's buffer pool is on huge pages:
	// "on", "off", or "unknown" for a server the bench did not start.
	HugePages string `json:"huge_pages"`
}

func (r *Report) add(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
}

// Get returns a metric's value.
func (r *Report) Get(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// env is what the phases share.
type env struct {
	opts      Options
	hugePages string // Machine.HugePages, found when the bench starts its cluster
	pool      *pgxpool.Pool
	dsn       string
	rep       *Report
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.Log, "bench: "+format+"\n", args...)
}

// Run sets up a throwaway database, runs every phase and returns the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	only, err := selectPhases(opts.Only)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	e := &env{opts: opts, rep: rep, hugePages: "unknown"}

	dsn, cleanup, err := e.database(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	e.dsn = dsn
	if _, err := migrate.Up(ctx, dsn, nil); err != nil {
		return nil, err
	}
	e.pool, err = database.Open(ctx, dsn, database.Options{MaxConns: int32(max(opts.Clients, opts.Workers) + 8),
		StatementTimeout: 10 * time.Minute, IdleInTxTimeout: 10 * time.Minute, ConnectTimeout: time.Minute,
		ApplicationName: "clipper-bench"})
	if err != nil {
		return nil, err
	}
	defer e.pool.Close()

	rep.Machine = Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Jobs: opts.Jobs, Events: opts.Events, HugePages: e.hugePages}
	var fsync string
	if err := e.pool.QueryRow(ctx, "select current_setting('server_version'), current_setting('fsync')").Scan(&rep.Machine.Postgres, &fsync); err != nil {
		return nil, err
	}
	rep.Machine.DurableWAL = fsync == "on"

	for _, p := range e.phases() {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if !only(p.key) || p.http && opts.SkipHTTP {
			continue
		}
		start := time.Now()
		e.logf("%s...", p.name)
		if err := p.fn(ctx); err != nil {
			return rep, fmt.Errorf("%s: %w", p.name, err)
		}
		e.logf("%s done in %s", p.name, time.Since(start).Round(time.Millisecond))
	}
	rep.add("peak_rss_mb", peakRSSMB(), "MiB")
	return rep, nil
}

type phase struct {
	key  string // the name --only takes
	name string // the name progress shows
	http bool   // runs the daemon: skipped with SkipHTTP
	fn   func(context.Context) error
}

// phases lists the phases in the order they run.
func (e *env) phases() []phase {
	return []phase{
		{"create", "single-row creates", false, e.createSingle},
		{"batch", "batch creates", false, e.createBatch},
		{"lifecycle", "job lifecycle", false, e.lifecycle},
		{"lifecycle-sql", "job lifecycle in SQL (pgbench)", false, e.lifecycleSQL},
		{"progress", "progress reports", false, e.progress},
		{"events", "event appends", false, e.eventAppends},
		{"load", "bulk load", false, e.load},
		{"latency", "read latency", false, e.latency},
		{"cleanup", "cleanup under writers", false, e.cleanup},
		{"group-commit", "group commit", false, e.groupCommit},
		{"http", "daemon over HTTP", true, e.http},
		{"streams", "event stream latency", true, e.streamLatency},
		{"auth", "auth under attack", true, e.authFlood},
	}
}

// PhaseNames returns the names Options.Only takes, in run order.
func PhaseNames() []string {
	var names []string
	for _, p := range (&env{}).phases() {
		names = append(names, p.key)
	}
	return names
}

// selectPhases returns which phases run for Options.Only: all when it is
// empty, else the named ones and the bulk load the volume phases (read
// latency, cleanup) measure on.
func selectPhases(only []string) (func(key string) bool, error) {
	if len(only) == 0 {
		return func(string) bool { return true }, nil
	}
	known := PhaseNames()
	want := map[string]bool{}
	for _, k := range only {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown phase %q (phases: %s)", k, strings.Join(known, ", "))
		}
		want[k] = true
	}
	if want["latency"] || want["cleanup"] {
		want["load"] = true
	}
	return func(key string) bool { return want[key] }, nil
}

// database creates the throwaway database: on the given server, or in a
// local cluster of its own (durable settings: fsync on, as in production).
func (e *env) database(ctx context.Context) (string, func(), error) {
	name := "clipper_bench_" + randomHex(4)
	if e.opts.DatabaseURL != "" {
		dsn, err := database.CreateDatabase(ctx, e.opts.DatabaseURL, name, "")
		if err != nil {
			return "", nil, fmt.Errorf("--database-url: %w", err)
		}
		cfg, err := pgx.ParseConfig(e.opts.DatabaseURL)
		if err != nil {
			return "", nil, err
		}
		e.logf("database %s on %s:%d", name, cfg.Host, cfg.Port)
		return dsn, func() {
			if !e.opts.Keep {
				_ = database.DropDatabase(context.Background(), e.opts.DatabaseURL, name)
			}
		}, nil
	}
	dir, err := os.MkdirTemp("", "clipper-bench-")
	if err != nil {
		return "", nil, err
	}
	db, err := devenv.Start(ctx, devenv.Options{Dir: dir, Database: "bench", Settings: map[string]string{
		"shared_buffers": "1GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min",
		"max_connections": "200", "work_mem": "16MB", "maintenance_work_mem": "512MB",
	}})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	e.logf("local cluster in %s on port %d", dir, db.Cluster.Port())
	if huge, err := db.Cluster.HugePages(); err == nil {
		e.hugePages = "on"
		if !huge {
			e.hugePages = "off"
			e.logf("the buffer pool is on 4 kB pages (too few huge pages reserved: vm.nr_hugepages): every connection faults each page in on first touch, which on some virtual machines bounds the volume phases (docs/performance.md)")
		}
	}
	return db.URL, func() {
		_ = db.Stop(context.Background())
		if !e.opts.Keep {
			os.RemoveAll(dir)
		}
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// peakRSSMB reads this process's peak resident set (VmHWM).
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// percentile returns the p-th percentile (0..100) in milliseconds.
func (l *latencies) percentile(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	i := int(float64(len(l.d)-1) * p / 100)
	return float64(l.d[i].Microseconds()) / 1000
}

func (e *env) addLatency(name string, l *latencies) {
	e.rep.add(name+"_p50_ms", l.percentile(50), "ms")
	e.rep.add(name+"_p95_ms", l.percentile(95), "ms")
	e.rep.add(name+"_p99_ms", l.percentile(99), "ms")
}

// WriteTable prints the report for a person.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores, PostgreSQL %s (fsync %v, huge pages %s), %s; volume %d jobs, %d events\n\n",
		m.Cores, m.Postgres, m.DurableWAL, m.HugePages, m.GoVersion, m.Jobs, m.Events)
	fmt.Fprintf(w, "%-36s %14s  %s\n", "metric", "value", "unit")
	fmt.Fprintf(w, "%-36s %14s  %s\n", strings.Repeat("-", 36), strings.Repeat("-", 14), "----")
	for _, x := range r.Metrics {
		fmt.Fprintf(w, "%-36s %14s  %s\n", x.Name, format(x.Value), x.Unit)
	}
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// WriteJSON prints the machine line, then one JSON object per metric.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(map[string]any{"machine": r.Machine}); err != nil {
		return err
	}
	for _, m := range r.Metrics {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

// runFor runs fn in n goroutines until d has passed (or ctx is done) and
// returns how many operations succeeded and the elapsed time. fn returns
// the operations it completed. Operations under way at the deadline run to
// their end: canceling them mid-statement would measure cancellation.
func runFor(ctx context.Context, n int, d time.Duration, fn func(ctx context.Context, worker int) (int, error)) (int64, time.Duration, error) {
	var (
		mu    sync.Mutex
		total int64
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every worker runs at least once, so a phase reports figures
			// even when a loaded machine starts its goroutines late.
			for once := true; ctx.Err() == nil && (once || time.Now().Before(deadline)); once = false {
				done, err := fn(ctx, w)
				mu.Lock()
				total += int64(done)
				if err != nil && ctx.Err() == nil && first == nil {
					first = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return total, time.Since(start), first
}
