// Package events appends to and reads the per-job event streams in
// job_events, in the order their transactions commit.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// Limits checked before the database's own constraints.
const (
	MaxDataBytes     = 64 << 10
	MaxBatch         = 10000
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Event types the schema's triggers write on status and progress changes;
// callers cannot append them, so a stream's status events are always true.
const (
	TypeStatus   = "status"
	TypeProgress = "progress"
)

var typePattern = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,63}$`)

// Event is one entry of a job's stream.
type Event struct {
	ID    int64           `json:"id"`
	JobID uuid.UUID       `json:"job_id"`
	TS    time.Time       `json:"ts"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// NewEvent is an event to append.
type NewEvent struct {
	JobID uuid.UUID
	Type  string
	Data  json.RawMessage // a JSON object; empty means {}
}

// Repo appends and lists events through one database handle.
type Repo struct {
	db database.DB
	q  *dbgen.Queries
}

// New returns a Repo on db: a pool, a connection or a transaction.
func New(db database.DB) *Repo { return &Repo{db: db, q: dbgen.New(db)} }

// WithDB returns a copy of r bound to db, typically a caller's transaction.
func (r *Repo) WithDB(db database.DB) *Repo { return New(db) }

// Ordering. A reader streams a job's events by (ts, id) and resumes after
// the last one it saw, so an event must never commit behind one already
// visible. Both ts (clock_timestamp) and id (a sequence) are taken at
// insert, not at commit: two unsynchronized writers could commit in the
// other order, and a resuming reader would skip the late one for good.
// Appends therefore lock the job row FOR NO KEY UPDATE, which conflicts
// with itself and with the lock every UPDATE of the job (and so every
// trigger-written status and progress event) takes: writers of one job's
// events are serialized until commit. Foreign key checks alone would not
// do it: two inserts' FOR KEY SHARE locks do not conflict. The lock is the
// weakest that does, so it leaves other tables' foreign key checks alone.

// Append adds one event to a job's stream. A job that does not exist (or
// was deleted) is not_found.
func (r *Repo) Append(ctx context.Context, jobID uuid.UUID, typ string, data json.RawMessage) (Event, error) {
	data, err := check(NewEvent{JobID: jobID, Type: typ, Data: data})
	if err != nil {
		return Event{}, err
	}
	var ev Event
	err = database.InTx(ctx, r.db, func(tx pgx.Tx) error {
		q := r.q.WithTx(tx)
		if _, err := q.LockJobForEvents(ctx, jobID); err != nil {
			return apperr.FromDB(err, "job")
		}
		row, err := q.InsertJobEvent(ctx, dbgen.InsertJobEventParams{JobID: jobID, Type: typ, Data: data})
		if err != nil {
			return apperr.FromDB(err, "event")
		}
		ev = fromDB(row)
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// AppendBatch adds events, possibly of many jobs, with one COPY in one
// transaction: all or none. Within a job the events keep their slice
// order. Any missing job makes the whole batch not_found.
func (r *Repo) AppendBatch(ctx context.Context, evs []NewEvent) (int64, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	if len(evs) > MaxBatch {
		return 0, apperr.New(apperr.InvalidInput, "at most %d events in one batch", MaxBatch)
	}
	rows := make([][]any, len(evs))
	ids := make([]uuid.UUID, 0, len(evs))
	for i, ev := range evs {
		data, err := check(ev)
		if err != nil {
			return 0, apperr.New(apperr.InvalidInput, "event %d: %s", i, apperr.EnvelopeOf(err).Message)
		}
		rows[i] = []any{ev.JobID, ev.Type, data}
		ids = append(ids, ev.JobID)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)

	var n int64
	err := database.InTx(ctx, r.db, func(tx pgx.Tx) error {
		locked, err := r.q.WithTx(tx).LockJobsForEvents(ctx, ids)
		if err != nil {
			return apperr.FromDB(err, "job")
		}
		if len(locked) != len(ids) {
			return apperr.New(apperr.NotFound, "%d of the batch's jobs not found", len(ids)-len(locked))
		}
		n, err = tx.CopyFrom(ctx, pgx.Identifier{"job_events"}, []string{"job_id", "type", "data"}, pgx.CopyFromRows(rows))
		return apperr.FromDB(err, "event")
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ListByJob returns a job's events in stream order, after the event
// afterID (0: from the start). Paging and resuming both pass the last id
// seen. An afterID that is not an event of the job is invalid_input; a
// job that does not exist is not_found.
func (r *Repo) ListByJob(ctx context.Context, jobID uuid.UUID, afterID int64, limit int) ([]Event, error) {
	switch {
	case limit < 0 || afterID < 0:
		return nil, apperr.New(apperr.InvalidInput, "limit and after id must not be negative")
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	// Every real event sorts after the zero position.
	var afterTS time.Time
	if afterID > 0 {
		ts, err := r.q.GetJobEventPosition(ctx, dbgen.GetJobEventPositionParams{JobID: jobID, ID: afterID})
		if database.IsNoRows(err) {
			return nil, r.missing(ctx, jobID, apperr.New(apperr.InvalidInput, "event %d is not an event of job %s", afterID, jobID))
		}
		if err != nil {
			return nil, apperr.FromDB(err, "event")
		}
		afterTS = ts
	}
	rows, err := r.q.ListJobEvents(ctx, dbgen.ListJobEventsParams{
		JobID: jobID, AfterTs: afterTS, AfterID: afterID, MaxRows: int32(limit),
	})
	if err != nil {
		return nil, apperr.FromDB(err, "event")
	}
	if len(rows) == 0 && afterID == 0 {
		// Every job has its creation event, so an empty stream is a
		// missing job.
		return nil, r.missing(ctx, jobID, nil)
	}
	out := make([]Event, len(rows))
	for i, e := range rows {
		out[i] = fromDB(e)
	}
	return out, nil
}

// missing returns not_found when the job does not exist, else otherwise.
func (r *Repo) missing(ctx context.Context, jobID uuid.UUID, otherwise error) error {
	ok, err := r.q.JobExists(ctx, jobID)
	if err != nil {
		return apperr.FromDB(err, "job")
	}
	if !ok {
		return apperr.New(apperr.NotFound, "job not found")
	}
	return otherwise
}

func check(ev NewEvent) (json.RawMessage, error) {
	if !typePattern.MatchString(ev.Type) {
		return nil, apperr.New(apperr.InvalidInput, "event type must match %s", typePattern)
	}
	if ev.Type == TypeStatus || ev.Type == TypeProgress {
		return nil, apperr.New(apperr.InvalidInput, "event type %q is written by the database only", ev.Type)
	}
	if len(ev.Data) == 0 {
		return json.RawMessage("{}"), nil
	}
	if len(ev.Data) > MaxDataBytes {
		return nil, apperr.New(apperr.InvalidInput, "event data must be at most %d bytes", MaxDataBytes)
	}
	if !json.Valid(ev.Data) {
		return nil, apperr.New(apperr.InvalidInput, "event data is not valid JSON")
	}
	if t := bytes.TrimLeft(ev.Data, " \t\r\n"); t[0] != '{' {
		return nil, apperr.New(apperr.InvalidInput, "event data must be a JSON object")
	}
	return ev.Data, nil
}

func fromDB(e dbgen.JobEvent) Event {
	return Event{ID: e.ID, JobID: e.JobID, TS: e.Ts, Type: e.Type, Data: e.Data}
}
