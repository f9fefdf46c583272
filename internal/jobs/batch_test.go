package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// Small batches go in one INSERT from arrays, large ones through COPY:
// both write the same jobs, with every field, and their events.
func TestCreateBatch(t *testing.T) {
	t.Parallel()
	for _, size := range []int{50, 250} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tx := pgtest.Tx(t)
			repo := jobs.New(tx)

			owner := uuid.New()
			_, err := tx.Exec(ctx, "insert into auth.users (id) values ($1)", owner)
			require.NoError(t, err)
			runAt := time.Now().Add(time.Hour).Truncate(time.Microsecond)
			expires := runAt.Add(24 * time.Hour)
			batch := make([]jobs.CreateParams, size)
			for i := range batch {
				batch[i] = jobs.CreateParams{SourceURL: fmt.Sprintf("https://youtu.be/batch%d", i), Params: json.RawMessage(`{"start":1}`)}
			}
			batch[7] = jobs.CreateParams{SourceObject: "user/video.mp4"}
			batch[9] = jobs.CreateParams{SourceURL: "https://youtu.be/batch-full", OwnerID: uuid.NullUUID{UUID: owner, Valid: true},
				Params: json.RawMessage(`{"end":9}`), MaxAttempts: 5, RunAt: &runAt, ExpiresAt: &expires}
			n, err := repo.CreateBatch(ctx, batch)
			require.NoError(t, err)
			require.EqualValues(t, size, n)

			var jobsN, events, uploads, runNow int
			require.NoError(t, tx.QueryRow(ctx, `select count(*), count(*) filter (where source_type = 'upload'),
				count(*) filter (where run_at = now())
				from jobs where status = 'queued' and (source_url like 'https://youtu.be/batch%' or source_object = 'user/video.mp4')`).
				Scan(&jobsN, &uploads, &runNow))
			require.NoError(t, tx.QueryRow(ctx, `select count(*) from job_events e join jobs j on j.id = e.job_id
				where e.type = 'status' and (j.source_url like 'https://youtu.be/batch%' or j.source_object = 'user/video.mp4')`).Scan(&events))
			require.Equal(t, size, jobsN)
			require.Equal(t, 1, uploads)
			require.Equal(t, size-1, runNow, "run_at defaults to the database's now()")
			require.Equal(t, size, events, "each job gets its status event")

			var (
				gotOwner    uuid.NullUUID
				gotAttempts int
				gotRun      time.Time
				gotExpires  *time.Time
				gotParams   string
			)
			require.NoError(t, tx.QueryRow(ctx, `select owner_id, max_attempts, run_at, expires_at, params::text
				from jobs where source_url = 'https://youtu.be/batch-full'`).Scan(&gotOwner, &gotAttempts, &gotRun, &gotExpires, &gotParams))
			require.Equal(t, uuid.NullUUID{UUID: owner, Valid: true}, gotOwner)
			require.Equal(t, 5, gotAttempts)
			require.True(t, runAt.Equal(gotRun), "run_at %v, want %v", gotRun, runAt)
			require.NotNil(t, gotExpires)
			require.True(t, expires.Equal(*gotExpires))
			require.JSONEq(t, `{"end":9}`, gotParams)
		})
	}
}

func TestCreateBatchRefusesBadInputWholesale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	repo := jobs.New(tx)

	_, err := repo.CreateBatch(ctx, nil)
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))

	_, err = repo.CreateBatch(ctx, []jobs.CreateParams{{SourceURL: "https://youtu.be/ok-refused"}, {SourceURL: "ftp://nope"}})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	require.Contains(t, apperr.EnvelopeOf(err).Message, "job 1")

	_, err = repo.CreateBatch(ctx, []jobs.CreateParams{{SourceURL: "https://youtu.be/x", IdempotencyKey: "k"}})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))

	var n int
	require.NoError(t, tx.QueryRow(ctx, "select count(*) from jobs where source_url = 'https://youtu.be/ok-refused'").Scan(&n))
	require.Zero(t, n, "nothing is written when one job is invalid")
}

func TestCompleteMany(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	repo := jobs.New(tx)
	batch := make([]jobs.CreateParams, 5)
	for i := range batch {
		batch[i] = jobs.CreateParams{SourceURL: fmt.Sprintf("https://youtu.be/many%d", i)}
	}
	_, err := repo.CreateBatch(ctx, batch)
	require.NoError(t, err)
	// Claim inside this transaction sees every queued job of the shared
	// database's rolled-back tests only: ours.
	claimed, err := repo.Claim(ctx, "w-many", 5)
	require.NoError(t, err)
	require.Len(t, claimed, 5)

	done := []jobs.Completion{
		{ID: claimed[0].ID, ResultKeys: []string{claimed[0].ID.String() + "/0.mp4"}},
		{ID: claimed[1].ID},
		{ID: claimed[2].ID, ResultKeys: []string{claimed[2].ID.String() + "/2.mp4", claimed[2].ID.String() + "/2.srt"}},
	}
	ids, err := repo.CompleteMany(ctx, "w-many", done, time.Hour)
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{claimed[0].ID, claimed[1].ID, claimed[2].ID}, ids)

	j, err := repo.Get(ctx, claimed[2].ID)
	require.NoError(t, err)
	require.Equal(t, jobs.StatusDone, j.Status)
	require.Equal(t, []string{claimed[2].ID.String() + "/2.mp4", claimed[2].ID.String() + "/2.srt"}, j.ResultKeys)
	require.NotNil(t, j.ExpiresAt)

	// Another worker's claim and already-done jobs are skipped, unchanged.
	ids, err = repo.CompleteMany(ctx, "w-other", []jobs.Completion{{ID: claimed[3].ID}, {ID: claimed[0].ID}}, time.Hour)
	require.NoError(t, err)
	require.Empty(t, ids)
	j, err = repo.Get(ctx, claimed[3].ID)
	require.NoError(t, err)
	require.Equal(t, jobs.StatusProcessing, j.Status)

	var events int
	require.NoError(t, tx.QueryRow(ctx, "select count(*) from job_events where job_id = $1 and type = 'status' and data->>'to' = 'done'", claimed[2].ID).Scan(&events))
	require.Equal(t, 1, events)

	_, err = repo.CompleteMany(ctx, "w-many", nil, time.Hour)
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
}
