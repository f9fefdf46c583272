package jobs_test

// The measurements behind the hot-table settings of migration
// 20261127150000_hot_table_settings.sql. They run only when
// CLIPPER_MEASURE_HOT is set (scripts/measure-hot-updates.sh) and print
// tables of counts: pg_stat_user_tables counters, relation sizes,
// pgstattuple figures, EXPLAIN buffer counts and VACUUM VERBOSE output.
// Sequential runs give the same counts however loaded the machine is; the
// concurrent-workers and real-autovacuum runs depend on timing and say so.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgcluster"
	"github.com/clipper/clipper/internal/pgtest"
)

func hotRequireMeasure(t *testing.T) {
	t.Helper()
	if os.Getenv("CLIPPER_MEASURE_HOT") == "" {
		t.Skip("set CLIPPER_MEASURE_HOT=1 (scripts/measure-hot-updates.sh) to run the hot-table measurements")
	}
}

// hotNotices collects the INFO and NOTICE messages of a connection (VACUUM
// VERBOSE output).
type hotNotices struct {
	mu  sync.Mutex
	buf []string
}

func (n *hotNotices) take() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := strings.Join(n.buf, "\n")
	n.buf = nil
	return s
}

// hotMeasureConn connects to a fresh migrated database as superuser, with
// pgstattuple installed and the given reloptions on jobs and job_events
// ("" leaves a table as the migrations made it).
func hotMeasureConn(t *testing.T, jobsOpts, eventsOpts string) (*pgx.Conn, *hotNotices) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	n := &hotNotices{}
	cfg.OnNotice = func(_ *pgconn.PgConn, m *pgconn.Notice) {
		n.mu.Lock()
		n.buf = append(n.buf, m.Message)
		n.mu.Unlock()
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "create extension if not exists pgstattuple")
	require.NoError(t, err)
	// Start from the defaults, then apply the options under test.
	_, err = conn.Exec(ctx, `alter table jobs reset (fillfactor, autovacuum_vacuum_scale_factor,
		autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_cost_delay,
		autovacuum_enabled, vacuum_index_cleanup);
		alter table job_events reset (fillfactor, autovacuum_vacuum_scale_factor,
		autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_cost_delay,
		autovacuum_enabled, vacuum_index_cleanup)`)
	require.NoError(t, err)
	if jobsOpts != "" {
		_, err = conn.Exec(ctx, "alter table jobs set ("+jobsOpts+")")
		require.NoError(t, err)
	}
	if eventsOpts != "" {
		_, err = conn.Exec(ctx, "alter table job_events set ("+eventsOpts+")")
		require.NoError(t, err)
	}
	return conn, n
}

// hotTableCounters are one table's cumulative statistics.
type hotTableCounters struct {
	Upd, HotUpd, Dead, Live, InsSinceVacuum int64
}

func (c hotTableCounters) minus(o hotTableCounters) hotTableCounters {
	return hotTableCounters{Upd: c.Upd - o.Upd, HotUpd: c.HotUpd - o.HotUpd}
}

// hotCounters flushes this session's pending statistics and reads a
// table's counters. pg_stat_force_next_flush makes the backend flush
// before it reports ready for the next query, and each autocommit
// statement reads a new statistics snapshot; other sessions' counts are
// not waited for.
func hotCounters(t *testing.T, conn *pgx.Conn, table string) hotTableCounters {
	t.Helper()
	ctx := context.Background()
	_, err := conn.Exec(ctx, "select pg_stat_force_next_flush()")
	require.NoError(t, err)
	var c hotTableCounters
	require.NoError(t, conn.QueryRow(ctx, `select n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup, n_ins_since_vacuum
		from pg_stat_user_tables where relid = $1::regclass`, table).Scan(&c.Upd, &c.HotUpd, &c.Dead, &c.Live, &c.InsSinceVacuum))
	return c
}

// hotKindCounts adds up updates and HOT updates by kind of statement.
type hotKindCounts struct{ Upd, Hot int64 }

func (k *hotKindCounts) add(d hotTableCounters) { k.Upd += d.Upd; k.Hot += d.HotUpd }

