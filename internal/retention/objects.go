package retention

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/storage"
)

// Drain settings. A lease outlasts any one Delete call (Supabase: 10 s a
// call by default); a failed name waits BaseBackoff, doubling per attempt
// up to MaxBackoff.
const (
	DefaultObjectLease = 5 * time.Minute
	DefaultBaseBackoff = 30 * time.Second
	DefaultMaxBackoff  = time.Hour
)

// Objects counts what a drain of the object outbox did.
type Objects struct {
	// Deleted objects were removed now; Missing were already gone (a
	// repeated delete); InUse are sources a job still names, dropped
	// from the outbox (that job's deletion queues them again).
	Deleted map[string]int64 `json:"deleted"` // by bucket
	Missing int64            `json:"missing"`
	InUse   int64            `json:"in_use"`
	// Failed names stay queued, due again after a backoff; LastError is
	// the last failure's message.
	Failed    int64  `json:"failed"`
	LastError string `json:"last_error,omitempty"`
	// Pending is what the outbox holds after the drain.
	Pending int64 `json:"pending"`
}

// Total is the number of objects deleted.
func (o Objects) Total() int64 {
	var n int64
	for _, v := range o.Deleted {
		n += v
	}
	return n
}

// DrainOptions bound one drain.
type DrainOptions struct {
	BatchSize   int // names a batch; 0 means storage.MaxDeleteNames
	MaxBatches  int // 0 means until nothing is due
	Lease       time.Duration
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
}

// DrainObjects deletes the objects that deleted jobs left in the outbox
// (clipper_internal.object_deletions, filled by the jobs delete trigger),
// through del. Each batch is leased in a short transaction, deleted, then
// forgotten; a batch that del fails stays queued with a backoff and ends
// the drain (Storage is likely down). A crash anywhere leaves the names
// queued: leased ones are due again when the lease ends, and deleting a
// name twice is harmless. Storage failures are counted in the result, not
// returned: only database errors and cancellation are.
func (r *Repo) DrainObjects(ctx context.Context, del storage.Deleter, opts DrainOptions) (Objects, error) {
	opts = opts.withDefaults()
	res := Objects{Deleted: map[string]int64{}}
	for batches := 0; opts.MaxBatches == 0 || batches < opts.MaxBatches; batches++ {
		if err := ctx.Err(); err != nil {
			return res, apperr.FromDB(err, "object cleanup")
		}
		rows, err := r.leaseObjects(ctx, opts, &res)
		if err != nil {
			return res, err
		}
		if len(rows) == 0 {
			break
		}
		if failed := r.deleteObjects(ctx, del, rows, opts, &res); failed {
			break
		}
		if len(rows) < opts.BatchSize {
			break
		}
	}
	pending, err := dbgen.New(r.db).CountObjectDeletions(ctx)
	res.Pending = pending
	return res, apperr.FromDB(err, "object cleanup")
}

