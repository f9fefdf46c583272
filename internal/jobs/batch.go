package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
)

// MaxBatchCreate bounds one CreateBatch call.
const MaxBatchCreate = 10000

// CreateBatch inserts many queued jobs with one COPY and returns how many
// it inserted; each still gets its status event from the trigger. It takes
// no idempotency keys (COPY cannot skip a conflict): replayable creates go
// through Create. Every job is validated first; one invalid job fails the
// whole batch before anything is written.
func (r *Repo) CreateBatch(ctx context.Context, db database.DB, batch []CreateParams) (int64, error) {
	if len(batch) == 0 || len(batch) > MaxBatchCreate {
		return 0, invalid("a batch holds 1 to %d jobs", MaxBatchCreate)
	}
	now := time.Now()
	rows := make([][]any, len(batch))
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
		rows[i] = []any{arg.OwnerID, arg.ApiKeyID, string(arg.SourceType), arg.SourceUrl, arg.SourceObject,
			[]byte(arg.Params), arg.MaxAttempts, runAt, arg.ExpiresAt}
	}
	n, err := db.CopyFrom(ctx, pgx.Identifier{"public", "jobs"},
		[]string{"owner_id", "api_key_id", "source_type", "source_url", "source_object", "params",
			"max_attempts", "run_at", "expires_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return 0, apperr.FromDB(err, "job")
	}
	return n, nil
}