func (k hotKindCounts) String() string {
	if k.Upd == 0 {
		return "0"
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", k.Hot, k.Upd, 100*float64(k.Hot)/float64(k.Upd))
}

// hotWorkerLoad is a steady queue: Workers workers, each holding PerClaim
// jobs. Each tick one worker (in turn) completes what it holds, the API
// creates PerClaim jobs and that worker claims them; then every held job
// gets BeatsPerTick beats, every ProgressEvery-th round of beats being a
// progress report instead of a heartbeat. A job thus lives Workers ticks
// and gets Workers*BeatsPerTick beats.
type hotWorkerLoad struct {
	Workers, PerClaim, Ticks, BeatsPerTick, ProgressEvery int
	// HoldSnapshot > 0 keeps a repeatable read transaction open, renewed
	// every HoldSnapshot ticks: a long report or backup holding the xmin
	// horizon, so that no dead row version can be pruned meanwhile.
	HoldSnapshot int
}

type hotLoadResult struct {
	Claim, Beat, Progress, Complete hotKindCounts
	Sizes                           hotRelSizes
}

type hotRelSizes struct {
	Heap, Indexes  int64
	PerIndex       map[string]int64
	TuplePct, Dead float64
	FreePct        float64
	Live, DeadTup  int64
}

func hotSizesOf(t *testing.T, conn *pgx.Conn, table string) hotRelSizes {
	t.Helper()
	ctx := context.Background()
	var s hotRelSizes
	require.NoError(t, conn.QueryRow(ctx, `select pg_relation_size($1::regclass), pg_indexes_size($1::regclass),
		tuple_percent, dead_tuple_percent, free_percent, tuple_count, dead_tuple_count from pgstattuple($1::regclass)`, table).
		Scan(&s.Heap, &s.Indexes, &s.TuplePct, &s.Dead, &s.FreePct, &s.Live, &s.DeadTup))
	rows, err := conn.Query(ctx, `select indexrelid::regclass::text, pg_relation_size(indexrelid) from pg_index
		where indrelid = $1::regclass`, table)
	require.NoError(t, err)
	s.PerIndex = map[string]int64{}
	for rows.Next() {
		var name string
		var size int64
		require.NoError(t, rows.Scan(&name, &size))
		s.PerIndex[name] = size
	}
	require.NoError(t, rows.Err())
	return s
}

func hotRunWorkerLoad(t *testing.T, conn *pgx.Conn, snapConn *pgx.Conn, w hotWorkerLoad) hotLoadResult {
	t.Helper()
	ctx := context.Background()
	repo := jobs.New(conn)
	owner := newUser(t, conn)
	params := make([]jobs.CreateParams, w.PerClaim)
	for i := range params {
		params[i] = jobs.CreateParams{
			OwnerID:   uuid.NullUUID{UUID: owner, Valid: true},
			SourceURL: videoURL,
			Params:    json.RawMessage(`{"start":12.5,"end":47,"format":"mp4","height":720}`),
		}
	}
	held := make([][]uuid.UUID, w.Workers)
	pct := map[uuid.UUID]int{}
	var res hotLoadResult
	prev := hotCounters(t, conn, "jobs")
	phase := func(into *hotKindCounts) {
		cur := hotCounters(t, conn, "jobs")
		into.add(cur.minus(prev))
		prev = cur
	}
	snapOpen := false
	round := 0
	for tick := 0; tick < w.Ticks+w.Workers; tick++ {
		if w.HoldSnapshot > 0 && tick%w.HoldSnapshot == 0 {
			if snapOpen {
				_, err := snapConn.Exec(ctx, "commit")
				require.NoError(t, err)
			}
			_, err := snapConn.Exec(ctx, "begin isolation level repeatable read")
			require.NoError(t, err)
			_, err = snapConn.Exec(ctx, "select count(*) from api_keys")
			require.NoError(t, err)
			snapOpen = true
		}
		wk := tick % w.Workers
		worker := fmt.Sprintf("worker-%d", wk)
		if len(held[wk]) > 0 {
			done := make([]jobs.Completion, len(held[wk]))
			for i, id := range held[wk] {
				done[i] = jobs.Completion{ID: id, ResultKeys: []string{id.String() + "/clip.mp4"}}
				delete(pct, id)
			}
			ids, err := repo.CompleteMany(ctx, worker, done, 7*24*time.Hour)
			require.NoError(t, err)
			require.Len(t, ids, len(done))
			held[wk] = nil
			phase(&res.Complete)
		}
		if tick < w.Ticks { // the last Workers ticks only drain
			_, err := repo.CreateBatch(ctx, params)
			require.NoError(t, err)
			got, err := repo.Claim(ctx, worker, w.PerClaim)
			require.NoError(t, err)
			require.Len(t, got, w.PerClaim)
			for _, j := range got {
				held[wk] = append(held[wk], j.ID)
			}
			phase(&res.Claim)
		}
		for b := 0; b < w.BeatsPerTick; b++ {
			round++
			progress := w.ProgressEvery > 0 && round%w.ProgressEvery == 0
			for i, ids := range held {
				for _, id := range ids {
					var err error
					if progress {
						pct[id] = min(pct[id]+7, 99)
						_, err = repo.Progress(ctx, id, fmt.Sprintf("worker-%d", i), pct[id])
					} else {
						_, err = repo.Heartbeat(ctx, id, fmt.Sprintf("worker-%d", i))
					}
					require.NoError(t, err)
				}
			}
			if progress {
				phase(&res.Progress)
			} else {
				phase(&res.Beat)
			}
		}
	}
	if snapOpen {
		_, err := snapConn.Exec(ctx, "commit")
		require.NoError(t, err)
	}
	res.Sizes = hotSizesOf(t, conn, "jobs")
	return res
}

func hotKiB(b int64) string { return strconv.FormatInt(b/1024, 10) }

// Measurement 1: which updates of jobs are HOT, and what fillfactor buys.
func TestMeasureJobsFillfactor(t *testing.T) {
	hotRequireMeasure(t)
	load := hotWorkerLoad{Workers: 8, PerClaim: 4, Ticks: 1000, BeatsPerTick: 2, ProgressEvery: 4}
	if v := os.Getenv("CLIPPER_MEASURE_TICKS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		load.Ticks = n
	}
	type row struct {
		ff   int
		hold int
		res  hotLoadResult
	}
	var rows []row
	for _, hold := range []int{0, 2, 8} {
		for _, ff := range []int{100, 90, 80, 70} {
			conn, _ := hotMeasureConn(t, fmt.Sprintf("fillfactor = %d, autovacuum_enabled = off", ff), "autovacuum_enabled = off")
			var snap *pgx.Conn
			if hold > 0 {
				snap = hotConnectLike(t, conn)
			}
			l := load
			l.HoldSnapshot = hold
			rows = append(rows, row{ff, hold, hotRunWorkerLoad(t, conn, snap, l)})
			r := rows[len(rows)-1]
			t.Logf("ff=%d hold=%d claim=%s beat=%s progress=%s complete=%s heap=%s KiB idx=%s KiB",
				ff, hold, r.res.Claim, r.res.Beat, r.res.Progress, r.res.Complete, hotKiB(r.res.Sizes.Heap), hotKiB(r.res.Sizes.Indexes))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nworkload: %d workers x %d jobs, %d jobs, %d beats per job (1 in %d a progress report), autovacuum off\n",
		load.Workers, load.PerClaim, load.Ticks*load.PerClaim, load.Workers*load.BeatsPerTick, load.ProgressEvery)
	fmt.Fprintf(&b, "| fillfactor | xmin held | claims HOT | heartbeats HOT | progress HOT | completes HOT | heap KiB | indexes KiB | status idx KiB | pkey KiB | free %% | dead tuples |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		held := "no"
		if r.hold > 0 {
			held = fmt.Sprintf("%d ticks", r.hold)
		}
		s := r.res.Sizes
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %d |\n", r.ff, held,
			r.res.Claim, r.res.Beat, r.res.Progress, r.res.Complete, hotKiB(s.Heap), hotKiB(s.Indexes),
			hotKiB(s.PerIndex["jobs_status_created_at_idx"]), hotKiB(s.PerIndex["jobs_pkey"]), s.FreePct, s.DeadTup)
	}
	t.Log(b.String())
}

// Measurement 1b: the same beats from concurrent workers, each on its own
// connection with no pause between statements: other workers' statements
// are always in flight, so the newest dead versions are often still
// visible to someone when a page is pruned.
func TestMeasureJobsFillfactorConcurrent(t *testing.T) {
	hotRequireMeasure(t)
	const workers, perClaim, beats, total = 8, 4, 16, 4000
	var b strings.Builder
	fmt.Fprintf(&b, "\nconcurrent: %d workers on their own connections, %d jobs per claim, %d beats per job (1 in 4 progress), %d jobs\n",
		workers, perClaim, beats, total)
	fmt.Fprintf(&b, "| fillfactor | updates | HOT | beats HOT (claims and completes never are) | heap KiB | indexes KiB |\n|---|---|---|---|---|---|\n")
	for _, ff := range []int{100, 90, 80, 70} {
		ctx := context.Background()
		conn, _ := hotMeasureConn(t, fmt.Sprintf("fillfactor = %d, autovacuum_enabled = off", ff), "autovacuum_enabled = off")
		repo := jobs.New(conn)
		batch := make([]jobs.CreateParams, 1000)
		for i := range batch {
			batch[i] = jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":12.5,"end":47,"format":"mp4","height":720}`)}
		}
		for i := 0; i < total/len(batch); i++ {
			_, err := repo.CreateBatch(ctx, batch)
			require.NoError(t, err)
		}
		start := hotCounters(t, conn, "jobs")
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wc := hotConnectLike(t, conn)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := jobs.New(wc)
				name := fmt.Sprintf("worker-%d", w)
				for {
					got, err := r.Claim(ctx, name, perClaim)
					if err != nil || len(got) == 0 {
						errs <- err
						return
					}
					for beat := 1; beat <= beats; beat++ {
						for _, j := range got {
							if beat%4 == 0 {
								_, err = r.Progress(ctx, j.ID, name, beat*5)
							} else {
								_, err = r.Heartbeat(ctx, j.ID, name)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}
					fin := make([]jobs.Completion, len(got))
					for i, j := range got {
						fin[i] = jobs.Completion{ID: j.ID}
					}
					if _, err := r.CompleteMany(ctx, name, fin, time.Hour); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		// The workers' connections stay open: wait for their idle flush.
		want := int64(total * (beats + 2))
		var c hotTableCounters
		require.Eventually(t, func() bool {
			c = hotCounters(t, conn, "jobs").minus(start)
			return c.Upd >= want
		}, 30*time.Second, 200*time.Millisecond)
		s := hotSizesOf(t, conn, "jobs")
		fmt.Fprintf(&b, "| %d | %d | %d | %.1f%% | %s | %s |\n", ff, c.Upd, c.HotUpd,
			100*float64(c.HotUpd)/float64(total*beats), hotKiB(s.Heap), hotKiB(s.Indexes))
	}
	t.Log(b.String())
}

// hotConnectLike opens a second connection to conn's database.
func hotConnectLike(t *testing.T, conn *pgx.Conn) *pgx.Conn {
	t.Helper()
	c, err := pgx.ConnectConfig(context.Background(), conn.Config().Copy())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

var (
	hotBuffersRe = regexp.MustCompile(`Buffers: shared hit=(\d+)(?: read=(\d+))?`)
	hotBypassRe  = regexp.MustCompile(`index scan (bypassed|needed|not needed)[^\n]*`)
	hotVacBufRe  = regexp.MustCompile(`buffer usage: (\d+) hits, (\d+) misses, (\d+) dirtied`)
)

// hotClaimBuffers runs the claim query of ClaimJobs for n jobs under
// EXPLAIN (ANALYZE, BUFFERS) and rolls it back; it returns the shared
// buffers the whole statement touched.
func hotClaimBuffers(t *testing.T, conn *pgx.Conn, n int) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `explain (analyze, buffers, costs off, timing off)
		with claimable as materialized (
		  select id from jobs
		  where status = 'queued' and run_at <= now() and attempts < max_attempts
		    and (expires_at is null or expires_at > now())
		  order by created_at, id
		  limit $1
		  for update skip locked)
		update jobs set status = 'processing', attempts = attempts + 1, worker_id = 'explain',
		  claimed_at = now(), last_heartbeat_at = now(), progress = 0
		where id in (select id from claimable)
		returning *`, n)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	// The first Buffers line is the top node's total, triggers excluded.
	for _, l := range lines {
		if m := hotBuffersRe.FindStringSubmatch(l); m != nil {
			hit, _ := strconv.ParseInt(m[1], 10, 64)
			read, _ := strconv.ParseInt(m[2], 10, 64)
			return hit + read
		}
	}
	t.Fatalf("no buffer counts in plan:\n%s", strings.Join(lines, "\n"))
	return 0
}

// hotSelectClaimBuffers is the claim's locking scan alone, on the queued
// range of jobs_status_created_at_idx.
func hotSelectClaimBuffers(t *testing.T, conn *pgx.Conn, n int) (int64, string) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `explain (analyze, buffers, costs off, timing off)
		  select id from jobs
		  where status = 'queued' and run_at <= now() and attempts < max_attempts
		    and (expires_at is null or expires_at > now())
		  order by created_at, id
		  limit $1
		  for update skip locked`, n)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, l := range lines {
		if m := hotBuffersRe.FindStringSubmatch(l); m != nil {
			hit, _ := strconv.ParseInt(m[1], 10, 64)
			read, _ := strconv.ParseInt(m[2], 10, 64)
			return hit + read, strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no buffer counts in plan:\n%s", strings.Join(lines, "\n"))
	return 0, ""
}

// hotVacuumVerbose runs VACUUM (VERBOSE) on table and returns whether the
// index pass ran and the cost-based delay accounting of the run: page
// hits, misses and dirtied pages, weighted 1/2/20 by PostgreSQL 15's
// vacuum_cost_page_* defaults.
func hotVacuumVerbose(t *testing.T, conn *pgx.Conn, n *hotNotices, table string) (index string, cost int64, out string) {
	t.Helper()
	n.take()
	_, err := conn.Exec(context.Background(), "vacuum (verbose) "+table)
	require.NoError(t, err)
	out = n.take()
	if m := hotBypassRe.FindStringSubmatch(out); m != nil {
		index = m[1]
	}
	for _, m := range hotVacBufRe.FindAllStringSubmatch(out, -1) {
		h, _ := strconv.ParseInt(m[1], 10, 64)
		mi, _ := strconv.ParseInt(m[2], 10, 64)
		d, _ := strconv.ParseInt(m[3], 10, 64)
		cost += h + 2*mi + 20*d
	}
	return index, cost, out
}

// hotRetained fills jobs with n finished jobs, as a week of retention
// leaves them (created, claimed, completed), then vacuums and analyzes.
func hotRetained(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	ctx := context.Background()
	repo := jobs.New(conn)
	owner := newUser(t, conn)
	batch := make([]jobs.CreateParams, 10000)
	for i := range batch {
		batch[i] = jobs.CreateParams{
			OwnerID:   uuid.NullUUID{UUID: owner, Valid: true},
			SourceURL: videoURL,
			Params:    json.RawMessage(`{"start":12.5,"end":47,"format":"mp4","height":720}`),
		}
	}
	for left := n; left > 0; left -= len(batch) {
		k := min(left, len(batch))
		_, err := repo.CreateBatch(ctx, batch[:k])
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `update jobs set status = 'processing', attempts = 1, worker_id = 'old',
			claimed_at = now(), last_heartbeat_at = now() where status = 'queued'`)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `update jobs set status = 'done', progress = 100,
			result_keys = array[id || '/clip.mp4'], expires_at = now() + interval '7 days'
			where status = 'processing'`)
		require.NoError(t, err)
	}
	// Flush this session's counts first, so that they do not land on top
	// of the dead-tuple count the VACUUM reports.
	hotCounters(t, conn, "jobs")
	_, err := conn.Exec(ctx, "vacuum (freeze, analyze) jobs")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "vacuum (freeze, analyze) job_events")
	require.NoError(t, err)
}

