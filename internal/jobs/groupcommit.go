package jobs

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// GroupCommitOptions tune a GroupCommit.
type GroupCommitOptions struct {
	batcher.Options
	// BeforeCommit, if set, runs in each batch's transaction after its
	// inserts and before its commit (tests hold a batch there); an error
	// fails the batch.
	BeforeCommit func(ctx context.Context, tx pgx.Tx) error
}

// GroupCommit creates jobs like Repo.Create, but gathers concurrent
// creates into one transaction, so that they share one commit (one WAL
// flush) instead of waiting for one each. Each caller still gets its own
// job and its own error, with Create's idempotency: a replay returns the
// first job, also when both are in the same batch. A job is returned only
// after its batch has committed.
type GroupCommit struct {
	db   database.DB
	hook func(ctx context.Context, tx pgx.Tx) error
	b    *batcher.Batcher[createCall, createResult]
}

type createCall struct {
	p   CreateParams
	arg dbgen.InsertJobParams
}

// key orders keyed creates; unkeyed ones sort first and never wait on
// another transaction.
func (c createCall) key() string {
	if c.arg.IdempotencyKey == nil {
		return ""
	}
	scope := c.p.OwnerID.UUID
	if !c.p.OwnerID.Valid {
		scope = c.p.APIKeyID.UUID
	}
	return scope.String() + "/" + *c.arg.IdempotencyKey
}

type createResult struct {
	job     Job
	created bool
}

// NewGroupCommit returns a GroupCommit writing through db, a pool. Close
// it after its callers have stopped.
func NewGroupCommit(db database.DB, opts GroupCommitOptions) *GroupCommit {
	g := &GroupCommit{db: db, hook: opts.BeforeCommit}
	g.b = batcher.New(g.run, opts.Options)
	return g
}

// Create is Repo.Create through a batch. Invalid parameters fail at once,
// before joining a batch.
func (g *GroupCommit) Create(ctx context.Context, p CreateParams) (Job, bool, error) {
	arg, err := p.toInsert()
	if err != nil {
		return Job{}, false, err
	}
	res, err := g.b.Do(ctx, createCall{p: p, arg: arg})
	if errors.Is(err, batcher.ErrClosed) {
		return Job{}, false, apperr.Wrap(err, apperr.Unavailable, "the daemon is shutting down")
	}
	if err != nil {
		return Job{}, false, apperr.FromDB(err, "job")
	}
	return res.job, res.created, nil
}

// Flush starts a batch of every pending create now.
func (g *GroupCommit) Flush() { g.b.Flush() }

// Pending returns how many creates wait for a batch.
func (g *GroupCommit) Pending() int { return g.b.Pending() }

// Close commits every pending create and waits for the batches in flight.
func (g *GroupCommit) Close() { g.b.Close() }

// run inserts a batch in one transaction. Of two creates with one
// idempotency key the first to arrive creates and the second reads it
// back. A create whose own values fail (ItemFault) gets its error and the
// batch runs again without it; a deadlock or serialization failure runs
// it again whole; any other failure fails every create of the batch.
func (g *GroupCommit) run(ctx context.Context, calls []*batcher.Call[createCall, createResult]) {
	// Keyed creates go in (scope, key) order, arrival order within one
	// key: two batches in flight (or two replicas) that wait on each
	// other's keys then always wait in the same direction.
	live := slices.Clone(calls)
	slices.SortStableFunc(live, func(a, b *batcher.Call[createCall, createResult]) int {
		return cmp.Compare(a.In.key(), b.In.key())
	})
	retries := 0
	many := true
	for len(live) > 0 {
		bad, err := g.try(ctx, live, many)
		if errors.Is(err, errFaultAmongMany) {
			// Some create of the multi-row insert is at fault: one
			// statement each finds which.
			many = false
			continue
		}
		if bad < 0 && batcher.Retryable(err) && retries < batcher.MaxRetries {
			retries++
			continue
		}
		if bad < 0 {
			if err != nil {
				for _, c := range live {
					c.Err = err
				}
			}
			return
		}
		live[bad].Err = err
		live = append(live[:bad:bad], live[bad+1:]...)
	}
}

