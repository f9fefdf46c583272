package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// Job ids are UUID version 7 whichever way a job is made (the column
// default, CreateBatch's arrays, COPY, the group commit's ids chosen in
// Go), and jobs made later have greater ids: new jobs and their events
// land at the right edge of the primary key indexes.
func TestJobIDsAreTimeOrdered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t) // a database of its own: no other test's jobs
	repo := jobs.New(pool)
	p := jobs.CreateParams{SourceURL: videoURL, Params: json.RawMessage(`{"start":1,"end":5}`)}
	// Each way commits on its own, a few milliseconds after the one
	// before: its jobs' created_at (the transaction's time) is later.
	pause := func() { time.Sleep(3 * time.Millisecond) }

	createJob(t, ctx, repo)
	pause()
	_, err := repo.CreateBatch(ctx, []jobs.CreateParams{p, p})
	require.NoError(t, err)
	pause()
	big := make([]jobs.CreateParams, 300) // above CreateBatch's arrays: COPY
	for i := range big {
		big[i] = p
	}
	_, err = repo.CreateBatch(ctx, big)
	require.NoError(t, err)
	pause()
	gc := jobs.NewGroupCommit(pool, jobs.GroupCommitOptions{Options: batcher.Options{}})
	_, _, err = gc.Create(ctx, p)
	gc.Close()
	require.NoError(t, err)

	rows, err := pool.Query(ctx, "select id, created_at from jobs order by created_at, id")
	require.NoError(t, err)
	type made struct {
		id uuid.UUID
		at time.Time
	}
	var all []made
	for rows.Next() {
		var m made
		require.NoError(t, rows.Scan(&m.id, &m.at))
		all = append(all, m)
	}
	require.NoError(t, rows.Err())
	require.Len(t, all, 1+2+300+1)
	steps := 1
	for i, m := range all {
		require.EqualValues(t, 7, m.id.Version(), "job %d: %s", i, m.id)
		require.Equal(t, uuid.RFC4122, m.id.Variant(), "job %d: %s", i, m.id)
		if i > 0 && m.at.After(all[i-1].at) {
			steps++
			require.Positive(t, bytes.Compare(m.id[:], all[i-1].id[:]),
				"job %d (%s, made %s) sorts before the one made before it (%s, %s)", i, m.id, m.at, all[i-1].id, all[i-1].at)
		}
	}
	require.Equal(t, 4, steps, "four transactions, four created_at")
}
