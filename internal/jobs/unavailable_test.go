package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// allMethods calls every Repo method with valid input.
func allMethods(ctx context.Context, repo *jobs.Repo) map[string]error {
	id := uuid.New()
	errs := map[string]error{}
	_, _, errs["Create"] = repo.Create(ctx, jobs.CreateParams{SourceURL: videoURL})
	_, errs["Get"] = repo.Get(ctx, id)
	_, errs["ListByStatus"] = repo.ListByStatus(ctx, jobs.StatusQueued, "", 10)
	_, errs["ListByOwner"] = repo.ListByOwner(ctx, id, "", 10)
	_, errs["ListByAPIKey"] = repo.ListByAPIKey(ctx, id, "", 10)
	_, errs["Claim"] = repo.Claim(ctx, "w", 1)
	_, errs["Heartbeat"] = repo.Heartbeat(ctx, id, "w")
	_, errs["Progress"] = repo.Progress(ctx, id, "w", 1)
	_, errs["Complete"] = repo.Complete(ctx, id, "w", nil, time.Hour)
	_, errs["Fail"] = repo.Fail(ctx, id, "w", "c", "m", true, 0, time.Hour)
	_, errs["Cancel"] = repo.Cancel(ctx, id, time.Hour)
	_, errs["RequeueStale"] = repo.RequeueStale(ctx, time.Minute, 10, time.Hour)
	return errs
}

func TestUnavailable(t *testing.T) {
	t.Parallel()

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for name, err := range allMethods(ctx, jobs.New(pgtest.SharedPool(t))) {
			t.Run(name, func(t *testing.T) { apperrtest.RequireCode(t, err, apperr.Unavailable) })
		}
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		// Nothing listens on port 1.
		pool, err := pgxpool.New(context.Background(), "postgres://clipper@127.0.0.1:1/clipper?connect_timeout=2")
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		for name, err := range allMethods(context.Background(), jobs.New(pool)) {
			t.Run(name, func(t *testing.T) {
				apperrtest.RequireCode(t, err, apperr.Unavailable)
				require.NotContains(t, apperr.EnvelopeOf(err).Message, "127.0.0.1")
			})
		}
	})
}
