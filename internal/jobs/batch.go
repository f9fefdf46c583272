package jobs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

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
	now, err := r.q.DatabaseNow(ctx)
	if err != nil {
		return 0, apperr.FromDB(err, "job")
	}
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

// Completion is one job a worker finished, with its result objects.
type Completion struct {
	ID         uuid.UUID `json:"id"`
	ResultKeys []string  `json:"result_keys"`
}

// CompleteMany marks many jobs held by workerID done in one statement, as
// Complete does one, and returns the ids it completed. Jobs that are not
// processing or that another worker holds are skipped (not an error): the
// caller compares the returned ids with what it sent.
func (r *Repo) CompleteMany(ctx context.Context, workerID string, done []Completion, retention time.Duration) ([]uuid.UUID, error) {
	if err := checkWorkerID(workerID); err != nil {
		return nil, err
	}
	if len(done) == 0 || len(done) > MaxClaim {
		return nil, invalid("complete 1 to %d jobs at once", MaxClaim)
	}
	if retention < 0 {
		return nil, invalid("retention must not be negative")
	}
	for i := range done {
		if err := CheckResultKeys(done[i].ID, done[i].ResultKeys); err != nil {
			return nil, err
		}
		if done[i].ResultKeys == nil {
			done[i].ResultKeys = []string{}
		}
	}
	body, err := json.Marshal(done)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "internal error")
	}
	ids, err := r.q.CompleteJobs(ctx, dbgen.CompleteJobsParams{
		WorkerID: workerID, Completions: body, RetentionUs: retention.Microseconds(),
	})
	if err != nil {
		return nil, apperr.FromDB(err, "job")
	}
	return ids, nil
}