// hotLifecycle runs k jobs through create, claim and complete, in batches of
// 100, keeping queue jobs queued ahead of them (a standing backlog).
func hotLifecycle(t *testing.T, conn *pgx.Conn, k int) {
	t.Helper()
	ctx := context.Background()
	repo := jobs.New(conn)
	batch := make([]jobs.CreateParams, 100)
	for i := range batch {
		batch[i] = jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":12.5,"end":47}`)}
	}
	for done := 0; done < k; done += len(batch) {
		_, err := repo.CreateBatch(ctx, batch)
		require.NoError(t, err)
		got, err := repo.Claim(ctx, "w", len(batch))
		require.NoError(t, err)
		fin := make([]jobs.Completion, len(got))
		for i, j := range got {
			fin[i] = jobs.Completion{ID: j.ID}
		}
		_, err = repo.CompleteMany(ctx, "w", fin, 7*24*time.Hour)
		require.NoError(t, err)
	}
}

// Measurement 2: what dead index entries cost the claim, and what VACUUM
// does with them, on a table holding a week of finished jobs.
func TestMeasureJobsDeadEntries(t *testing.T) {
	hotRequireMeasure(t)
	ctx := context.Background()
	retainedJobs := 100_000
	if v := os.Getenv("CLIPPER_MEASURE_RETAINED"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		retainedJobs = n
	}
	for _, opts := range []string{"autovacuum_enabled = off", "autovacuum_enabled = off, vacuum_index_cleanup = on"} {
		conn, n := hotMeasureConn(t, opts, "autovacuum_enabled = off")
		hotRetained(t, conn, retainedJobs)
		// A standing backlog of 1000 queued jobs.
		repo := jobs.New(conn)
		backlog := make([]jobs.CreateParams, 1000)
		for i := range backlog {
			backlog[i] = jobs.CreateParams{SourceURL: videoURL}
		}
		_, err := repo.CreateBatch(ctx, backlog)
		require.NoError(t, err)
		var reltuples float64
		var relpages int64
		require.NoError(t, conn.QueryRow(ctx, `select reltuples, relpages from pg_class where oid = 'jobs'::regclass`).Scan(&reltuples, &relpages))

		var b strings.Builder
		fmt.Fprintf(&b, "\njobs options: %s; %d retained jobs (reltuples %.0f, %d pages); backlog 1000 queued\n", opts, retainedJobs, reltuples, relpages)
		fmt.Fprintf(&b, "autovacuum trigger (50 + s*reltuples dead): s=0.2 -> %.0f, s=0.05 -> %.0f, s=0.02 -> %.0f, s=0.01 -> %.0f\n",
			50+0.2*reltuples, 50+0.05*reltuples, 50+0.02*reltuples, 50+0.01*reltuples)
		fmt.Fprintf(&b, "| jobs processed since vacuum | n_dead_tup | claim 10 (buffers) | claim select (buffers) | status idx KiB | VACUUM index pass | vacuum cost units | claim 10 after (buffers) |\n|---|---|---|---|---|---|---|---|\n")
		total := 0
		for _, k := range []int{0, 1000, 2000, 5000, 10000, 20000, 40000} {
			hotLifecycle(t, conn, k)
			total += k
			c := hotCounters(t, conn, "jobs")
			before := hotClaimBuffers(t, conn, 10)
			sel, plan := hotSelectClaimBuffers(t, conn, 10)
			s := hotSizesOf(t, conn, "jobs")
			idx, cost, out := hotVacuumVerbose(t, conn, n, "jobs")
			after := hotClaimBuffers(t, conn, 10)
			fmt.Fprintf(&b, "| %d | %d | %d | %d | %s | %s | %d | %d |\n", k, c.Dead, before, sel,
				hotKiB(s.PerIndex["jobs_status_created_at_idx"]), idx, cost, after)
			if k == 40000 {
				t.Logf("plan before vacuum at %d:\n%s\nvacuum:\n%s", k, plan, out)
			}
		}
		t.Log(b.String())
	}
}

