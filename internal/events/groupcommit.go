package events

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
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

// GroupCommit appends events like Repo.Append, but gathers concurrent
// appends into one transaction that shares one commit. Each caller gets
// its own event or error (a missing job fails only its own appends); an
// event is returned only after its batch has committed. Ordering holds as
// for Append: the batch locks every job it writes to before inserting, in
// id order, and inserts in arrival order.
type GroupCommit struct {
	db   database.DB
	hook func(ctx context.Context, tx pgx.Tx) error
	b    *batcher.Batcher[NewEvent, Event]
}

// NewGroupCommit returns a GroupCommit writing through db, a pool. Close
// it after its callers have stopped.
func NewGroupCommit(db database.DB, opts GroupCommitOptions) *GroupCommit {
	g := &GroupCommit{db: db, hook: opts.BeforeCommit}
	g.b = batcher.New(g.run, opts.Options)
	return g
}

// Append is Repo.Append through a batch. An invalid event fails at once,
// before joining a batch.
func (g *GroupCommit) Append(ctx context.Context, jobID uuid.UUID, typ string, data json.RawMessage) (Event, error) {
	data, err := check(NewEvent{JobID: jobID, Type: typ, Data: data})
	if err != nil {
		return Event{}, err
	}
	ev, err := g.b.Do(ctx, NewEvent{JobID: jobID, Type: typ, Data: data})
	if errors.Is(err, batcher.ErrClosed) {
		return Event{}, apperr.Wrap(err, apperr.Unavailable, "the daemon is shutting down")
	}
	if err != nil {
		return Event{}, apperr.FromDB(err, "event")
	}
	return ev, nil
}

// Flush starts a batch of every pending append now.
func (g *GroupCommit) Flush() { g.b.Flush() }

// Pending returns how many appends wait for a batch.
func (g *GroupCommit) Pending() int { return g.b.Pending() }

// Close commits every pending append and waits for the batches in flight.
func (g *GroupCommit) Close() { g.b.Close() }

// run appends a batch in one transaction. An append whose own values fail
// (batcher.ItemFault) gets its error and the batch runs again without it;
// a deadlock or serialization failure runs it again whole; any other
// failure fails every append of the batch.
func (g *GroupCommit) run(ctx context.Context, calls []*batcher.Call[NewEvent, Event]) {
	live := calls
	retries := 0
	many := true
	for len(live) > 0 {
		bad, err := g.try(ctx, live, many)
		if errors.Is(err, errFaultAmongMany) {
			// Some append of the multi-row insert is at fault: one
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

// errFaultAmongMany: the multi-row insert failed for one append's values,
// not known which.
var errFaultAmongMany = errors.New("an append of the multi-row insert is at fault")

// try runs live in one transaction; see jobs.GroupCommit.try. With many,
// the appends to existing jobs go in one multi-row INSERT.
func (g *GroupCommit) try(ctx context.Context, live []*batcher.Call[NewEvent, Event], many bool) (int, error) {
	ids := make([]uuid.UUID, len(live))
	for i, c := range live {
		ids[i] = c.In.JobID
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)

	tx, err := g.db.Begin(ctx)
	if err != nil {
		return -1, apperr.FromDB(err, "transaction")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := dbgen.New(tx)
	locked, err := q.LockJobsForEvents(ctx, ids)
	if err != nil {
		return -1, apperr.FromDB(err, "job")
	}
	out := make([]Event, len(live))
	errs := make([]error, len(live))
	var present []int // indexes of the appends whose job exists
	for i, c := range live {
		if !slices.Contains(locked, c.In.JobID) {
			errs[i] = apperr.New(apperr.NotFound, "job not found")
			continue
		}
		present = append(present, i)
	}
	if many && len(present) > 1 {
		switch err := insertMany(ctx, q, live, present, out); {
		case err == nil:
			present = nil
		case batcher.ItemFault(err):
			return -1, errFaultAmongMany
		default:
			return -1, apperr.FromDB(err, "event")
		}
	}
	for _, i := range present {
		c := live[i]
		row, err := q.InsertJobEvent(ctx, dbgen.InsertJobEventParams{JobID: c.In.JobID, Type: c.In.Type, Data: c.In.Data})
		if batcher.ItemFault(err) {
			return i, apperr.FromDB(err, "event")
		}
		if err != nil {
			return -1, apperr.FromDB(err, "event")
		}
		out[i] = fromDB(row)
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

// insertMany inserts the appends live[present...] in one statement and
// sets out for each. Within a job the statement inserts in the given
// order, so the job's returned rows, sorted by id, are its appends in
// order.
func insertMany(ctx context.Context, q *dbgen.Queries, live []*batcher.Call[NewEvent, Event], present []int, out []Event) error {
	type row struct {
		JobID uuid.UUID       `json:"job_id"`
		Type  string          `json:"type"`
		Data  json.RawMessage `json:"data"`
	}
	rows := make([]row, len(present))
	for k, i := range present {
		rows[k] = row{JobID: live[i].In.JobID, Type: live[i].In.Type, Data: live[i].In.Data}
	}
	body, err := json.Marshal(rows)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "internal error")
	}
	got, err := q.InsertJobEvents(ctx, body)
	if err != nil {
		return err
	}
	if len(got) != len(present) {
		return apperr.New(apperr.Internal, "the insert returned %d of %d events", len(got), len(present))
	}
	slices.SortFunc(got, func(a, b dbgen.JobEvent) int { return cmp.Compare(a.ID, b.ID) })
	byJob := map[uuid.UUID][]dbgen.JobEvent{}
	for _, r := range got {
		byJob[r.JobID] = append(byJob[r.JobID], r)
	}
	for _, i := range present {
		job := live[i].In.JobID
		out[i] = fromDB(byJob[job][0])
		byJob[job] = byJob[job][1:]
	}
	return nil
}
