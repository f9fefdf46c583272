package apikeys

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// Causes of an Authenticate refusal beyond ErrMalformed and ErrChecksum,
// for errors.Is and metrics. Callers see code unauthorized and the
// messages "invalid api key", "api key revoked" or "api key expired".
var (
	ErrUnknownKey  = errors.New("no api key has this lookup id")
	ErrWrongSecret = errors.New("api key secret does not match")
	ErrRevoked     = errors.New("api key is revoked")
	ErrExpired     = errors.New("api key is expired")
)

// Key is an API key as callers see it. It holds neither the secret nor
// its hash, so it is safe to log and to render as JSON.
type Key struct {
	ID                 uuid.UUID  `json:"id"`
	LookupID           string     `json:"lookup_id"`
	OwnerID            *uuid.UUID `json:"owner_id"` // nil: a service key with no user
	Name               string     `json:"name"`
	Scopes             []Scope    `json:"scopes"`
	RateLimitPerMinute *int32     `json:"rate_limit_per_minute"` // nil: the daemon default
	CreatedAt          time.Time  `json:"created_at"`
	LastUsedAt         *time.Time `json:"last_used_at"`
	ExpiresAt          *time.Time `json:"expires_at"`
	RevokedAt          *time.Time `json:"revoked_at"`
	RotatedFrom        *uuid.UUID `json:"rotated_from"` // the key this one replaced
}

// CheckActive returns the error Authenticate gives for a key that is
// revoked, or expired at now; nil if the key is usable at now. A cache in
// front of Authenticate re-checks a cached key's expiry with it.
func (k Key) CheckActive(now time.Time) error {
	if k.RevokedAt != nil {
		return apperr.Wrap(ErrRevoked, apperr.Unauthorized, "api key revoked")
	}
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		return apperr.Wrap(ErrExpired, apperr.Unauthorized, "api key expired")
	}
	return nil
}

// CreateParams describe a new key. Optional fields are nil when unset.
type CreateParams struct {
	OwnerID            *uuid.UUID
	Name               string // 1 to 200 characters, not blank
	Scopes             []Scope
	RateLimitPerMinute *int32     // 1 to 1 000 000
	ExpiresAt          *time.Time // in the future
}

// Options tune a Repo. Zero values take the defaults.
type Options struct {
	// Params for new hashes; default DefaultParams. Existing hashes are
	// verified with the parameters they were made with.
	Params Params
	// MaxConcurrentVerifications bounds argon2id verifications running at
	// once (each holds Params.MemoryKiB of memory); default GOMAXPROCS,
	// beyond which more concurrency adds memory but no throughput.
	MaxConcurrentVerifications int
}

// Repo stores and checks API keys. It works on a pool or inside a
// caller's transaction.
type Repo struct {
	db     database.DB
	q      *dbgen.Queries
	params Params
	verify chan struct{}
}

// NewRepo returns a Repo over db. Parameters out of range are invalid_input.
func NewRepo(db database.DB, opts Options) (*Repo, error) {
	if opts.Params == (Params{}) {
		opts.Params = DefaultParams
	}
	if err := opts.Params.validateNew(); err != nil {
		return nil, apperr.Wrap(err, apperr.InvalidInput, "argon2id parameters are out of range")
	}
	if opts.MaxConcurrentVerifications <= 0 {
		opts.MaxConcurrentVerifications = runtime.GOMAXPROCS(0)
	}
	return &Repo{
		db:     db,
		q:      dbgen.New(db),
		params: opts.Params,
		verify: make(chan struct{}, opts.MaxConcurrentVerifications),
	}, nil
}

const (
	what            = "api key"
	maxNameLen      = 200
	maxRateLimit    = 1_000_000
	lookupIDRetries = 3
	touchBatchSize  = 1000
)

// Create makes a key, stores the argon2id hash of its secret and returns
// the key with its plaintext, which is never stored and cannot be
// recovered: show it to the owner once.
func (r *Repo) Create(ctx context.Context, p CreateParams) (Key, string, error) {
	scopes, err := NormalizeScopes(p.Scopes)
	if err != nil {
		return Key{}, "", err
	}
	if err := validateCreate(p); err != nil {
		return Key{}, "", err
	}
	return r.insert(ctx, r.q, dbgen.CreateAPIKeyParams{
		OwnerID:            nullUUID(p.OwnerID),
		Name:               p.Name,
		Scopes:             scopesToDB(scopes),
		RateLimitPerMinute: p.RateLimitPerMinute,
		ExpiresAt:          p.ExpiresAt,
	})
}

