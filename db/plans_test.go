package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/rls"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Volumes large enough for the planner to prefer an index only where one
// truly serves the query.
const (
	numUsers   = 2000
	numAPIKeys = 50
	numJobs    = 200_000
	// Events per job that got past queued; queued jobs have one.
	eventsPerJob = 5
)

// The hot queries, read from db/queries by name so that the plans checked
// are those of the SQL the code runs, and the index each must use.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("loads 200k jobs and 1M events")
	}
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	start := time.Now()
	s := loadVolume(t, ctx, pool)
	t.Logf("loaded %d jobs and %d events in %s", s.jobs, s.events, time.Since(start).Round(time.Millisecond))
	queries := namedQueries(t)
	// RequeueStaleJobs selects from this function, whose one statement is
	// the hot path; a plan of the call would show only a Function Scan.
	queries["clipper_internal.requeue_stale_jobs"] = functionBody(t, ctx, pool,
		"clipper_internal.requeue_stale_jobs(interval, interval, integer)",
		map[string]string{"older_than": "interval", "retention": "interval", "max_rows": "integer"})

	cases := []struct {
		query   string
		variant string // names a second case of one query
		args    map[string]any
		index   string // the index the plan must use
		ordered bool   // the index gives the order: no Sort node
	}{
		{"GetJob", "", map[string]any{"$1": s.jobID}, "jobs_pkey", false},
		{"GetJobByIdempotencyKey", "", map[string]any{"scope": s.ownerID, "idempotency_key": s.idempotencyKey},
			"jobs_idempotency_key_idx", false},
		{"ListJobsByStatus", "Queued", map[string]any{"status": "queued", "before_created_at": s.now,
			"before_id": maxUUID, "max_rows": 50}, "jobs_status_created_at_idx", true},
		// The common status, one page deep in the keyset.
		{"ListJobsByStatus", "DoneSecondPage", map[string]any{"status": "done", "before_created_at": s.midCreatedAt,
			"before_id": s.midID, "max_rows": 50}, "jobs_status_created_at_idx", true},
		{"ListJobsByOwner", "", map[string]any{"owner_id": s.ownerID, "before_created_at": s.now,
			"before_id": maxUUID, "max_rows": 50}, "jobs_owner_created_at_idx", true},
		{"ListJobsByAPIKey", "", map[string]any{"api_key_id": s.apiKeyID, "before_created_at": s.now,
			"before_id": maxUUID, "max_rows": 50}, "jobs_api_key_created_at_idx", true},
		{"ClaimJobs", "", map[string]any{"max_rows": 10, "worker_id": "worker-1"}, "jobs_status_created_at_idx", true},
		{"clipper_internal.requeue_stale_jobs", "", map[string]any{"older_than": "2 minutes", "max_rows": 1000,
			"retention": "7 days"}, "jobs_status_created_at_idx", false},
		{"LockExpiredJobs", "", map[string]any{"max_rows": 1000}, "jobs_expires_at_idx", true},
		{"ListJobEvents", "", map[string]any{"job_id": s.jobID, "after_ts": "-infinity", "after_id": 0,
			"max_rows": 1000}, "job_events_pkey", true},
		{"GetJobEventPosition", "", map[string]any{"job_id": s.jobID, "id": s.eventID}, "job_events_pkey", false},
		{"LockJobForEvents", "", map[string]any{"job_id": s.jobID}, "jobs_pkey", false},
		{"HeartbeatJob", "", map[string]any{"id": s.jobID, "worker_id": "worker-1"}, "jobs_pkey", false},
		{"CancelJob", "", map[string]any{"id": s.jobID, "retention_us": 604_800_000_000}, "jobs_pkey", false},
		{"DeleteExpiredJobs", "", map[string]any{"max_rows": 1000}, "jobs_expires_at_idx", true},
		{"SourcesInUse", "", map[string]any{"names": []string{"u/a.mp4", "u/b.mp4"}}, "jobs_source_object_idx", false},
	}
	for i, c := range cases {
		t.Run(c.query+c.variant, func(t *testing.T) {
			t.Parallel()
			sql, ok := queries[c.query]
			require.True(t, ok, "no query named %s in db/queries", c.query)
			// The first run of a prepared statement gets a plan for its
			// values; a statement pgx keeps in its cache may later get the
			// generic plan. Both must use the index.
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				plan := explainPrepared(t, ctx, pool, fmt.Sprintf("plan_%d", i), sql, c.args, mode)
				requirePlan(t, plan, c.index, c.ordered, c.query+" ("+mode+")")
			}
		})
	}

	// What a frontend sends through PostgREST, planned with the row-level
	// security policies in force.
	frontend := []struct {
		name, sql, index string
		ordered          bool
	}{
		{"FrontendOwnJobs", `select * from public.jobs order by created_at desc, id desc limit 50`,
			"jobs_owner_created_at_idx", true},
		// A user's jobs are few: a bitmap scan of them and a sort is as
		// good as an ordered scan, so only the index is required here.
		{"FrontendOwnJobsByStatus", `select * from public.jobs where status = 'done'
			order by created_at desc, id desc limit 50`, "jobs_owner_created_at_idx", false},
		{"FrontendJobEvents", `select * from public.job_events where job_id = '` + s.ownerJobID + `'
			order by ts, id`, "job_events_pkey", true},
	}
	for _, c := range frontend {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck
			var raw string
			err = rls.Do(ctx, tx, rls.Request{Role: rls.Authenticated, Claims: rls.UserClaims(s.ownerID),
				Method: "GET", Path: "/"}, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `explain (format json) `+c.sql).Scan(&raw)
			})
			require.NoError(t, err)
			requirePlan(t, parsePlan(t, raw), c.index, c.ordered, c.name)
		})
	}
}

const maxUUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"

// sample holds values the queries are planned with, taken from the data.
type sample struct {
	jobs, events   int64
	now            time.Time
	jobID          string // a done job with its events
	eventID        int64
	ownerID        string
	ownerJobID     string
	apiKeyID       string
	idempotencyKey string
	midCreatedAt   time.Time
	midID          string
}

// loadVolume fills jobs and job_events inside the server. Triggers are
// off for the load (session_replication_role = replica; the rows are made
// consistent by hand), and the two tables' indexes are dropped first and
// rebuilt from their own definitions afterwards, which is many times
// faster than maintaining them row by row. Events go in in time order, as
// they arrive in production, so their heap order is not job order.
func loadVolume(t *testing.T, ctx context.Context, pool *pgxpool.Pool) sample {
	t.Helper()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		start := time.Now()
		_, err := conn.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
		if d := time.Since(start); d > time.Second {
			t.Logf("%s: %s", strings.Fields(sql)[0]+" "+strings.Fields(sql)[1]+" "+strings.Fields(sql)[2], d.Round(time.Millisecond))
		}
	}

	type index struct{ name, table, def, constraint string }
	rows, err := conn.Query(ctx, `
		select i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid),
		       coalesce(pg_get_constraintdef(c.oid), '')
		from pg_index i
		left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = i.indrelid and c.contype in ('p', 'u')
		where i.indrelid in ('public.jobs'::regclass, 'public.job_events'::regclass)
		  -- Keys that foreign keys point at stay.
		  and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = i.indexrelid)
		order by 1`)
	require.NoError(t, err)
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		err := r.Scan(&ix.name, &ix.table, &ix.def, &ix.constraint)
		return ix, err
	})
	require.NoError(t, err)
	require.NotEmpty(t, indexes)
	for _, ix := range indexes {
		if ix.constraint != "" {
			exec(fmt.Sprintf("alter table %s drop constraint %s", ix.table, ix.name))
		} else {
			exec("drop index " + ix.name)
		}
	}

	exec(`set session_replication_role = replica`)
	exec(`set maintenance_work_mem = '256MB'`)
	exec(`insert into auth.users (id, email)
		select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'user' || i || '@example.com'
		from generate_series(1, $1::int) i`, numUsers)
	exec(`insert into public.api_keys (id, lookup_id, hash, name)
		select ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, 'key' || lpad(i::text, 8, '0'),
		       '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'key ' || i
		from generate_series(1, $1::int) i`, numAPIKeys)
	// One job every 3 s over about a week: nine in ten belong to a user,
	// the rest to an API key. 1% are in flight (the newest), the rest
	// finished; finished jobs expire 3 days after finishing, so about half
	// of them are expired.
	exec(`insert into public.jobs (id, owner_id, api_key_id, source_type, source_url, params, status, attempts,
		  worker_id, claimed_at, last_heartbeat_at, started_at, finished_at, progress, result_keys,
		  error_code, error_message, idempotency_key, run_at, created_at, updated_at, expires_at)
		select md5('job' || i)::uuid,
		  case when i % 10 <> 0 then ('00000000-0000-4000-8000-' || lpad(to_hex(i % $2::int + 1), 12, '0'))::uuid end,
		  case when i % 10 = 0 then ('00000000-0000-4000-9000-' || lpad(to_hex(i % $3::int + 1), 12, '0'))::uuid end,
		  'youtube', 'https://youtu.be/v' || i, '{"start": 0, "end": 30}', st,
		  case when st = 'queued' then 0 else 1 end,
		  case when st in ('processing', 'done', 'failed') then 'worker-' || (i % 16) end,
		  case when st <> 'queued' then c + interval '5 s' end,
		  case when st <> 'queued' then c + interval '60 s' end,
		  case when st <> 'queued' then c + interval '5 s' end,
		  case when st in ('done', 'failed', 'canceled') then c + interval '90 s' end,
		  case when st = 'done' then 100 when st = 'processing' then 40 else 0 end,
		  case when st = 'done' then array[md5('job' || i)::uuid || '/clip.mp4'] else '{}' end,
		  case when st = 'failed' then 'ffmpeg_failed' end,
		  case when st = 'failed' then 'exit status 1' end,
		  'idem-' || i, c, c, c + interval '90 s',
		  case when st in ('done', 'failed', 'canceled') then c + interval '90 s' + interval '3 days' end
		from generate_series(1, $1::int) i,
		  lateral (select now() - ($1::int - i) * interval '3 s' as c) t,
		  lateral (select (case when i > $1::int * 0.99 and i % 2 = 0 then 'queued'
		                        when i > $1::int * 0.99 then 'processing'
		                        when i % 20 = 0 then 'failed'
		                        when i % 33 = 0 then 'canceled'
		                        else 'done' end)::public.job_status as st) s`,
		numJobs, numUsers, numAPIKeys)
	// The lateral reference keeps jobs the outer side: rows go in job by
	// job, in creation (time) order.
	exec(`insert into public.job_events (job_id, ts, type, data)
		select j.id, j.created_at + g * interval '10 ms',
		  case when g in (3, 4) then 'progress' else 'status' end,
		  case g when 1 then '{"to": "queued"}'::jsonb
		         when 2 then '{"from": "queued", "to": "processing"}'
		         when 3 then '{"progress": 50}'
		         when 4 then '{"progress": 100}'
		         else jsonb_build_object('from', 'processing', 'to', j.status) end
		from public.jobs j
		cross join lateral generate_series(1, case when j.status = 'queued' then 1 else $1::int end) g`,
		eventsPerJob)
	exec(`reset session_replication_role`)

	for _, ix := range indexes {
		if ix.constraint != "" {
			exec(fmt.Sprintf("alter table %s add constraint %s %s", ix.table, ix.name, ix.constraint))
		} else {
			exec(ix.def)
		}
	}
	// The rebuilt indexes are the migrations' own.
	for _, ix := range indexes {
		var def string
		require.NoError(t, conn.QueryRow(ctx, `select pg_get_indexdef($1::regclass)`, ix.name).Scan(&def))
		require.Equal(t, ix.def, def)
	}
	exec(`vacuum (analyze) auth.users, public.api_keys, public.jobs, public.job_events`)

	var s sample
	require.NoError(t, conn.QueryRow(ctx, `select (select count(*) from public.jobs), (select count(*) from public.job_events), now()`).
		Scan(&s.jobs, &s.events, &s.now))
	require.NoError(t, conn.QueryRow(ctx, `
		select j.id::text, j.owner_id::text, j.idempotency_key, (select max(e.id) from public.job_events e where e.job_id = j.id)
		from public.jobs j where j.status = 'done' and j.owner_id is not null
		order by j.created_at desc limit 1`).Scan(&s.jobID, &s.ownerID, &s.idempotencyKey, &s.eventID))
	s.ownerJobID = s.jobID
	require.NoError(t, conn.QueryRow(ctx, `select api_key_id::text from public.jobs where api_key_id is not null limit 1`).
		Scan(&s.apiKeyID))
	require.NoError(t, conn.QueryRow(ctx, `select created_at, id::text from public.jobs where status = 'done'
		order by created_at desc, id desc offset 50 limit 1`).Scan(&s.midCreatedAt, &s.midID))
	return s
}