// errFaultAmongMany: the multi-row insert of a batch's unkeyed creates
// failed for one create's values, not known which.
var errFaultAmongMany = errors.New("a create of the multi-row insert is at fault")

// try runs live in one transaction. With many, the unkeyed creates (sorted
// first) go in one multi-row INSERT, the keyed ones one statement each; a
// batch of unkeyed creates only is that one statement, with no explicit
// transaction unless a BeforeCommit hook needs one. It returns the index
// of a create whose own error aborted the transaction (errFaultAmongMany
// if it was in the multi-row insert), or -1 and the batch's outcome. On
// success every live call has its result, set only after the commit.
func (g *GroupCommit) try(ctx context.Context, live []*batcher.Call[createCall, createResult], many bool) (int, error) {
	if many && g.hook == nil && live[len(live)-1].In.key() == "" {
		// Unkeyed creates only (keyed ones sort last): the multi-row
		// insert is the whole batch, and its own transaction, one round
		// trip instead of three.
		jobs, err := New(g.db).insertMany(ctx, live)
		switch {
		case batcher.ItemFault(err):
			return -1, errFaultAmongMany
		case err != nil:
			return -1, err
		}
		for i, c := range live {
			c.Out = createResult{job: jobs[i], created: true}
		}
		return -1, nil
	}
	tx, err := g.db.Begin(ctx)
	if err != nil {
		return -1, apperr.FromDB(err, "transaction")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	r := New(tx)
	out := make([]createResult, len(live))
	errs := make([]error, len(live))
	first := 0
	if many {
		unkeyed := 0
		for unkeyed < len(live) && live[unkeyed].In.key() == "" {
			unkeyed++
		}
		if unkeyed > 1 {
			jobs, err := r.insertMany(ctx, live[:unkeyed])
			switch {
			case err == nil:
			case batcher.ItemFault(err):
				return -1, errFaultAmongMany
			default:
				return -1, err
			}
			for i, j := range jobs {
				out[i] = createResult{job: j, created: true}
			}
			first = unkeyed
		}
	}
	for i := first; i < len(live); i++ {
		c := live[i]
		job, created, err := r.insert(ctx, c.In.p, c.In.arg)
		switch {
		case err == nil:
			out[i] = createResult{job: job, created: created}
		case batcher.ItemFault(err):
			return i, err
		case errors.Is(err, pgx.ErrNoRows):
			// The key's job vanished between insert and read; the
			// transaction is intact.
			errs[i] = err
		default:
			return -1, err
		}
	}
	if g.hook != nil {
		if err := g.hook(ctx, tx); err != nil {
			return -1, apperr.FromDB(err, "transaction")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return -1, apperr.FromDB(err, "transaction")
	}
	for i, c := range live {
		c.Out, c.Err = out[i], errs[i]
	}
	return -1, nil
}

// insertMany inserts unkeyed creates in one statement
// (insertJobsFromArrays) and returns their jobs in the calls' order.
func (r *Repo) insertMany(ctx context.Context, calls []*batcher.Call[createCall, createResult]) ([]Job, error) {
	args := make([]dbgen.InsertJobParams, len(calls))
	ids := make([]uuid.NullUUID, len(calls))
	for i, c := range calls {
		args[i], ids[i] = c.In.arg, uuid.NullUUID{UUID: uuid.Must(uuid.NewV7()), Valid: true}
	}
	rows, err := r.db.Query(ctx, insertJobsFromArrays+" returning *", jobArrays(args, ids)...)
	if err != nil {
		return nil, err
	}
	// returning * is the table's columns in order, as sqlc's model.
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbgen.Job])
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]dbgen.Job, len(got))
	for _, j := range got {
		byID[j.ID] = j
	}
	out := make([]Job, len(calls))
	for i, id := range ids {
		j, ok := byID[id.UUID]
		if !ok {
			return nil, apperr.New(apperr.Internal, "a created job is missing from the insert's rows")
		}
		out[i] = fromDB(j)
	}
	return out, nil
}
