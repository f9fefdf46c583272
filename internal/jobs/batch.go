package jobs

import (
	"context"
	"time"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/dbgen"
)

// MaxBatchCreate bounds one CreateBatch call.
const MaxBatchCreate = 10000

// CreateBatch inserts many queued jobs with one COPY and returns how many
// it inserted; each still gets its status event from the trigger. It takes
// no idempotency keys (COPY cannot skip a conflict): replayable creates go
// through Create. Every job is validated first; one invalid job fails the
// whole batch before anything is written.
func (r *Repo) CreateBatch(ctx context.Context, batch []CreateParams) (int64, error) {
	if len(batch) == 0 || len(batch) > MaxBatchCreate {
		return 0, invalid("a batch holds 1 to %d jobs", MaxBatchCreate)
	}
	now := time.Now()
	rows := make([]dbgen.CopyJobsParams, len(batch))
	for i, p := range batch {
		if p.IdempotencyKey != "" {
			return 0, invalid("job %d: batch create takes no idempotency keys; use Create", i)
		}
		arg, err := p.toInsert()
		if err != nil {
			return 0, apperr.Wrap(err, apperr.InvalidInput, "job %d: %s", i, apperr.EnvelopeOf(err).Message)
		}
		runAt := now
		if arg.RunAt != nil {
			runAt = *arg.RunAt
		}
		rows[i] = dbgen.CopyJobsParams{
			OwnerID: arg.OwnerID, ApiKeyID: arg.ApiKeyID, SourceType: arg.SourceType,
			SourceUrl: arg.SourceUrl, SourceObject: arg.SourceObject, Params: arg.Params,
			MaxAttempts: arg.MaxAttempts, RunAt: runAt, ExpiresAt: arg.ExpiresAt,
		}
	}
	n, err := r.q.CopyJobs(ctx, rows)
	if err != nil {
		return 0, apperr.FromDB(err, "job")
	}
	return n, nil
}

// CursorAfter returns the cursor that continues a listing after j, for
// callers that found j by other means (the benchmark's deep pages).
func CursorAfter(j Job) Cursor { return cursorOf(j) }
