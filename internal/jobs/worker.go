package jobs

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/storage"
)

// Limits on worker input.
const (
	MaxClaim           = 1000
	MaxWorkerIDLen     = 255
	MaxErrorCodeLen    = 100
	MaxErrorMessageLen = 4000 // characters; longer messages are cut
	MaxResultKeys      = 100
)

// Get returns one job.
func (r *Repo) Get(ctx context.Context, id uuid.UUID) (Job, error) {
	j, err := r.q.GetJob(ctx, id)
	if err != nil {
		return Job{}, apperr.FromDB(err, "job")
	}
	return fromDB(j), nil
}

// Claim moves up to n runnable queued jobs, oldest first, to processing
// for workerID and counts an attempt on each. Jobs other claimers are
// taking are skipped, never waited for. It returns the claimed jobs,
// oldest first; none when nothing is runnable.
func (r *Repo) Claim(ctx context.Context, workerID string, n int) ([]Job, error) {
	if err := checkWorkerID(workerID); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxClaim {
		return nil, invalid("claim between 1 and %d jobs", MaxClaim)
	}
	rows, err := r.q.ClaimJobs(ctx, dbgen.ClaimJobsParams{WorkerID: workerID, MaxRows: int32(n)})
	if err != nil {
		return nil, apperr.FromDB(err, "job")
	}
	out := fromDBAll(rows)
	slices.SortFunc(out, func(a, b Job) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// Heartbeat records that workerID is still working on job id.
func (r *Repo) Heartbeat(ctx context.Context, id uuid.UUID, workerID string) (Job, error) {
	if err := checkWorkerID(workerID); err != nil {
		return Job{}, err
	}
	j, err := r.q.HeartbeatJob(ctx, dbgen.HeartbeatJobParams{ID: id, WorkerID: workerID})
	return r.held(ctx, id, j, err)
}

// Progress sets a held job's progress (0 to 100); it is also a heartbeat.
func (r *Repo) Progress(ctx context.Context, id uuid.UUID, workerID string, pct int) (Job, error) {
	if err := checkWorkerID(workerID); err != nil {
		return Job{}, err
	}
	if pct < 0 || pct > 100 {
		return Job{}, invalid("progress must be between 0 and 100")
	}
	j, err := r.q.SetJobProgress(ctx, dbgen.SetJobProgressParams{ID: id, WorkerID: workerID, Progress: int16(pct)})
	return r.held(ctx, id, j, err)
}

// Complete marks a held job done with its result objects; cleanup may
// delete it after retention.
func (r *Repo) Complete(ctx context.Context, id uuid.UUID, workerID string, resultKeys []string, retention time.Duration) (Job, error) {
	if err := checkWorkerID(workerID); err != nil {
		return Job{}, err
	}
	if err := CheckResultKeys(id, resultKeys); err != nil {
		return Job{}, err
	}
	if retention < 0 {
		return Job{}, invalid("retention must not be negative")
	}
	if resultKeys == nil {
		resultKeys = []string{}
	}
	j, err := r.q.CompleteJob(ctx, dbgen.CompleteJobParams{
		ID: id, WorkerID: workerID, ResultKeys: resultKeys, RetentionUs: retention.Microseconds(),
	})
	return r.held(ctx, id, j, err)
}

// Fail records a held job's failure. A retryable failure of a job with
// attempts left puts it back in the queue, runnable after retryDelay, with
// the error kept; any other failure makes it failed, deleted by cleanup
// after retention. The returned job says which happened.
func (r *Repo) Fail(ctx context.Context, id uuid.UUID, workerID, code, message string, retryable bool, retryDelay, retention time.Duration) (Job, error) {
	if err := checkWorkerID(workerID); err != nil {
		return Job{}, err
	}
	if code == "" || len(code) > MaxErrorCodeLen || !utf8.ValidString(code) {
		return Job{}, invalid("error code must be 1 to %d bytes of UTF-8", MaxErrorCodeLen)
	}
	if retryDelay < 0 || retention < 0 {
		return Job{}, invalid("retry delay and retention must not be negative")
	}
	var msg *string
	if message != "" {
		// A worker must always be able to report its failure: the message
		// is made storable rather than refused.
		m := strings.ReplaceAll(strings.ToValidUTF8(message, "\uFFFD"), "\x00", "")
		m = truncate(m, MaxErrorMessageLen)
		msg = &m
	}
	j, err := r.q.FailJob(ctx, dbgen.FailJobParams{
		ID: id, WorkerID: workerID, ErrorCode: code, ErrorMessage: msg, Retryable: retryable,
		DelayUs: retryDelay.Microseconds(), RetentionUs: retention.Microseconds(),
	})
	return r.held(ctx, id, j, err)
}

// Cancel stops a queued or processing job; its worker learns it at its
// next heartbeat (invalid_transition). Cleanup may delete the job after
// retention. Canceling a finished job is invalid_transition.
func (r *Repo) Cancel(ctx context.Context, id uuid.UUID, retention time.Duration) (Job, error) {
	if retention < 0 {
		return Job{}, invalid("retention must not be negative")
	}
	j, err := r.q.CancelJob(ctx, dbgen.CancelJobParams{ID: id, RetentionUs: retention.Microseconds()})
	if err == nil {
		return fromDB(j), nil
	}
	if !database.IsNoRows(err) {
		return Job{}, apperr.FromDB(err, "job")
	}
	cur, err := r.q.GetJob(ctx, id)
	if err != nil {
		return Job{}, apperr.FromDB(err, "job")
	}
	return Job{}, apperr.New(apperr.InvalidTransition, "job %s is %s and cannot be canceled", id, cur.Status)
}

// RequeueStale takes up to limit processing jobs whose last heartbeat is
// older than olderThan away from their worker: back to the queue when
// attempts are left, else failed with error code heartbeat_timeout (and
// deleted by cleanup after retention). It returns the jobs it changed.
// The rule is the database's clipper_internal.requeue_stale_jobs, which
// pg_cron's reap_stale_jobs runs too.
func (r *Repo) RequeueStale(ctx context.Context, olderThan time.Duration, limit int, retention time.Duration) ([]Job, error) {
	if olderThan <= 0 || retention < 0 {
		return nil, invalid("olderThan must be positive and retention not negative")
	}
	if limit < 1 || limit > MaxClaim {
		return nil, invalid("requeue between 1 and %d jobs", MaxClaim)
	}
	rows, err := r.q.RequeueStaleJobs(ctx, dbgen.RequeueStaleJobsParams{
		OlderThanUs: olderThan.Microseconds(), MaxRows: int32(limit), RetentionUs: retention.Microseconds(),
	})
	if err != nil {
		return nil, apperr.FromDB(err, "job")
	}
	return fromDBAll(rows), nil
}

// held finishes a worker-held operation. Its UPDATE matches only a job in
// processing held by the worker; when it matched nothing, one lookup says
// whether the job is missing or in another state, and nothing was changed.
func (r *Repo) held(ctx context.Context, id uuid.UUID, j dbgen.Job, err error) (Job, error) {
	if err == nil {
		return fromDB(j), nil
	}
	if !database.IsNoRows(err) {
		return Job{}, apperr.FromDB(err, "job")
	}
	cur, err := r.q.GetJob(ctx, id)
	if err != nil {
		return Job{}, apperr.FromDB(err, "job")
	}
	if cur.Status != dbgen.JobStatusProcessing {
		return Job{}, apperr.New(apperr.InvalidTransition, "job %s is %s, not processing", id, cur.Status)
	}
	return Job{}, apperr.New(apperr.InvalidTransition, "job %s is held by another worker", id)
}

func checkWorkerID(id string) error {
	if id == "" || len(id) > MaxWorkerIDLen || !utf8.ValidString(id) {
		return invalid("worker id must be 1 to %d bytes of UTF-8", MaxWorkerIDLen)
	}
	return nil
}

// ResultPrefix is the folder of the results bucket that holds job id's
// results: "<job id>/". Upload URLs are signed only there, and the
// database refuses result keys elsewhere (jobs_result_keys_job_check).
func ResultPrefix(id uuid.UUID) string { return id.String() + "/" }

// CheckResultKeys refuses more than MaxResultKeys keys, and any key that
// is not a valid object name under the job's ResultPrefix.
func CheckResultKeys(id uuid.UUID, keys []string) error {
	if len(keys) > MaxResultKeys {
		return invalid("at most %d result keys", MaxResultKeys)
	}
	prefix := ResultPrefix(id)
	for _, k := range keys {
		if err := storage.ValidateObjectName(k); err != nil {
			return invalid("result key %q: %s", truncate(k, 100), apperr.EnvelopeOf(err).Message)
		}
		if !strings.HasPrefix(k, prefix) {
			return invalid("result key %q must lie under the job's own prefix %s", truncate(k, 100), prefix)
		}
	}
	return nil
}

// truncate cuts s to at most n characters, as the column's length check counts.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