func validateCreate(p CreateParams) error {
	if strings.TrimSpace(p.Name) == "" {
		return apperr.New(apperr.InvalidInput, "api key name is empty")
	}
	if !utf8.ValidString(p.Name) || strings.ContainsRune(p.Name, 0) {
		return apperr.New(apperr.InvalidInput, "api key name is not valid UTF-8 text")
	}
	if utf8.RuneCountInString(p.Name) > maxNameLen {
		return apperr.New(apperr.InvalidInput, "api key name is longer than %d characters", maxNameLen)
	}
	if rl := p.RateLimitPerMinute; rl != nil && (*rl < 1 || *rl > maxRateLimit) {
		return apperr.New(apperr.InvalidInput, "rate limit must be between 1 and %d per minute", maxRateLimit)
	}
	if p.ExpiresAt != nil && !p.ExpiresAt.After(time.Now()) {
		return apperr.New(apperr.InvalidInput, "expiry must be in the future")
	}
	return nil
}

// insert draws a token, hashes it and inserts the row, drawing again on
// the (about 2^-60 per existing key) chance of a lookup id collision.
func (r *Repo) insert(ctx context.Context, q *dbgen.Queries, arg dbgen.CreateAPIKeyParams) (Key, string, error) {
	for range lookupIDRetries {
		tok, err := Generate()
		if err != nil {
			return Key{}, "", err
		}
		hash, err := Hash(tok.secret, r.params)
		if err != nil {
			return Key{}, "", err
		}
		arg.LookupID, arg.Hash = tok.lookupID, hash
		row, err := q.CreateAPIKey(ctx, arg)
		if database.IsNoRows(err) {
			continue
		}
		if err != nil {
			return Key{}, "", apperr.FromDB(err, what)
		}
		return fromRow(keyRow(row)), tok.Plaintext(), nil
	}
	return Key{}, "", apperr.New(apperr.Internal, "could not draw an unused api key lookup id")
}

// Get returns the key with id, or not_found.
func (r *Repo) Get(ctx context.Context, id uuid.UUID) (Key, error) {
	row, err := r.q.GetAPIKey(ctx, id)
	if err != nil {
		return Key{}, apperr.FromDB(err, what)
	}
	return fromRow(keyRow(row)), nil
}

// GetByLookupID returns the key with the public lookup id, or not_found.
func (r *Repo) GetByLookupID(ctx context.Context, lookupID string) (Key, error) {
	row, err := r.q.GetAPIKeyByLookupID(ctx, lookupID)
	if err != nil {
		return Key{}, apperr.FromDB(err, what)
	}
	return fromRow(keyRow(row)), nil
}

// List returns the keys of ownerID, or every key when ownerID is nil,
// newest first. Revoked and expired keys are included.
func (r *Repo) List(ctx context.Context, ownerID *uuid.UUID) ([]Key, error) {
	var rows []keyRow
	if ownerID == nil {
		rs, err := r.q.ListAPIKeys(ctx)
		if err != nil {
			return nil, apperr.FromDB(err, what)
		}
		for _, row := range rs {
			rows = append(rows, keyRow(row))
		}
	} else {
		rs, err := r.q.ListAPIKeysByOwner(ctx, *ownerID)
		if err != nil {
			return nil, apperr.FromDB(err, what)
		}
		for _, row := range rs {
			rows = append(rows, keyRow(row))
		}
	}
	keys := make([]Key, len(rows))
	for i, row := range rows {
		keys[i] = fromRow(row)
	}
	return keys, nil
}

// ListWithoutOwner returns the keys that have no owner (service keys),
// newest first, revoked and expired ones included.
func (r *Repo) ListWithoutOwner(ctx context.Context) ([]Key, error) {
	rs, err := r.q.ListAPIKeysWithoutOwner(ctx)
	if err != nil {
		return nil, apperr.FromDB(err, what)
	}
	keys := make([]Key, len(rs))
	for i, row := range rs {
		keys[i] = fromRow(keyRow(row))
	}
	return keys, nil
}

