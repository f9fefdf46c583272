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
// the batch is one statement (appendMany): its own transaction, one round
// trip, unless a BeforeCommit hook needs an explicit one. Else each append
// is its own statement in one transaction, which finds an append at fault.
func (g *GroupCommit) try(ctx context.Context, live []*batcher.Call[NewEvent, Event], many bool) (int, error) {
	ids := make([]uuid.UUID, len(live))
	for i, c := range live {
		ids[i] = c.In.JobID
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)

	if many && g.hook == nil {
		out, errs, err := appendMany(ctx, g.db, live, ids)
		if err != nil {
			return -1, err
		}
		for i, c := range live {
			c.Out, c.Err = out[i], errs[i]
		}
		return -1, nil
	}

	tx, err := g.db.Begin(ctx)
	if err != nil {
		return -1, apperr.FromDB(err, "transaction")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var out []Event
	var errs []error
	if many {
		if out, errs, err = appendMany(ctx, tx, live, ids); err != nil {
			return -1, err
		}
	} else {
		q := dbgen.New(tx)
		locked, err := q.LockJobsForEvents(ctx, ids)
		if err != nil {
			return -1, apperr.FromDB(err, "job")
		}
		out, errs = make([]Event, len(live)), make([]error, len(live))
		for i, c := range live {
			if !slices.Contains(locked, c.In.JobID) {
				errs[i] = errJobNotFound()
				continue
			}
			row, err := q.InsertJobEvent(ctx, dbgen.InsertJobEventParams{JobID: c.In.JobID, Type: c.In.Type, Data: c.In.Data})
			if batcher.ItemFault(err) {
				return i, apperr.FromDB(err, "event")
			}
			if err != nil {
				return -1, apperr.FromDB(err, "event")
			}
			out[i] = fromDB(row)
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

func errJobNotFound() error { return apperr.New(apperr.NotFound, "job not found") }

// appendJobEvents appends many events in one statement, which can be its
// own transaction (the group commit's batch). It first locks the jobs ($1:
// distinct, in id order, so that two batches cannot deadlock), as
// LockJobsForEvents does: the array() is an uncorrelated sub-select, which
// Postgres runs to its end (an InitPlan) before the first row is inserted,
// so every event's ts and id are taken under its job's lock. Then it
// inserts the appends to the jobs that exist in the arrays' order ($2-$4,
// one element per append): within a job, ids and ts follow that order.
// Appends to a missing job insert nothing. It is not a sqlc query: sqlc
// cannot type a multi-array unnest.
const appendJobEvents = `insert into job_events (job_id, type, data)
select e.job_id, e.type, e.data::jsonb
from unnest($2::uuid[], $3::text[], $4::text[]) with ordinality as e(job_id, type, data, ord)
where e.job_id = any (array(select j.id from jobs j where j.id = any($1::uuid[]) order by j.id for no key update))
order by e.ord
returning *`

// appendMany appends live in one statement (appendJobEvents) and returns
// each append's event, or not_found for an append whose job is missing. A
// failure of the statement is errFaultAmongMany when some append's values
// are at fault.
func appendMany(ctx context.Context, db database.DB, live []*batcher.Call[NewEvent, Event], ids []uuid.UUID) ([]Event, []error, error) {
	jobIDs := make([]uuid.UUID, len(live))
	types := make([]string, len(live))
	data := make([]string, len(live))
	for i, c := range live {
		jobIDs[i], types[i], data[i] = c.In.JobID, c.In.Type, string(c.In.Data)
	}
	var got []dbgen.JobEvent
	rows, err := db.Query(ctx, appendJobEvents, ids, jobIDs, types, data)
	if err == nil {
		// returning * is the table's columns in order, as sqlc's model.
		got, err = pgx.CollectRows(rows, pgx.RowToStructByPos[dbgen.JobEvent])
	}
	switch {
	case batcher.ItemFault(err):
		return nil, nil, errFaultAmongMany
	case err != nil:
		return nil, nil, apperr.FromDB(err, "event")
	}
	slices.SortFunc(got, func(a, b dbgen.JobEvent) int { return cmp.Compare(a.ID, b.ID) })
	byJob := map[uuid.UUID][]dbgen.JobEvent{}
	for _, r := range got {
		byJob[r.JobID] = append(byJob[r.JobID], r)
	}
	out, errs := make([]Event, len(live)), make([]error, len(live))
	for i, c := range live {
		job := c.In.JobID
		rs, ok := byJob[job]
		switch {
		case !ok:
			errs[i] = errJobNotFound()
		case len(rs) == 0:
			return nil, nil, apperr.New(apperr.Internal, "the insert returned fewer events than appended")
		default:
			out[i] = fromDB(rs[0])
			byJob[job] = rs[1:]
		}
	}
	return out, errs, nil
}