func (o DrainOptions) withDefaults() DrainOptions {
	if o.BatchSize <= 0 || o.BatchSize > storage.MaxDeleteNames {
		o.BatchSize = storage.MaxDeleteNames
	}
	if o.Lease <= 0 {
		o.Lease = DefaultObjectLease
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	return o
}

// leaseObjects takes a batch of due names, drops the sources that a job
// still names, and leases the rest.
func (r *Repo) leaseObjects(ctx context.Context, opts DrainOptions, res *Objects) ([]dbgen.LockDueObjectDeletionsRow, error) {
	var leased []dbgen.LockDueObjectDeletionsRow
	err := database.InTx(ctx, r.db, func(tx pgx.Tx) error {
		q := dbgen.New(tx)
		rows, err := q.LockDueObjectDeletions(ctx, int32(opts.BatchSize))
		if err != nil || len(rows) == 0 {
			return apperr.FromDB(err, "object cleanup")
		}
		var sources []string
		for _, row := range rows {
			if row.Bucket == storage.BucketSources {
				sources = append(sources, row.Name)
			}
		}
		inUse := map[string]bool{}
		if len(sources) > 0 {
			names, err := q.SourcesInUse(ctx, sources)
			if err != nil {
				return apperr.FromDB(err, "object cleanup")
			}
			for _, n := range names {
				inUse[n] = true
			}
		}
		var drop, lease []int64
		for _, row := range rows {
			if row.Bucket == storage.BucketSources && inUse[row.Name] {
				drop = append(drop, row.ID)
				continue
			}
			lease = append(lease, row.ID)
			leased = append(leased, row)
		}
		if len(drop) > 0 {
			if _, err := q.ForgetObjectDeletions(ctx, drop); err != nil {
				return apperr.FromDB(err, "object cleanup")
			}
		}
		if len(lease) > 0 {
			err = q.LeaseObjectDeletions(ctx, dbgen.LeaseObjectDeletionsParams{
				Ids: lease, LeaseSeconds: opts.Lease.Seconds()})
		}
		if err == nil {
			res.InUse += int64(len(drop))
		}
		return apperr.FromDB(err, "object cleanup")
	})
	if err != nil {
		return nil, err
	}
	return leased, nil
}

// deleteObjects deletes a leased batch, bucket by bucket, and records the
// outcome; it reports whether a bucket failed.
func (r *Repo) deleteObjects(ctx context.Context, del storage.Deleter, rows []dbgen.LockDueObjectDeletionsRow, opts DrainOptions, res *Objects) (failed bool) {
	byBucket := map[string][]dbgen.LockDueObjectDeletionsRow{}
	for _, row := range rows {
		byBucket[row.Bucket] = append(byBucket[row.Bucket], row)
	}
	// The outcome is recorded even when ctx is canceled (Ctrl-C), so the
	// next run need not wait for the lease to end.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, bucket := range []string{storage.BucketResults, storage.BucketSources} {
		batch := byBucket[bucket]
		if len(batch) == 0 {
			continue
		}
		ids := make([]int64, len(batch))
		gens := make([]int32, len(batch))
		names := make([]string, len(batch))
		for i, row := range batch {
			ids[i], gens[i], names[i] = row.ID, row.Generation, row.Name
		}
		q := dbgen.New(r.db)
		n, err := del.Delete(ctx, bucket, names)
		if err != nil {
			failed = true
			res.Failed += int64(len(batch))
			res.LastError = apperr.EnvelopeOf(err).Message
			// Some names may be gone already; the retry finds them missing.
			_ = q.RetryObjectDeletions(bctx, dbgen.RetryObjectDeletionsParams{
				Ids: ids, LastError: &res.LastError,
				BaseBackoffSeconds: opts.BaseBackoff.Seconds(), MaxBackoffSeconds: opts.MaxBackoff.Seconds()})
			res.Deleted[bucket] += int64(n)
			continue
		}
		res.Deleted[bucket] += int64(n)
		res.Missing += int64(len(batch) - n)
		// If this fails the names stay leased and are deleted again,
		// harmlessly, when the lease ends.
		_, _ = q.FinishObjectDeletions(bctx, dbgen.FinishObjectDeletionsParams{Ids: ids, Generations: gens})
	}
	return failed
}

// Pruned counts the webhook records that retention deleted.
type Pruned struct {
	Deliveries int64 `json:"deliveries"`
	UploadJobs int64 `json:"upload_jobs"`
}

// PruneWebhookRecords deletes webhook deliveries older than olderThan and
// the upload_jobs rows whose job and object are both gone, in batches of
// batchSize, through clipper_internal.prune_webhook_records (the one copy
// of the rule, which pg_cron can call as well).
func (r *Repo) PruneWebhookRecords(ctx context.Context, olderThan time.Duration, batchSize, maxBatches int) (Pruned, error) {
	if batchSize <= 0 || batchSize > MaxBatchSize {
		batchSize = DefaultBatchSize
	}
	var total Pruned
	for batches := 0; maxBatches == 0 || batches < maxBatches; batches++ {
		row, err := dbgen.New(r.db).PruneWebhookRecords(ctx, dbgen.PruneWebhookRecordsParams{
			OlderThanSeconds: olderThan.Seconds(), MaxRows: int32(batchSize)})
		if err != nil {
			return total, apperr.FromDB(err, "webhook records")
		}
		total.Deliveries += row.Deliveries
		total.UploadJobs += row.UploadJobs
		if row.Deliveries < int64(batchSize) && row.UploadJobs < int64(batchSize) {
			break
		}
	}
	return total, nil
}