// TouchLastUsed records that key id was used at at. last_used_at only
// moves forward, so late or replayed writes are harmless. Unknown id:
// not_found.
func (r *Repo) TouchLastUsed(ctx context.Context, id uuid.UUID, at time.Time) error {
	found, err := r.q.TouchAPIKeyLastUsed(ctx, dbgen.TouchAPIKeyLastUsedParams{ID: id, UsedAt: at})
	if err != nil {
		return apperr.FromDB(err, what)
	}
	if !found {
		return apperr.New(apperr.NotFound, "api key not found")
	}
	return nil
}

// TouchLastUsedBatch is TouchLastUsed for many keys, for a write-behind
// buffer: ids that no longer exist are skipped, not reported. Statements
// take at most 1000 keys each, in id order, so concurrent flushes from
// several replicas lock rows in the same order.
func (r *Repo) TouchLastUsedBatch(ctx context.Context, used map[uuid.UUID]time.Time) error {
	ids := make([]uuid.UUID, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(string(a[:]), string(b[:])) })
	for chunk := range slices.Chunk(ids, touchBatchSize) {
		ats := make([]time.Time, len(chunk))
		for i, id := range chunk {
			ats[i] = used[id]
		}
		if _, err := r.q.TouchAPIKeysLastUsed(ctx, dbgen.TouchAPIKeysLastUsedParams{Ids: chunk, UsedAts: ats}); err != nil {
			return apperr.FromDB(err, what)
		}
	}
	return nil
}

// Revoke stops key id from authenticating, at once and for good. Revoking
// a revoked key is not an error and keeps the first revocation time, so a
// retried request is safe; the returned key shows when it was revoked.
// Unknown id: not_found.
func (r *Repo) Revoke(ctx context.Context, id uuid.UUID) (Key, error) {
	row, err := r.q.RevokeAPIKey(ctx, id)
	if err != nil {
		return Key{}, apperr.FromDB(err, what)
	}
	return fromRow(keyRow(row)), nil
}

// Rotate replaces key id with a new key that has the same owner, name,
// scopes, rate limit and expiry, and rotated_from = id; it returns the new
// key and its plaintext. The old key keeps working for grace, then expires
// (grace 0: at once); an earlier expiry it already had is kept. All in one
// transaction. A revoked or expired key cannot be rotated
// (invalid_transition); a key still in its grace period can be, which
// gives it another successor.
func (r *Repo) Rotate(ctx context.Context, id uuid.UUID, grace time.Duration) (Key, string, error) {
	if grace < 0 {
		return Key{}, "", apperr.New(apperr.InvalidInput, "grace period is negative")
	}
	var (
		key       Key
		plaintext string
	)
	err := database.InTx(ctx, r.db, func(tx pgx.Tx) error {
		q := r.q.WithTx(tx)
		row, err := q.LockAPIKeyForRotation(ctx, id)
		if err != nil {
			return apperr.FromDB(err, what)
		}
		old := fromRow(keyRow{
			ID: row.ID, LookupID: row.LookupID, OwnerID: row.OwnerID, Name: row.Name,
			Scopes: row.Scopes, RateLimitPerMinute: row.RateLimitPerMinute, CreatedAt: row.CreatedAt,
			LastUsedAt: row.LastUsedAt, ExpiresAt: row.ExpiresAt, RevokedAt: row.RevokedAt,
			RotatedFrom: row.RotatedFrom,
		})
		if old.RevokedAt != nil {
			return apperr.New(apperr.InvalidTransition, "a revoked api key cannot be rotated")
		}
		if err := old.CheckActive(row.CheckedAt); err != nil {
			return apperr.New(apperr.InvalidTransition, "an expired api key cannot be rotated")
		}
		key, plaintext, err = r.insert(ctx, q, dbgen.CreateAPIKeyParams{
			OwnerID:            row.OwnerID,
			Name:               row.Name,
			Scopes:             row.Scopes,
			RateLimitPerMinute: row.RateLimitPerMinute,
			ExpiresAt:          row.ExpiresAt,
			RotatedFrom:        uuid.NullUUID{UUID: id, Valid: true},
		})
		if err != nil {
			return err
		}
		err = q.ExpireAPIKeyWithin(ctx, dbgen.ExpireAPIKeyWithinParams{ID: id, GraceSeconds: grace.Seconds()})
		return apperr.FromDB(err, what)
	})
	if err != nil {
		return Key{}, "", err
	}
	return key, plaintext, nil
}

