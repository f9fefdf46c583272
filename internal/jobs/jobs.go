// Package jobs stores clip jobs and moves them through their life: create
// (idempotently), list, claim, heartbeat, progress, complete, fail, cancel
// and requeue when a worker goes silent. Every status or progress change is
// one UPDATE; the schema's triggers check the transition and write its event
// in the same statement.
package jobs

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// Repo reads and writes jobs through one database handle.
type Repo struct {
	db database.DB
	q  *dbgen.Queries
}

// New returns a Repo on db: a pool, a connection or a transaction.
func New(db database.DB) *Repo { return &Repo{db: db, q: dbgen.New(db)} }

// WithDB returns a copy of r bound to db, typically a caller's transaction.
func (r *Repo) WithDB(db database.DB) *Repo { return New(db) }

// Status is where a job is in its life.
type Status string

// The statuses of public.job_status.
const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusDone       Status = "done"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return dbgen.JobStatus(s).Valid() }

// Final reports whether no further transition can leave s.
func (s Status) Final() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCanceled
}

// SourceType says where a job's video comes from.
type SourceType string

// The source types of public.job_source_type.
const (
	SourceYouTube SourceType = "youtube"
	SourceUpload  SourceType = "upload"
)

// Job is one clip job. JSON names are the column names, the same shape
// frontends read through PostgREST.
type Job struct {
	ID              uuid.UUID       `json:"id"`
	OwnerID         uuid.NullUUID   `json:"owner_id"`
	APIKeyID        uuid.NullUUID   `json:"api_key_id"`
	SourceType      SourceType      `json:"source_type"`
	SourceURL       *string         `json:"source_url"`
	SourceObject    *string         `json:"source_object"`
	Params          json.RawMessage `json:"params"`
	Status          Status          `json:"status"`
	Attempts        int             `json:"attempts"`
	MaxAttempts     int             `json:"max_attempts"`
	IdempotencyKey  *string         `json:"idempotency_key"`
	RunAt           time.Time       `json:"run_at"`
	WorkerID        *string         `json:"worker_id"`
	ClaimedAt       *time.Time      `json:"claimed_at"`
	LastHeartbeatAt *time.Time      `json:"last_heartbeat_at"`
	StartedAt       *time.Time      `json:"started_at"`
	FinishedAt      *time.Time      `json:"finished_at"`
	Progress        int             `json:"progress"`
	ResultKeys      []string        `json:"result_keys"`
	ErrorCode       *string         `json:"error_code"`
	ErrorMessage    *string         `json:"error_message"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	ExpiresAt       *time.Time      `json:"expires_at"`
}

func fromDB(j dbgen.Job) Job {
	keys := j.ResultKeys
	if keys == nil {
		keys = []string{}
	}
	return Job{
		ID:              j.ID,
		OwnerID:         j.OwnerID,
		APIKeyID:        j.ApiKeyID,
		SourceType:      SourceType(j.SourceType),
		SourceURL:       j.SourceUrl,
		SourceObject:    j.SourceObject,
		Params:          j.Params,
		Status:          Status(j.Status),
		Attempts:        int(j.Attempts),
		MaxAttempts:     int(j.MaxAttempts),
		IdempotencyKey:  j.IdempotencyKey,
		RunAt:           j.RunAt,
		WorkerID:        j.WorkerID,
		ClaimedAt:       j.ClaimedAt,
		LastHeartbeatAt: j.LastHeartbeatAt,
		StartedAt:       j.StartedAt,
		FinishedAt:      j.FinishedAt,
		Progress:        int(j.Progress),
		ResultKeys:      keys,
		ErrorCode:       j.ErrorCode,
		ErrorMessage:    j.ErrorMessage,
		CreatedAt:       j.CreatedAt,
		UpdatedAt:       j.UpdatedAt,
		ExpiresAt:       j.ExpiresAt,
	}
}

func fromDBAll(rows []dbgen.Job) []Job {
	out := make([]Job, len(rows))
	for i, j := range rows {
		out[i] = fromDB(j)
	}
	return out
}