// Measurement 2b: autovacuum's trigger emulated at a 2% scale factor:
// cycles of (jobs that make 2% of the table dead, VACUUM). With
// vacuum_index_cleanup at its default (auto), a VACUUM that finds dead
// items on fewer than 2% of the heap's pages skips the index pass, so the
// claim path's dead index entries stay; with it on, every run removes them.
func TestMeasureJobsVacuumBypass(t *testing.T) {
	hotRequireMeasure(t)
	ctx := context.Background()
	retainedJobs := 100_000
	if v := os.Getenv("CLIPPER_MEASURE_RETAINED"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		retainedJobs = n
	}
	perCycle := (50 + retainedJobs*2/100) / 2 / 100 * 100 // 2 dead tuples per job
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d retained jobs, backlog 1000 queued; each cycle processes %d jobs (about 2%% of the table dead), then VACUUM\n",
		retainedJobs, perCycle)
	fmt.Fprintf(&b, "| vacuum_index_cleanup | cycle | index pass | claim select before (buffers) | after (buffers) | vacuum cost units | throttle sleep at 2 ms / 200 units |\n|---|---|---|---|---|---|---|\n")
	for _, opt := range []string{"auto", "on"} {
		conn, n := hotMeasureConn(t, "autovacuum_enabled = off, vacuum_index_cleanup = "+opt, "autovacuum_enabled = off")
		hotRetained(t, conn, retainedJobs)
		backlog := make([]jobs.CreateParams, 1000)
		for i := range backlog {
			backlog[i] = jobs.CreateParams{SourceURL: videoURL}
		}
		_, err := jobs.New(conn).CreateBatch(ctx, backlog)
		require.NoError(t, err)
		for cycle := 1; cycle <= 12; cycle++ {
			hotLifecycle(t, conn, perCycle)
			// The first scan after the last claim visits the heap for that
			// claim's dead entries (and marks them killed); take the second.
			hotSelectClaimBuffers(t, conn, 10)
			before, _ := hotSelectClaimBuffers(t, conn, 10)
			idx, cost, _ := hotVacuumVerbose(t, conn, n, "jobs")
			after, _ := hotSelectClaimBuffers(t, conn, 10)
			fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %d | %d ms |\n", opt, cycle, idx, before, after, cost, cost/200*2)
		}
	}
	t.Log(b.String())
}

