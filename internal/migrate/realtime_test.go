package migrate_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgtest"
)

// realtimeOnly are the objects the migrations create only where Supabase
// Realtime's objects exist (20261202140000_realtime_job_broadcast.sql).
var realtimeOnly = []string{"job_events_broadcast", "clipper_jobs_owner_receives"}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}

// realtimeDatabase is a database as Supabase has it before a project's
// migrations (the base plus Realtime's objects), then migrated.
func realtimeDatabase(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	dsn := emptyDatabase(t)
	conn := connect(t, dsn)
	_, err := bootstrap.Apply(ctx, conn)
	require.NoError(t, err)
	require.NoError(t, bootstrap.ApplyRealtime(ctx, conn))
	res, err := migrate.Up(ctx, dsn, nil)
	require.NoError(t, err)
	require.False(t, res.Bootstrapped)
	return conn
}

const (
	ownerA = "00000000-0000-4000-8000-0000000000a1"
	ownerB = "00000000-0000-4000-8000-0000000000b1"
)

type broadcast struct {
	Topic     string
	Event     string
	Private   bool
	Extension string
	Payload   map[string]any
}

// broadcasts lists what realtime.send left in realtime.messages, oldest first.
func broadcasts(t *testing.T, conn *pgx.Conn) []broadcast {
	t.Helper()
	rows, err := conn.Query(context.Background(), `select topic, event, private, extension, payload
		from realtime.messages order by inserted_at, payload ->> 'event_id', topic`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (broadcast, error) {
		var b broadcast
		var payload []byte
		err := r.Scan(&b.Topic, &b.Event, &b.Private, &b.Extension, &payload)
		if err == nil {
			err = json.Unmarshal(payload, &b.Payload)
		}
		return b, err
	})
	require.NoError(t, err)
	return out
}

