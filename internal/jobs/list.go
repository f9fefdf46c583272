package jobs

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/dbgen"
)

// Page sizes.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// Cursor is an opaque position in a newest-first job listing: the
// created_at and id of the last job of the previous page. The empty
// Cursor is the first page.
type Cursor string

const cursorVersion = 1

// The sentinel position sorts after every real job, so the first page needs no
// separate query.
var (
	sentinelTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	sentinelID   = uuid.Max
)

func cursorOf(j Job) Cursor {
	b := make([]byte, 25)
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(j.CreatedAt.UnixMicro()))
	copy(b[9:], j.ID[:])
	return Cursor(base64.RawURLEncoding.EncodeToString(b))
}

// ParseCursor checks a cursor received from a client.
func ParseCursor(s string) (Cursor, error) {
	c := Cursor(s)
	if _, _, err := c.position(); err != nil {
		return "", err
	}
	return c, nil
}

func (c Cursor) position() (time.Time, uuid.UUID, error) {
	if c == "" {
		return sentinelTime, sentinelID, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil || len(b) != 25 || b[0] != cursorVersion {
		return time.Time{}, uuid.Nil, apperr.New(apperr.InvalidInput, "cursor is not valid")
	}
	id, _ := uuid.FromBytes(b[9:])
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))), id, nil
}

// Page is one page of a listing. Next is empty on the last page.
type Page struct {
	Jobs []Job  `json:"jobs"`
	Next Cursor `json:"next_cursor,omitempty"`
}

// ListByStatus returns jobs in one status, newest first. limit 0 means
// DefaultListLimit; larger than MaxListLimit is capped.
func (r *Repo) ListByStatus(ctx context.Context, status Status, after Cursor, limit int) (Page, error) {
	if !status.Valid() {
		return Page{}, invalid("unknown job status %q", status)
	}
	return list(after, limit, func(ts time.Time, id uuid.UUID, n int32) ([]dbgen.Job, error) {
		return r.q.ListJobsByStatus(ctx, dbgen.ListJobsByStatusParams{
			Status: dbgen.JobStatus(status), BeforeCreatedAt: ts, BeforeID: id, MaxRows: n,
		})
	})
}

// ListByOwner returns a user's jobs, newest first. A job made through an
// API key that has an owner carries that owner, so this is also what such
// a key may see.
func (r *Repo) ListByOwner(ctx context.Context, ownerID uuid.UUID, after Cursor, limit int) (Page, error) {
	return list(after, limit, func(ts time.Time, id uuid.UUID, n int32) ([]dbgen.Job, error) {
		return r.q.ListJobsByOwner(ctx, dbgen.ListJobsByOwnerParams{
			OwnerID: ownerID, BeforeCreatedAt: ts, BeforeID: id, MaxRows: n,
		})
	})
}

// ListByAPIKey returns the jobs one API key made, newest first: what an
// API key without an owner may see.
func (r *Repo) ListByAPIKey(ctx context.Context, apiKeyID uuid.UUID, after Cursor, limit int) (Page, error) {
	return list(after, limit, func(ts time.Time, id uuid.UUID, n int32) ([]dbgen.Job, error) {
		return r.q.ListJobsByAPIKey(ctx, dbgen.ListJobsByAPIKeyParams{
			ApiKeyID: apiKeyID, BeforeCreatedAt: ts, BeforeID: id, MaxRows: n,
		})
	})
}

func list(after Cursor, limit int, query func(time.Time, uuid.UUID, int32) ([]dbgen.Job, error)) (Page, error) {
	switch {
	case limit < 0:
		return Page{}, invalid("limit must not be negative")
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	ts, id, err := after.position()
	if err != nil {
		return Page{}, err
	}
	// One row more than asked says whether another page follows.
	rows, err := query(ts, id, int32(limit+1))
	if err != nil {
		return Page{}, apperr.FromDB(err, "job")
	}
	page := Page{Jobs: fromDBAll(rows)}
	if len(page.Jobs) > limit {
		page.Jobs = page.Jobs[:limit]
		page.Next = cursorOf(page.Jobs[limit-1])
	}
	return page, nil
}
