package jobs_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const videoURL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"

type testBundle struct {
	ctx  context.Context
	tx   pgx.Tx
	repo *jobs.Repo
}

// setup gives a test its own rolled-back transaction on the shared database.
func setup(t *testing.T) *testBundle {
	t.Helper()
	tx := pgtest.Tx(t)
	return &testBundle{ctx: context.Background(), tx: tx, repo: jobs.New(tx)}
}

func createJob(t *testing.T, ctx context.Context, repo *jobs.Repo, mods ...func(*jobs.CreateParams)) jobs.Job {
	t.Helper()
	p := jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":1,"end":5}`)}
	for _, m := range mods {
		m(&p)
	}
	j, created, err := repo.Create(ctx, p)
	require.NoError(t, err)
	require.True(t, created)
	return j
}

// claimOnly creates one job in a fresh transaction and claims it.
func claimOnly(t *testing.T, b *testBundle, worker string, mods ...func(*jobs.CreateParams)) jobs.Job {
	t.Helper()
	j := createJob(t, b.ctx, b.repo, mods...)
	got, err := b.repo.Claim(b.ctx, worker, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, j.ID, got[0].ID)
	return got[0]
}

func newUser(t *testing.T, db database.DB) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := db.Exec(context.Background(), "insert into auth.users (id) values ($1)", id)
	require.NoError(t, err)
	return id
}

func newAPIKey(t *testing.T, db database.DB, owner uuid.NullUUID) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := db.Exec(context.Background(),
		`insert into api_keys (id, lookup_id, hash, owner_id, name) values ($1, $2, '$argon2id$test', $3, 'test')`,
		id, id.String()[:8]+id.String()[9:13], owner)
	require.NoError(t, err)
	return id
}

// rowState identifies a job row's exact version: ctid and xmin change with
// every update, even one that writes the same values in the same
// transaction.
type rowState struct {
	Version string
	Row     string
	Events  int
}

func stateOf(t *testing.T, db database.DB, id uuid.UUID) rowState {
	t.Helper()
	var s rowState
	err := db.QueryRow(context.Background(), `select j.ctid::text || '/' || j.xmin::text, to_jsonb(j)::text,
		(select count(*) from job_events e where e.job_id = j.id)
		from jobs j where j.id = $1`, id).Scan(&s.Version, &s.Row, &s.Events)
	require.NoError(t, err)
	return s
}

type statusEvent struct {
	From      string   `json:"from"`
	To        string   `json:"to"`
	Attempt   int      `json:"attempt"`
	WorkerID  string   `json:"worker_id"`
	ErrorCode string   `json:"error_code"`
	ErrorMsg  string   `json:"error_message"`
	Results   []string `json:"result_keys"`
}

// statusEvents returns a job's status events in stream order.
func statusEvents(t *testing.T, db database.DB, id uuid.UUID) []statusEvent {
	t.Helper()
	rows, err := db.Query(context.Background(),
		`select data from job_events where job_id = $1 and type = 'status' order by ts, id`, id)
	require.NoError(t, err)
	datas, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	out := make([]statusEvent, len(datas))
	for i, d := range datas {
		require.NoError(t, json.Unmarshal(d, &out[i]))
	}
	return out
}

func eventTypes(t *testing.T, db database.DB, id uuid.UUID) []string {
	t.Helper()
	rows, err := db.Query(context.Background(),
		`select type from job_events where job_id = $1 order by ts, id`, id)
	require.NoError(t, err)
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return types
}