var nameLine = regexp.MustCompile(`(?m)^--\s*name:\s*(\w+)\s+:\w+.*$`)

// namedQueries reads every `-- name: X :kind` query in queries/*.sql.
func namedQueries(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("queries", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text := string(b)
		locs := nameLine.FindAllStringSubmatchIndex(text, -1)
		for i, loc := range locs {
			end := len(text)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			name := text[loc[2]:loc[3]]
			var body []string
			for _, line := range strings.Split(text[loc[1]:end], "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "--") {
					continue
				}
				body = append(body, line)
			}
			out[name] = strings.TrimSuffix(strings.TrimSpace(strings.Join(body, "\n")), ";")
		}
	}
	return out
}

// functionBody returns the body of a LANGUAGE sql function with its
// parameters written as typed sqlc parameters, ready for explainPrepared.
func functionBody(t *testing.T, ctx context.Context, pool *pgxpool.Pool, signature string, params map[string]string) string {
	t.Helper()
	var body string
	require.NoError(t, pool.QueryRow(ctx, "select prosrc from pg_proc where oid = $1::regprocedure", signature).Scan(&body))
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	param := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	return param.ReplaceAllStringFunc(strings.TrimSpace(body), func(name string) string {
		return "sqlc.arg(" + name + ")::" + params[name]
	})
}