// Authenticate returns the key a presented token belongs to, or
// unauthorized: "invalid api key" for a malformed token, an unknown lookup
// id or a wrong secret; "api key revoked"; "api key expired" (judged by
// the database clock). Revocation and expiry are reported only once the
// secret is proven, so a lookup id alone reveals nothing about its key.
// An unknown lookup id is refused without hashing: the answer comes
// faster, but lookup ids are public anyway, and hashing for every garbage
// token would hand out 19 MiB and 24 ms of work per request. It reads the
// database and nothing else (not even last_used_at), so a cache can sit in
// front of it. A malformed stored hash is internal.
func (r *Repo) Authenticate(ctx context.Context, token string) (Key, error) {
	lookupID, secret, err := Parse(token)
	if err != nil {
		return Key{}, err
	}
	row, err := r.q.GetAPIKeyForAuth(ctx, lookupID)
	if database.IsNoRows(err) {
		return Key{}, invalidKey(ErrUnknownKey)
	}
	if err != nil {
		return Key{}, apperr.FromDB(err, what)
	}
	ok, err := r.verifyLimited(ctx, secret, row.Hash)
	if err != nil {
		return Key{}, err
	}
	if !ok {
		return Key{}, invalidKey(ErrWrongSecret)
	}
	key := fromRow(keyRow{
		ID: row.ID, LookupID: row.LookupID, OwnerID: row.OwnerID, Name: row.Name,
		Scopes: row.Scopes, RateLimitPerMinute: row.RateLimitPerMinute, CreatedAt: row.CreatedAt,
		LastUsedAt: row.LastUsedAt, ExpiresAt: row.ExpiresAt, RevokedAt: row.RevokedAt,
		RotatedFrom: row.RotatedFrom,
	})
	if err := key.CheckActive(row.CheckedAt); err != nil {
		return Key{}, err
	}
	return key, nil
}

func (r *Repo) verifyLimited(ctx context.Context, secret, phc string) (bool, error) {
	select {
	case r.verify <- struct{}{}:
	case <-ctx.Done():
		return false, apperr.FromDB(ctx.Err(), what)
	}
	defer func() { <-r.verify }()
	return Verify(secret, phc)
}

// keyRow has the fields of every generated row type that selects the
// public columns, so each converts to it directly.
type keyRow struct {
	ID                 uuid.UUID
	LookupID           string
	OwnerID            uuid.NullUUID
	Name               string
	Scopes             []string
	RateLimitPerMinute *int32
	CreatedAt          time.Time
	LastUsedAt         *time.Time
	ExpiresAt          *time.Time
	RevokedAt          *time.Time
	RotatedFrom        uuid.NullUUID
}

func fromRow(r keyRow) Key {
	return Key{
		ID:                 r.ID,
		LookupID:           r.LookupID,
		OwnerID:            uuidPtr(r.OwnerID),
		Name:               r.Name,
		Scopes:             scopesFromDB(r.Scopes),
		RateLimitPerMinute: r.RateLimitPerMinute,
		CreatedAt:          r.CreatedAt,
		LastUsedAt:         r.LastUsedAt,
		ExpiresAt:          r.ExpiresAt,
		RevokedAt:          r.RevokedAt,
		RotatedFrom:        uuidPtr(r.RotatedFrom),
	}
}

func uuidPtr(n uuid.NullUUID) *uuid.UUID {
	if !n.Valid {
		return nil
	}
	return &n.UUID
}

func nullUUID(p *uuid.UUID) uuid.NullUUID {
	if p == nil {
		return uuid.NullUUID{}
	}
	return uuid.NullUUID{UUID: *p, Valid: true}
}