// Measurement 3: a rolling window of jobs and their events (create,
// claim, progress, log events, complete, cleanup of the oldest slot), with
// autovacuum emulated at each slot's end by its own trigger rules (dead
// tuples over threshold + scale*reltuples, or inserts since the last
// vacuum over 1000 + insert scale*reltuples), and a cleanup that pauses
// and then catches up in one burst. Reports job_events' heap size, the
// vacuums it took and their cost, and the heap fetches of the cleanup's
// index-only count of a batch's events.
func TestMeasureRollingRetention(t *testing.T) {
	hotRequireMeasure(t)
	ctx := context.Background()
	const (
		slots      = 60  // time slots simulated
		retention  = 15  // slots a finished job is kept
		perSlot    = 400 // jobs created per slot
		logsPerJob = 20  // log events a worker appends per job
		pauseAt    = 40  // cleanup pauses here ...
		pauseFor   = 5   // ... for this many slots, then catches up
		warmup     = 25  // steady state from here
	)
	type setting struct {
		name            string
		scale, insScale float64
	}
	settings := []setting{
		{"0.2 (default), insert 0.2 (default)", 0.2, 0.2},
		{"0.1, insert 0.2", 0.1, 0.2},
		{"0.05, insert 0.2", 0.05, 0.2},
		{"0.02, insert 0.2", 0.02, 0.2},
		{"0.05, insert 0.05", 0.05, 0.05},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nrolling window: %d slots of %d jobs (3 status + 2 progress + %d log events each), kept %d slots; cleanup paused slots %d-%d; steady state from slot %d\n",
		slots, perSlot, logsPerJob, retention, pauseAt, pauseAt+pauseFor-1, warmup)
	fmt.Fprintf(&b, "| job_events vacuum scale | vacuums | vacuum cost units (total) | live events (end) | max heap KiB, steady | max heap KiB, after burst | live data KiB (end) | cleanup count: events / heap fetches |\n|---|---|---|---|---|---|---|---|\n")
	for _, st := range settings {
		conn, n := hotMeasureConn(t, "autovacuum_enabled = off", "autovacuum_enabled = off")
		repo := jobs.New(conn)
		batch := make([]jobs.CreateParams, perSlot)
		for i := range batch {
			batch[i] = jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":12.5,"end":47,"format":"mp4"}`)}
		}
		slotJobs := make([][]uuid.UUID, slots)
		var vacuums int
		var vacCost, counted, heapFetches, maxSteady, maxBurst int64
		autovac := func(table string, scale, insScale float64) (bool, int64) {
			c := hotCounters(t, conn, table)
			var reltuples float64
			require.NoError(t, conn.QueryRow(ctx, `select greatest(reltuples, 0) from pg_class where oid = $1::regclass`, table).Scan(&reltuples))
			if float64(c.Dead) > 50+scale*reltuples || float64(c.InsSinceVacuum) > 1000+insScale*reltuples {
				_, cost, _ := hotVacuumVerbose(t, conn, n, table)
				_, err := conn.Exec(ctx, "analyze "+table)
				require.NoError(t, err)
				return true, cost
			}
			return false, 0
		}
		cleaned := 0 // slots deleted so far
		for slot := 0; slot < slots; slot++ {
			_, err := repo.CreateBatch(ctx, batch)
			require.NoError(t, err)
			got, err := repo.Claim(ctx, "w", perSlot)
			require.NoError(t, err)
			ids := make([]uuid.UUID, len(got))
			fin := make([]jobs.Completion, len(got))
			for i, j := range got {
				ids[i] = j.ID
				fin[i] = jobs.Completion{ID: j.ID, ResultKeys: []string{j.ID.String() + "/r"}}
			}
			slotJobs[slot] = ids
			_, err = conn.Exec(ctx, `insert into job_events (job_id, type, data)
				select j, 'log', jsonb_build_object('line', 'frame ' || g || ' of 1200', 'stage', 'transcode')
				from unnest($1::uuid[]) j, generate_series(1, $2) g`, ids, logsPerJob)
			require.NoError(t, err)
			for p := 30; p <= 60; p += 30 {
				_, err = conn.Exec(ctx, `update jobs set progress = $2 where id = any($1)`, ids, p)
				require.NoError(t, err)
			}
			_, err = repo.CompleteMany(ctx, "w", fin, 7*24*time.Hour)
			require.NoError(t, err)
			// Cleanup: delete slots older than retention, unless paused.
			paused := slot >= pauseAt && slot < pauseAt+pauseFor
			for !paused && cleaned <= slot-retention {
				old := slotJobs[cleaned]
				// A count of the batch's events (as the cleanup once counted them).
				rows, err := conn.Query(ctx, `explain (analyze, costs off, timing off, summary off)
					select count(*) from job_events where job_id = any($1::uuid[])`, old)
				require.NoError(t, err)
				plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				for _, l := range plan {
					if i := strings.Index(l, "Heap Fetches: "); i >= 0 {
						v, _ := strconv.ParseInt(strings.TrimSpace(l[i+len("Heap Fetches: "):]), 10, 64)
						heapFetches += v
					}
				}
				var k int64
				require.NoError(t, conn.QueryRow(ctx, `select count(*) from job_events where job_id = any($1::uuid[])`, old).Scan(&k))
				counted += k
				_, err = conn.Exec(ctx, `delete from jobs where id = any($1::uuid[])`, old)
				require.NoError(t, err)
				cleaned++
			}
			autovac("jobs", 0.02, 0.2)
			if ok, cost := autovac("job_events", st.scale, st.insScale); ok {
				vacuums++
				vacCost += cost
			}
			var heap int64
			require.NoError(t, conn.QueryRow(ctx, `select pg_relation_size('job_events')`).Scan(&heap))
			switch {
			case slot >= warmup && slot < pauseAt:
				maxSteady = max(maxSteady, heap)
			case slot >= pauseAt:
				maxBurst = max(maxBurst, heap)
			}
		}
		var live, liveBytes int64
		require.NoError(t, conn.QueryRow(ctx, `select tuple_count, tuple_len from pgstattuple('job_events')`).Scan(&live, &liveBytes))
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %s | %d / %d |\n", st.name, vacuums, vacCost, live,
			hotKiB(maxSteady), hotKiB(maxBurst), hotKiB(liveBytes), counted, heapFetches)
	}
	t.Log(b.String())
}