var sqlcParam = regexp.MustCompile(`sqlc\.n?arg\(\s*'?(\w+)'?\s*\)|@(\w+)|\$(\d+)`)

// positional turns sqlc's named parameters into $n, numbered by first
// appearance as sqlc numbers them, and returns the names in that order
// ("$n" for a query that already uses positions).
func positional(sql string) (string, []string) {
	index := map[string]int{}
	var names []string
	out := sqlcParam.ReplaceAllStringFunc(sql, func(m string) string {
		sub := sqlcParam.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if sub[3] != "" {
			name = "$" + sub[3]
		}
		n, ok := index[name]
		if !ok {
			names = append(names, name)
			n = len(names)
			index[name] = n
		}
		return fmt.Sprintf("$%d", n)
	})
	return out, names
}

// explainPrepared prepares sql, then explains its execution with args
// under the given plan_cache_mode.
func explainPrepared(t *testing.T, ctx context.Context, pool *pgxpool.Pool, stmt, sql string,
	args map[string]any, mode string) planNode {
	t.Helper()
	text, names := positional(sql)
	values := make([]any, len(names))
	holders := make([]string, len(names))
	for i, name := range names {
		v, ok := args[name]
		require.True(t, ok, "the query takes parameter %s, which the test does not set", name)
		values[i] = v
		holders[i] = fmt.Sprintf("$%d", i+1)
	}

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "set plan_cache_mode = "+mode)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "prepare "+stmt+" as "+text)
	require.NoError(t, err, text)
	defer conn.Exec(ctx, "deallocate "+stmt) //nolint:errcheck

	explain := "explain (format json) execute " + stmt
	if len(holders) > 0 {
		explain += "(" + strings.Join(holders, ", ") + ")"
	}
	var raw string
	// Simple protocol: the values go in as literals and take the
	// prepared statement's parameter types.
	require.NoError(t, conn.QueryRow(ctx, explain, append([]any{pgx.QueryExecModeSimpleProtocol}, values...)...).Scan(&raw))
	return parsePlan(t, raw)
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

func parsePlan(t *testing.T, raw string) planNode {
	t.Helper()
	var doc []struct {
		Plan planNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &doc))
	require.Len(t, doc, 1)
	return doc[0].Plan
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// requirePlan checks that the plan uses index, scans jobs and job_events
// sequentially nowhere, and, when the index gives the order, sorts nothing.
func requirePlan(t *testing.T, plan planNode, index string, ordered bool, what string) {
	t.Helper()
	var used, seq, sorts []string
	plan.walk(func(n planNode) {
		if n.IndexName != "" {
			used = append(used, n.IndexName)
		}
		if n.NodeType == "Seq Scan" && (n.RelationName == "jobs" || n.RelationName == "job_events") {
			seq = append(seq, n.RelationName)
		}
		if n.NodeType == "Sort" || n.NodeType == "Incremental Sort" {
			sorts = append(sorts, n.NodeType)
		}
	})
	dump, _ := json.MarshalIndent(plan, "", " ")
	require.Contains(t, used, index, "%s: plan:\n%s", what, dump)
	require.Empty(t, seq, "%s: sequential scan; plan:\n%s", what, dump)
	if ordered {
		require.Empty(t, sorts, "%s: sorts; plan:\n%s", what, dump)
	}
}
