package client

import (
	"encoding/json"
	"time"
)

// Status is where a job is in its life.
type Status string

// The job statuses.
const (
	StatusQueued     Status = "queued"
	StatusProcessing Status = "processing"
	StatusDone       Status = "done"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
)

// Final reports whether no further change can leave s.
func (s Status) Final() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCanceled
}

// Job is a clip job, as the daemon returns it and as PostgREST serves the
// jobs table (the JSON names are the column names).
type Job struct {
	ID              string          `json:"id"`
	OwnerID         *string         `json:"owner_id"`
	APIKeyID        *string         `json:"api_key_id"`
	SourceType      string          `json:"source_type"` // "youtube" (source_url) or "upload" (source_object)
	SourceURL       *string         `json:"source_url"`
	SourceObject    *string         `json:"source_object"` // a path in the sources bucket
	Params          json.RawMessage `json:"params"`        // the client's instructions, a JSON object
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
	ResultKeys      []string        `json:"result_keys"` // object paths in the results bucket
	ErrorCode       *string         `json:"error_code"`
	ErrorMessage    *string         `json:"error_message"`
	CreatedAt       time.Time       `json:"created_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	ExpiresAt       *time.Time      `json:"expires_at"`
}

// Event is one entry of a job's append-only event stream: status changes
// ("status", data {"from","to"}), progress ("progress", {"progress"}),
// and a worker's own events ("log", "stage.encode", ...).
type Event struct {
	ID    int64           `json:"id"`
	JobID string          `json:"job_id"`
	TS    time.Time       `json:"ts"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// SignedURL is a short-lived URL to one object in Storage. Use Path (as
// the server returned it) wherever the object must be named again, e.g.
// in Worker.Complete: the server decides where objects live.
type SignedURL struct {
	Bucket    string    `json:"bucket"`
	Path      string    `json:"path"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}
