package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/storage"
)

// Limits checked before the database's own constraints.
const (
	MaxSourceURLLen      = 2048
	MaxParamsBytes       = 64 << 10
	MaxIdempotencyKeyLen = 255
	MaxMaxAttempts       = 100
	DefaultMaxAttempts   = 3
)

// CreateParams describe a new job. Exactly one of SourceURL and
// SourceObject is set.
type CreateParams struct {
	OwnerID  uuid.NullUUID // the Supabase user, if any
	APIKeyID uuid.NullUUID // the key that made the job, if any

	SourceURL    string // an http(s) video URL (YouTube)
	SourceObject string // an object name in the sources bucket

	Params      json.RawMessage // a JSON object; empty means {}
	MaxAttempts int             // 0 means DefaultMaxAttempts

	// IdempotencyKey makes Create replayable: within one owner (else one
	// API key) a key names one job. It needs an owner or an API key.
	IdempotencyKey string

	RunAt     *time.Time // not claimable before; nil means now
	ExpiresAt *time.Time // deleted by cleanup after; nil means never until finished
}

// Create inserts a queued job. If the idempotency key already names a job
// in the same scope, Create returns that job and created=false; concurrent
// replays of one key all get the same job.
func (r *Repo) Create(ctx context.Context, p CreateParams) (job Job, created bool, err error) {
	arg, err := p.toInsert()
	if err != nil {
		return Job{}, false, err
	}
	return r.insert(ctx, p, arg)
}

// insert runs a validated create: the insert, and on an idempotency
// conflict the read of the job that holds the key. Create and the group
// commit (groupcommit.go) share it.
func (r *Repo) insert(ctx context.Context, p CreateParams, arg dbgen.InsertJobParams) (Job, bool, error) {
	row, err := r.q.InsertJob(ctx, arg)
	if err == nil {
		return fromDB(row), true, nil
	}
	if !database.IsNoRows(err) || arg.IdempotencyKey == nil {
		return Job{}, false, apperr.FromDB(err, "job")
	}
	scope := p.OwnerID.UUID
	if !p.OwnerID.Valid {
		scope = p.APIKeyID.UUID
	}
	row, err = r.q.GetJobByIdempotencyKey(ctx, dbgen.GetJobByIdempotencyKeyParams{
		Scope: scope, IdempotencyKey: *arg.IdempotencyKey,
	})
	if database.IsNoRows(err) {
		// The job holding the key went away between the two statements,
		// or a caller's snapshot predates it.
		return Job{}, false, apperr.Wrap(err, apperr.Conflict, "a job with this idempotency key changed concurrently, try again")
	}
	if err != nil {
		return Job{}, false, apperr.FromDB(err, "job")
	}
	return fromDB(row), false, nil
}

func (p CreateParams) toInsert() (dbgen.InsertJobParams, error) {
	arg := dbgen.InsertJobParams{
		OwnerID:   p.OwnerID,
		ApiKeyID:  p.APIKeyID,
		RunAt:     p.RunAt,
		ExpiresAt: p.ExpiresAt,
	}
	switch {
	case p.SourceURL == "" && p.SourceObject == "":
		return arg, invalid("a job needs a source: source_url or source_object")
	case p.SourceURL != "" && p.SourceObject != "":
		return arg, invalid("give only one of source_url and source_object")
	case p.SourceURL != "":
		if err := checkSourceURL(p.SourceURL); err != nil {
			return arg, err
		}
		arg.SourceType = dbgen.JobSourceTypeYoutube
		arg.SourceUrl = &p.SourceURL
	default:
		if err := checkSourceObject(p.SourceObject, p.OwnerID, p.APIKeyID); err != nil {
			return arg, err
		}
		arg.SourceType = dbgen.JobSourceTypeUpload
		arg.SourceObject = &p.SourceObject
	}

	params, err := checkParams(p.Params)
	if err != nil {
		return arg, err
	}
	arg.Params = params

	switch {
	case p.MaxAttempts == 0:
		arg.MaxAttempts = DefaultMaxAttempts
	case p.MaxAttempts < 1 || p.MaxAttempts > MaxMaxAttempts:
		return arg, invalid("max_attempts must be between 1 and %d", MaxMaxAttempts)
	default:
		arg.MaxAttempts = int32(p.MaxAttempts)
	}

	if p.IdempotencyKey != "" {
		if len(p.IdempotencyKey) > MaxIdempotencyKeyLen || !utf8.ValidString(p.IdempotencyKey) {
			return arg, invalid("idempotency_key must be 1 to %d bytes of UTF-8", MaxIdempotencyKeyLen)
		}
		// The unique index treats a null scope as distinct from every
		// other, so a key without an owner or API key would never match.
		if !p.OwnerID.Valid && !p.APIKeyID.Valid {
			return arg, invalid("idempotency_key needs an owner or an API key")
		}
		arg.IdempotencyKey = &p.IdempotencyKey
	}

	if p.RunAt != nil && p.ExpiresAt != nil && !p.ExpiresAt.After(*p.RunAt) {
		return arg, invalid("expires_at must be after run_at")
	}
	return arg, nil
}

func checkSourceURL(s string) error {
	if len(s) > MaxSourceURLLen {
		return invalid("source_url must be at most %d bytes", MaxSourceURLLen)
	}
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return invalid("source_url must be an http or https URL")
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return invalid("source_url must not contain spaces")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return invalid("source_url is not a valid URL")
	}
	if u.User != nil {
		return invalid("source_url must not carry credentials")
	}
	return nil
}

// InOwnedFolder reports whether name lies in a folder SourceFolder gives
// to someone: "<user uid>/..." or "keys/<api key id>/...".
func InOwnedFolder(name string) bool {
	first, rest, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	if first == "keys" {
		id, _, ok := strings.Cut(rest, "/")
		return ok && uuid.Validate(id) == nil
	}
	return uuid.Validate(first) == nil
}

// SourceFolder returns the folder of the sources bucket that an upload
// job with this owner and API key takes its source from: "<owner>/" for a
// job with an owner, "keys/<api key id>/" for one made by a key without
// an owner, "" (anywhere) for a job with neither, which only admin keys
// see. The database's jobs_source_object_folder_check holds the same
// rule for every writer.
func SourceFolder(owner, apiKey uuid.NullUUID) string {
	switch {
	case owner.Valid:
		return owner.UUID.String() + "/"
	case apiKey.Valid:
		return "keys/" + apiKey.UUID.String() + "/"
	}
	return ""
}

func checkSourceObject(s string, owner, apiKey uuid.NullUUID) error {
	if err := storage.ValidateObjectName(s); err != nil {
		return invalid("source_object: %s", apperr.EnvelopeOf(err).Message)
	}
	if folder := SourceFolder(owner, apiKey); !strings.HasPrefix(s, folder) {
		return invalid("source_object must lie in the job's own folder of the sources bucket, %s", folder)
	}
	return nil
}

func checkParams(p json.RawMessage) (json.RawMessage, error) {
	if len(p) == 0 {
		return json.RawMessage("{}"), nil
	}
	if len(p) > MaxParamsBytes {
		return nil, invalid("params must be at most %d bytes", MaxParamsBytes)
	}
	if !json.Valid(p) {
		return nil, invalid("params is not valid JSON")
	}
	if t := bytes.TrimLeft(p, " \t\r\n"); t[0] != '{' {
		return nil, invalid("params must be a JSON object")
	}
	return p, nil
}

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidInput, format, args...)
}
