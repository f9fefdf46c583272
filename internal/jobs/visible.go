package jobs

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/dbgen"
)

// ListByOwnerAndStatus returns a user's jobs in one status, newest first.
func (r *Repo) ListByOwnerAndStatus(ctx context.Context, ownerID uuid.UUID, status Status, after Cursor, limit int) (Page, error) {
	if !status.Valid() {
		return Page{}, invalid("unknown job status %q", status)
	}
	return list(after, limit, func(ts time.Time, id uuid.UUID, n int32) ([]dbgen.Job, error) {
		return r.q.ListJobsByOwnerAndStatus(ctx, dbgen.ListJobsByOwnerAndStatusParams{
			OwnerID: ownerID, Status: dbgen.JobStatus(status), BeforeCreatedAt: ts, BeforeID: id, MaxRows: n,
		})
	})
}

// ListByAPIKeyAndStatus returns the jobs one API key made in one status,
// newest first.
func (r *Repo) ListByAPIKeyAndStatus(ctx context.Context, apiKeyID uuid.UUID, status Status, after Cursor, limit int) (Page, error) {
	if !status.Valid() {
		return Page{}, invalid("unknown job status %q", status)
	}
	return list(after, limit, func(ts time.Time, id uuid.UUID, n int32) ([]dbgen.Job, error) {
		return r.q.ListJobsByAPIKeyAndStatus(ctx, dbgen.ListJobsByAPIKeyAndStatusParams{
			ApiKeyID: apiKeyID, Status: dbgen.JobStatus(status), BeforeCreatedAt: ts, BeforeID: id, MaxRows: n,
		})
	})
}