// Measurement 4: the real autovacuum, on a cluster of its own that looks
// for work every second, with the migration's settings and with the
// defaults: jobs processed in steps of 500 on top of 50k retained jobs,
// sampling dead tuples, autovacuum runs and the claim scan after each
// step, and noting whether an autovacuum worker was running ANALYZE in
// the database at the time. This one depends on timing (steps come much
// faster than in production, so autovacuum lags); it shows that autovacuum
// takes the settings, and what an ANALYZE in progress does to the claim:
// its snapshot holds back the xmin horizon, so the dead 'queued' entries
// of jobs claimed meanwhile cannot be marked dead in the index and every
// claim scan visits their heap rows again.
func TestMeasureRealAutovacuum(t *testing.T) {
	hotRequireMeasure(t)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "clipper-hot-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cl, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Fast: true,
		Settings: map[string]string{"autovacuum_naptime": "1s"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Stop(context.Background()) })
	admin, err := pgx.Connect(ctx, cl.DSN("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(context.Background()) })

	const retainedJobs, step, steps = 50_000, 500, 40
	var b strings.Builder
	fmt.Fprintf(&b, "\nreal autovacuum (naptime 1s): %d retained jobs, %d steps of %d jobs, backlog 1000 queued\n", retainedJobs, steps, step)
	fmt.Fprintf(&b, "| jobs settings | autovacuum runs on jobs | max n_dead_tup seen | claim select buffers, no ANALYZE running: steps, mean | ANALYZE running: steps, mean, max |\n|---|---|---|---|---|\n")
	for i, settings := range []string{"migration (0.02, index cleanup on)", "defaults"} {
		name := fmt.Sprintf("autovac_%d", i)
		_, err := admin.Exec(ctx, "create database "+name)
		require.NoError(t, err)
		dsn := cl.DSN(name)
		_, err = migrate.Up(ctx, dsn, nil)
		require.NoError(t, err)
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		if settings == "defaults" {
			_, err = conn.Exec(ctx, "alter table jobs reset (autovacuum_vacuum_scale_factor, vacuum_index_cleanup)")
			require.NoError(t, err)
		}
		hotRetained(t, conn, retainedJobs)
		backlog := make([]jobs.CreateParams, 1000)
		for i := range backlog {
			backlog[i] = jobs.CreateParams{SourceURL: videoURL}
		}
		_, err = jobs.New(conn).CreateBatch(ctx, backlog)
		require.NoError(t, err)
		autovacuum := func() (runs int64, activity string) {
			require.NoError(t, conn.QueryRow(ctx, `select autovacuum_count,
				  coalesce((select string_agg(query, '; ') from pg_stat_activity
				    where backend_type = 'autovacuum worker' and datname = current_database()), '')
				from pg_stat_user_tables where relid = 'jobs'::regclass`).Scan(&runs, &activity))
			return runs, activity
		}
		runs0, _ := autovacuum()
		var maxDead, maxAnalyze int64
		var quiet, analyzing [2]int64 // steps, buffers
		for s := 0; s < steps; s++ {
			hotLifecycle(t, conn, step)
			c := hotCounters(t, conn, "jobs")
			maxDead = max(maxDead, c.Dead)
			_, before := autovacuum()
			hotSelectClaimBuffers(t, conn, 10)
			buf, _ := hotSelectClaimBuffers(t, conn, 10)
			runs, after := autovacuum()
			if strings.Contains(before+after, "ANALYZE") {
				analyzing[0]++
				analyzing[1] += buf
				maxAnalyze = max(maxAnalyze, buf)
			} else {
				quiet[0]++
				quiet[1] += buf
			}
			if os.Getenv("CLIPPER_MEASURE_VERBOSE") != "" {
				t.Logf("%s step %d: dead %d, runs %d, claim %d buffers, autovacuum: %s", settings, s, c.Dead, runs-runs0, buf, after)
			}
		}
		runs, _ := autovacuum()
		mean := func(a [2]int64) int64 {
			if a[0] == 0 {
				return 0
			}
			return a[1] / a[0]
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d, %d | %d, %d, %d |\n", settings, runs-runs0, maxDead,
			quiet[0], mean(quiet), analyzing[0], mean(analyzing), maxAnalyze)
	}
	t.Log(b.String())
}