// A job's status changes and progress land in realtime.messages as private
// Broadcast messages on its owner's topic, one per job and statement, with
// the job's state after the statement.
func TestRealtimeBroadcast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := realtimeDatabase(t)

	var trigger, policy int
	require.NoError(t, conn.QueryRow(ctx, `select
		(select count(*) from pg_trigger where tgname = 'job_events_broadcast' and tgrelid = 'public.job_events'::regclass),
		(select count(*) from pg_policies where schemaname = 'realtime' and policyname = 'clipper_jobs_owner_receives')`).
		Scan(&trigger, &policy))
	require.Equal(t, 1, trigger)
	require.Equal(t, 1, policy)

	// Replaying every file (the Supabase CLI after dbmate) recreates nothing.
	before := catalogSnapshot(t, conn, true)
	names, sqls := migrationFiles(t)
	for _, n := range names {
		applyLikeSupabaseCLI(t, conn, n, sqls[n])
	}
	requireSameSnapshot(t, before, catalogSnapshot(t, conn, true))

	_, err := conn.Exec(ctx, `insert into auth.users (id, email) values ($1, 'a@example.test'), ($2, 'b@example.test')`, ownerA, ownerB)
	require.NoError(t, err)
	var j1, j2 string
	require.NoError(t, conn.QueryRow(ctx, `insert into public.jobs (owner_id, source_type, source_url)
		values ($1, 'youtube', 'https://youtu.be/1') returning id`, ownerA).Scan(&j1))
	require.NoError(t, conn.QueryRow(ctx, `insert into public.jobs (owner_id, source_type, source_url)
		values ($1, 'youtube', 'https://youtu.be/2') returning id`, ownerA).Scan(&j2))
	// Jobs with no owner (an API key's) have nobody signed in to tell.
	_, err = conn.Exec(ctx, `insert into public.jobs (owner_id, source_type, source_url) values (null, 'youtube', 'https://youtu.be/3')`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `update public.jobs set status = 'processing', attempts = 1, worker_id = 'w1',
		claimed_at = now(), last_heartbeat_at = now() where id = $1`, j1)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `update public.jobs set progress = 40 where id = $1`, j1)
	require.NoError(t, err)
	// A heartbeat writes no event and sends nothing.
	_, err = conn.Exec(ctx, `update public.jobs set last_heartbeat_at = now() where id = $1`, j1)
	require.NoError(t, err)
	// One statement changing two jobs: one message per job.
	_, err = conn.Exec(ctx, `update public.jobs set status = 'canceled' where owner_id = $1 and status = 'queued'`, ownerA)
	require.NoError(t, err)

	lastEvent := func(job string) float64 {
		var id int64
		require.NoError(t, conn.QueryRow(ctx, `select max(id) from public.job_events where job_id = $1`, job).Scan(&id))
		return float64(id)
	}
	got := broadcasts(t, conn)
	topic := "clipper:jobs:" + ownerA
	var summary []string
	for _, b := range got {
		require.Equal(t, topic, b.Topic)
		require.Equal(t, "job", b.Event)
		require.True(t, b.Private)
		require.Equal(t, "broadcast", b.Extension)
		require.NotEmpty(t, b.Payload["id"], "realtime.send adds the message id")
		summary = append(summary, b.Payload["job_id"].(string)+" "+b.Payload["status"].(string)+" "+
			jsonNumber(b.Payload["progress"]))
	}
	require.Equal(t, []string{
		j1 + " queued 0",
		j2 + " queued 0",
		j1 + " processing 0",
		j1 + " processing 40",
		j2 + " canceled 0",
	}, summary)
	// The last message of each job names its latest event.
	require.Equal(t, lastEvent(j1), got[3].Payload["event_id"])
	require.Equal(t, lastEvent(j2), got[4].Payload["event_id"])
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Realtime decides who may join a private topic as its read authorization
// does (supabase/realtime lib/realtime/tenants/authorization.ex): in a
// transaction it inserts probe rows for the topic (one per extension),
// sets role, realtime.topic and the JWT claims (set_conn_config), selects
// the probes back under RLS, and rolls back. Only the owner sees the
// broadcast probe of 'clipper:jobs:<owner>'.
func TestRealtimeOnlyOwnerReceives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := realtimeDatabase(t)

	canRead := func(role, sub, topic string) map[string]bool {
		t.Helper()
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		probes := map[string]string{}
		for _, ext := range []string{"broadcast", "presence"} {
			var id string
			require.NoError(t, tx.QueryRow(ctx, `insert into realtime.messages (topic, extension) values ($1, $2) returning id`,
				topic, ext).Scan(&id))
			probes[ext] = id
		}
		claims := map[string]any{"role": role}
		if sub != "" {
			claims["sub"] = sub
		}
		cj, err := json.Marshal(claims)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `select set_config('role', $1, true), set_config('realtime.topic', $2, true),
			set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true),
			set_config('request.jwt.claim.role', $1, true), set_config('request.headers', '{}', true)`,
			role, topic, string(cj), sub)
		require.NoError(t, err)
		rows, err := tx.Query(ctx, `select id::text from realtime.messages where id = any($1::uuid[])`,
			[]string{probes["broadcast"], probes["presence"]})
		require.NoError(t, err)
		seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		out := map[string]bool{}
		for ext, id := range probes {
			out[ext] = slices.Contains(seen, id)
		}
		return out
	}

	topicA := "clipper:jobs:" + ownerA
	require.Equal(t, map[string]bool{"broadcast": true, "presence": false}, canRead("authenticated", ownerA, topicA))
	none := map[string]bool{"broadcast": false, "presence": false}
	require.Equal(t, none, canRead("authenticated", ownerB, topicA), "another user")
	require.Equal(t, none, canRead("anon", "", topicA), "anon")
	require.Equal(t, none, canRead("authenticated", "", topicA), "no sub")
	require.Equal(t, none, canRead("authenticated", ownerA, "clipper:jobs:"+ownerB), "someone else's topic")
	require.Equal(t, none, canRead("authenticated", ownerA, "jobs:"+ownerA), "another app's topic")

	// Stored messages (Broadcast replay reads them back the same way):
	// the owner reads their own, nobody else does.
	_, err := conn.Exec(ctx, `insert into auth.users (id) values ($1), ($2)`, ownerA, ownerB)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `insert into public.jobs (owner_id, source_type, source_url) values ($1, 'youtube', 'https://youtu.be/1')`, ownerA)
	require.NoError(t, err)
	countAs := func(sub, topic string) int {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, `select set_config('role', 'authenticated', true), set_config('realtime.topic', $1, true),
			set_config('request.jwt.claims', json_build_object('sub', $2::text, 'role', 'authenticated')::text, true)`, topic, sub)
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRow(ctx, `select count(*) from realtime.messages`).Scan(&n))
		return n
	}
	require.Equal(t, 1, countAs(ownerA, topicA))
	require.Equal(t, 0, countAs(ownerB, topicA))
	require.Equal(t, 0, countAs(ownerB, "clipper:jobs:"+ownerB))
}

// Where Realtime's objects are absent (plain Postgres) the migrations
// install no broadcast trigger and no policy, and job writes work as
// before; where Realtime exists but cannot store a message (no partition
// for today), realtime.send only warns and the job write still commits.
func TestRealtimeAbsentIsNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PlainPostgres", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, pgtest.NewDatabase(t))
		var realtime *string
		var trigger int
		require.NoError(t, conn.QueryRow(ctx, `select to_regnamespace('realtime')::text,
			(select count(*) from pg_trigger where tgname = 'job_events_broadcast')`).Scan(&realtime, &trigger))
		require.Nil(t, realtime)
		require.Zero(t, trigger)
		_, err := conn.Exec(ctx, `with u as (insert into auth.users (id) values ($1) returning id)
			insert into public.jobs (owner_id, source_type, source_url) select id, 'youtube', 'https://youtu.be/1' from u`, ownerA)
		require.NoError(t, err)
	})

	t.Run("NoPartition", func(t *testing.T) {
		t.Parallel()
		conn := realtimeDatabase(t)
		_, err := conn.Exec(ctx, `do $$ declare p regclass; begin
			for p in select inhrelid::regclass from pg_inherits where inhparent = 'realtime.messages'::regclass loop
			  execute format('drop table %s', p); end loop; end $$`)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `with u as (insert into auth.users (id) values ($1) returning id)
			insert into public.jobs (owner_id, source_type, source_url) select id, 'youtube', 'https://youtu.be/1' from u`, ownerA)
		require.NoError(t, err)
		var jobs int
		require.NoError(t, conn.QueryRow(ctx, `select count(*) from public.jobs`).Scan(&jobs))
		require.Equal(t, 1, jobs)
	})
}
