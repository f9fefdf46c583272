package apikeys_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/pgtest"
)

type testBundle struct {
	db    database.DB
	repo  *apikeys.Repo
	owner uuid.UUID
}

// setup gives a test a repository with the real argon2id parameters inside
// a transaction that is rolled back, and one user to own keys.
func setup(t *testing.T) testBundle {
	t.Helper()
	return setupOn(t, pgtest.Tx(t))
}

func setupOn(t *testing.T, db database.DB) testBundle {
	t.Helper()
	repo, err := apikeys.NewRepo(db, apikeys.Options{})
	require.NoError(t, err)
	return testBundle{db: db, repo: repo, owner: newUser(t, db)}
}

func newUser(t *testing.T, db database.DB) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := db.Exec(context.Background(), "insert into auth.users (id, email) values ($1, $2)", id, id.String()+"@example.test")
	require.NoError(t, err)
	return id
}

func ptr[T any](v T) *T { return &v }

func (b testBundle) create(t *testing.T, p apikeys.CreateParams) (apikeys.Key, string) {
	t.Helper()
	if p.Name == "" {
		p.Name = "test key"
	}
	key, plaintext, err := b.repo.Create(context.Background(), p)
	require.NoError(t, err)
	return key, plaintext
}

// exec runs raw SQL: tests use it to move clocks, never the code under test.
func (b testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.db.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func (b testBundle) storedHash(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var hash string
	require.NoError(t, b.db.QueryRow(context.Background(), "select hash from api_keys where id = $1", id).Scan(&hash))
	return hash
}

// requireNoLeak checks that neither err's text nor its envelope holds any
// of the secrets.
func requireNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	require.Error(t, err)
	for _, s := range secrets {
		require.NotContains(t, err.Error(), s)
		require.NotContains(t, apperr.EnvelopeOf(err).Message, s)
	}
}

func requireRefused(t *testing.T, err error, message string, cause error, secrets ...string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	require.Equal(t, message, apperr.EnvelopeOf(err).Message)
	require.ErrorIs(t, err, cause)
	requireNoLeak(t, err, secrets...)
}

func TestCreateStoresOnlyTheHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	expires := time.Now().Add(24 * time.Hour).Truncate(time.Microsecond)
	key, plaintext := b.create(t, apikeys.CreateParams{
		OwnerID:            &b.owner,
		Name:               "render farm",
		Scopes:             []apikeys.Scope{apikeys.ScopeJobsWrite, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite},
		RateLimitPerMinute: ptr(int32(600)),
		ExpiresAt:          &expires,
	})
	lookupID, secret, err := apikeys.Parse(plaintext)
	require.NoError(t, err)
	require.Equal(t, lookupID, key.LookupID)
	require.Equal(t, &b.owner, key.OwnerID)
	require.Equal(t, "render farm", key.Name)
	require.Equal(t, []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite}, key.Scopes)
	require.Equal(t, int32(600), *key.RateLimitPerMinute)
	require.True(t, expires.Equal(*key.ExpiresAt))
	require.Nil(t, key.LastUsedAt)
	require.Nil(t, key.RevokedAt)
	require.Nil(t, key.RotatedFrom)

	hash := b.storedHash(t, key.ID)
	require.Regexp(t, `^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`, hash)
	ok, err := apikeys.Verify(secret, hash)
	require.NoError(t, err)
	require.True(t, ok)

	// The whole row, as text, holds neither the secret nor the token.
	var row string
	require.NoError(t, b.db.QueryRow(ctx, "select k::text from api_keys k where id = $1", key.ID).Scan(&row))
	require.Contains(t, row, lookupID)
	require.NotContains(t, row, secret)
	require.NotContains(t, row, secret[:16])
	require.NotContains(t, row, plaintext)

	// Nor does the public model.
	js, err := json.Marshal(key)
	require.NoError(t, err)
	require.NotContains(t, string(js), hash)
	require.NotContains(t, string(js), secret)
	require.NotContains(t, string(js), `"hash"`)
}

func TestCreateServiceKeyWithDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key, _ := b.create(t, apikeys.CreateParams{Name: "worker pool", Scopes: []apikeys.Scope{apikeys.ScopeWorker}})
	require.Nil(t, key.OwnerID)
	require.Nil(t, key.RateLimitPerMinute)
	require.Nil(t, key.ExpiresAt)
	require.WithinDuration(t, time.Now(), key.CreatedAt, time.Minute)

	key, _ = b.create(t, apikeys.CreateParams{Name: "no scopes"})
	require.NotNil(t, key.Scopes)
	require.Empty(t, key.Scopes)
}

func TestCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	for name, p := range map[string]apikeys.CreateParams{
		"UnknownScope":   {Name: "k", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, "jobs:delete"}},
		"EmptyScope":     {Name: "k", Scopes: []apikeys.Scope{""}},
		"ScopeCase":      {Name: "k", Scopes: []apikeys.Scope{"ADMIN"}},
		"EmptyName":      {Name: ""},
		"BlankName":      {Name: " \t\n"},
		"LongName":       {Name: strings.Repeat("é", 201)},
		"NULInName":      {Name: "a\x00b"},
		"BadUTF8Name":    {Name: "a\xffb"},
		"ZeroRateLimit":  {Name: "k", RateLimitPerMinute: ptr(int32(0))},
		"HugeRateLimit":  {Name: "k", RateLimitPerMinute: ptr(int32(1_000_001))},
		"ExpiredAlready": {Name: "k", ExpiresAt: ptr(time.Now().Add(-time.Second))},
	} {
		_, plaintext, err := b.repo.Create(ctx, p)
		require.Error(t, err, name)
		require.Empty(t, plaintext, name)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), "%s: %v", name, err)
	}

	// The message does not repeat what was sent in the scope field.
	leaked := generate(t).Plaintext()
	_, _, err := b.repo.Create(ctx, apikeys.CreateParams{Name: "k", Scopes: []apikeys.Scope{apikeys.Scope(leaked)}})
	requireNoLeak(t, err, leaked)

	// A 200-character name is the limit, not past it.
	_, _, err = b.repo.Create(ctx, apikeys.CreateParams{Name: strings.Repeat("é", 200)})
	require.NoError(t, err)
}

func TestCreateRefusesUnknownOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, plaintext, err := b.repo.Create(context.Background(), apikeys.CreateParams{Name: "k", OwnerID: ptr(uuid.New())})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	require.Empty(t, plaintext)
	requireNoLeak(t, err, "argon2id")
}

func TestGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, _ := b.create(t, apikeys.CreateParams{OwnerID: &b.owner, Scopes: []apikeys.Scope{apikeys.ScopeAdmin}})

	got, err := b.repo.Get(ctx, key.ID)
	require.NoError(t, err)
	require.Equal(t, key, got)
	got, err = b.repo.GetByLookupID(ctx, key.LookupID)
	require.NoError(t, err)
	require.Equal(t, key, got)

	_, err = b.repo.Get(ctx, uuid.New())
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.repo.GetByLookupID(ctx, generate(t).LookupID())
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	_, err = b.repo.GetByLookupID(ctx, "NOT A LOOKUP ID")
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestUnknownIDsAreNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	id := uuid.New()
	_, err := b.repo.Revoke(ctx, id)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	require.Equal(t, "api key not found", apperr.EnvelopeOf(err).Message)
	_, plaintext, err := b.repo.Rotate(ctx, id, time.Hour)
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	require.Empty(t, plaintext)
	err = b.repo.TouchLastUsed(ctx, id, time.Now())
	require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
}

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	other := newUser(t, b.db)
	a1, _ := b.create(t, apikeys.CreateParams{OwnerID: &b.owner, Name: "a1"})
	a2, _ := b.create(t, apikeys.CreateParams{OwnerID: &b.owner, Name: "a2"})
	o1, _ := b.create(t, apikeys.CreateParams{OwnerID: &other, Name: "o1"})
	s1, _ := b.create(t, apikeys.CreateParams{Name: "service"})
	// One transaction gives every row the same created_at; spread them out.
	for i, id := range []uuid.UUID{a1.ID, a2.ID, o1.ID, s1.ID} {
		b.exec(t, "update api_keys set created_at = now() - make_interval(mins => $2) where id = $1", id, 10-i)
	}
	_, err := b.repo.Revoke(ctx, a1.ID)
	require.NoError(t, err)

	ids := func(keys []apikeys.Key) []uuid.UUID {
		var out []uuid.UUID
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return out
	}
	mine, err := b.repo.List(ctx, &b.owner)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{a2.ID, a1.ID}, ids(mine))
	require.NotNil(t, mine[1].RevokedAt)

	all, err := b.repo.List(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{s1.ID, o1.ID, a2.ID, a1.ID}, ids(all))

	service, err := b.repo.ListWithoutOwner(ctx)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{s1.ID}, ids(service))

	none, err := b.repo.List(ctx, ptr(uuid.New()))
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)

	js, err := json.Marshal(all)
	require.NoError(t, err)
	require.NotContains(t, string(js), "argon2id")
	require.NotContains(t, string(js), `"hash"`)
}

func TestKeyJSONFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key, _ := b.create(t, apikeys.CreateParams{Scopes: []apikeys.Scope{apikeys.ScopeWorker}})
	js, err := json.Marshal(key)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(js, &fields))
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	require.Equal(t, []string{"created_at", "expires_at", "id", "last_used_at", "lookup_id", "name",
		"owner_id", "rate_limit_per_minute", "revoked_at", "rotated_from", "scopes"}, names)
	require.Equal(t, []any{"worker"}, fields["scopes"])
}

func TestTouchLastUsedMovesForwardOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, _ := b.create(t, apikeys.CreateParams{})
	other, _ := b.create(t, apikeys.CreateParams{})
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	lastUsed := func(id uuid.UUID) time.Time {
		k, err := b.repo.Get(ctx, id)
		require.NoError(t, err)
		require.NotNil(t, k.LastUsedAt)
		return *k.LastUsedAt
	}

	require.NoError(t, b.repo.TouchLastUsed(ctx, key.ID, t0.Add(time.Minute)))
	require.True(t, t0.Add(time.Minute).Equal(lastUsed(key.ID)))
	require.NoError(t, b.repo.TouchLastUsed(ctx, key.ID, t0)) // late write: ignored
	require.True(t, t0.Add(time.Minute).Equal(lastUsed(key.ID)))
	require.NoError(t, b.repo.TouchLastUsed(ctx, key.ID, t0.Add(time.Minute))) // replay
	require.True(t, t0.Add(time.Minute).Equal(lastUsed(key.ID)))
	require.NoError(t, b.repo.TouchLastUsed(ctx, key.ID, t0.Add(2*time.Minute)))
	require.True(t, t0.Add(2*time.Minute).Equal(lastUsed(key.ID)))

	// The batch form: forward only, unknown ids skipped, empty is a no-op.
	require.NoError(t, b.repo.TouchLastUsedBatch(ctx, nil))
	require.NoError(t, b.repo.TouchLastUsedBatch(ctx, map[uuid.UUID]time.Time{
		key.ID:     t0, // older than stored: ignored
		other.ID:   t0.Add(5 * time.Minute),
		uuid.New(): t0,
	}))
	require.True(t, t0.Add(2*time.Minute).Equal(lastUsed(key.ID)))
	require.True(t, t0.Add(5*time.Minute).Equal(lastUsed(other.ID)))

	// More keys than one statement takes.
	big := map[uuid.UUID]time.Time{key.ID: t0.Add(time.Hour), other.ID: t0.Add(2 * time.Hour)}
	for range 2500 {
		big[uuid.New()] = t0
	}
	require.NoError(t, b.repo.TouchLastUsedBatch(ctx, big))
	require.True(t, t0.Add(time.Hour).Equal(lastUsed(key.ID)))
	require.True(t, t0.Add(2*time.Hour).Equal(lastUsed(other.ID)))
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, plaintext := b.create(t, apikeys.CreateParams{OwnerID: &b.owner, Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	hash := b.storedHash(t, key.ID)

	got, err := b.repo.Authenticate(ctx, plaintext)
	require.NoError(t, err)
	require.Equal(t, key, got)
	require.True(t, got.HasScope(apikeys.ScopeJobsRead))
	require.False(t, got.HasScope(apikeys.ScopeJobsWrite))
	// Authenticating writes nothing: last use is the caller's to record.
	got, err = b.repo.Get(ctx, key.ID)
	require.NoError(t, err)
	require.Nil(t, got.LastUsedAt)

	// A well-formed token with the right lookup id and another secret.
	_, secret, err := apikeys.Parse(plaintext)
	require.NoError(t, err)
	_, otherSecret, err := apikeys.Parse(generate(t).Plaintext())
	require.NoError(t, err)
	wrong := apikeys.Format(key.LookupID, otherSecret)
	_, err = b.repo.Authenticate(ctx, wrong)
	requireRefused(t, err, "invalid api key", apikeys.ErrWrongSecret, wrong, plaintext, secret, hash)

	unknown := generate(t).Plaintext()
	_, err = b.repo.Authenticate(ctx, unknown)
	requireRefused(t, err, "invalid api key", apikeys.ErrUnknownKey, unknown)

	typo := plaintext[:20] + "x" + plaintext[21:]
	if typo == plaintext {
		typo = plaintext[:20] + "y" + plaintext[21:]
	}
	_, err = b.repo.Authenticate(ctx, typo)
	requireRefused(t, err, "invalid api key", apikeys.ErrChecksum, typo, plaintext, secret, hash)

	_, err = b.repo.Authenticate(ctx, "")
	requireRefused(t, err, "invalid api key", apikeys.ErrMalformed)
}

func TestAuthenticateRefusesRevoked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, plaintext := b.create(t, apikeys.CreateParams{})
	hash := b.storedHash(t, key.ID)
	_, err := b.repo.Authenticate(ctx, plaintext)
	require.NoError(t, err)

	revoked, err := b.repo.Revoke(ctx, key.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	_, err = b.repo.Authenticate(ctx, plaintext)
	requireRefused(t, err, "api key revoked", apikeys.ErrRevoked, plaintext, hash)
	require.Equal(t, 401, apperr.HTTPStatus(apperr.CodeOf(err)))

	// A wrong secret for a revoked key says nothing about the key.
	_, otherSecret, err := apikeys.Parse(generate(t).Plaintext())
	require.NoError(t, err)
	_, err = b.repo.Authenticate(ctx, apikeys.Format(key.LookupID, otherSecret))
	requireRefused(t, err, "invalid api key", apikeys.ErrWrongSecret)

	// Revoking again keeps the first time.
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b.exec(t, "update api_keys set revoked_at = $2 where id = $1", key.ID, first)
	again, err := b.repo.Revoke(ctx, key.ID)
	require.NoError(t, err)
	require.True(t, first.Equal(*again.RevokedAt))

	// Revoked wins over expired.
	b.exec(t, "update api_keys set expires_at = now() - interval '1 hour' where id = $1", key.ID)
	_, err = b.repo.Authenticate(ctx, plaintext)
	requireRefused(t, err, "api key revoked", apikeys.ErrRevoked, plaintext, hash)
}

func TestAuthenticateRefusesExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, plaintext := b.create(t, apikeys.CreateParams{ExpiresAt: ptr(time.Now().Add(time.Hour))})
	hash := b.storedHash(t, key.ID)
	_, err := b.repo.Authenticate(ctx, plaintext)
	require.NoError(t, err)

	b.exec(t, "update api_keys set expires_at = now() - interval '1 second' where id = $1", key.ID)
	_, err = b.repo.Authenticate(ctx, plaintext)
	requireRefused(t, err, "api key expired", apikeys.ErrExpired, plaintext, hash)

	// Expiry is judged by the database clock: exactly now is expired.
	b.exec(t, "update api_keys set expires_at = now() where id = $1", key.ID)
	_, err = b.repo.Authenticate(ctx, plaintext)
	requireRefused(t, err, "api key expired", apikeys.ErrExpired)
}

func TestAuthenticateRefusesMalformedStoredHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	key, plaintext := b.create(t, apikeys.CreateParams{})
	bad := "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
	b.exec(t, "update api_keys set hash = $2 where id = $1", key.ID, bad)
	_, err := b.repo.Authenticate(ctx, plaintext)
	require.Equal(t, apperr.Internal, apperr.CodeOf(err))
	require.ErrorIs(t, err, apikeys.ErrMalformedHash)
	requireNoLeak(t, err, plaintext, bad, "c2FsdHNhbHRzYWx0")
}

func TestRotateWithGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	old, oldPlain := b.create(t, apikeys.CreateParams{
		OwnerID:            &b.owner,
		Name:               "ci",
		Scopes:             []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeWorker},
		RateLimitPerMinute: ptr(int32(120)),
	})
	var now time.Time
	require.NoError(t, b.db.QueryRow(ctx, "select now()").Scan(&now))

	next, nextPlain, err := b.repo.Rotate(ctx, old.ID, 10*time.Minute)
	require.NoError(t, err)
	require.NotEqual(t, old.ID, next.ID)
	require.NotEqual(t, old.LookupID, next.LookupID)
	require.NotEqual(t, oldPlain, nextPlain)
	require.Equal(t, &old.ID, next.RotatedFrom)
	require.Equal(t, old.OwnerID, next.OwnerID)
	require.Equal(t, old.Name, next.Name)
	require.Equal(t, old.Scopes, next.Scopes)
	require.Equal(t, old.RateLimitPerMinute, next.RateLimitPerMinute)
	require.Nil(t, next.ExpiresAt)
	require.Nil(t, next.RevokedAt)

	before, err := b.repo.Get(ctx, old.ID)
	require.NoError(t, err)
	require.NotNil(t, before.ExpiresAt)
	require.True(t, now.Add(10*time.Minute).Equal(*before.ExpiresAt), "%v", before.ExpiresAt)

	// During the grace period both keys work.
	_, err = b.repo.Authenticate(ctx, oldPlain)
	require.NoError(t, err)
	got, err := b.repo.Authenticate(ctx, nextPlain)
	require.NoError(t, err)
	require.Equal(t, next.ID, got.ID)

	// When it ends, only the new one does.
	b.exec(t, "update api_keys set expires_at = now() - interval '1 millisecond' where id = $1", old.ID)
	_, err = b.repo.Authenticate(ctx, oldPlain)
	requireRefused(t, err, "api key expired", apikeys.ErrExpired, oldPlain, nextPlain)
	_, err = b.repo.Authenticate(ctx, nextPlain)
	require.NoError(t, err)

	// An expired key can no longer be rotated.
	_, plaintext, err := b.repo.Rotate(ctx, old.ID, time.Hour)
	require.Equal(t, apperr.InvalidTransition, apperr.CodeOf(err))
	require.Empty(t, plaintext)
}

func TestRotateGraceZero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	old, oldPlain := b.create(t, apikeys.CreateParams{Scopes: []apikeys.Scope{apikeys.ScopeAdmin}})
	_, nextPlain, err := b.repo.Rotate(ctx, old.ID, 0)
	require.NoError(t, err)
	_, err = b.repo.Authenticate(ctx, oldPlain)
	requireRefused(t, err, "api key expired", apikeys.ErrExpired, oldPlain)
	_, err = b.repo.Authenticate(ctx, nextPlain)
	require.NoError(t, err)
}

func TestRotateKeepsEarlierExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	expires := time.Now().Add(5 * time.Minute).Truncate(time.Microsecond)
	old, _ := b.create(t, apikeys.CreateParams{ExpiresAt: &expires})
	next, _, err := b.repo.Rotate(ctx, old.ID, time.Hour)
	require.NoError(t, err)
	got, err := b.repo.Get(ctx, old.ID)
	require.NoError(t, err)
	require.True(t, expires.Equal(*got.ExpiresAt), "grace never extends a key's life")
	require.True(t, expires.Equal(*next.ExpiresAt), "the new key keeps the old one's end of life")
}

func TestRotateRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	revoked, _ := b.create(t, apikeys.CreateParams{})
	_, err := b.repo.Revoke(ctx, revoked.ID)
	require.NoError(t, err)
	_, plaintext, err := b.repo.Rotate(ctx, revoked.ID, time.Hour)
	require.Equal(t, apperr.InvalidTransition, apperr.CodeOf(err))
	require.Equal(t, "a revoked api key cannot be rotated", apperr.EnvelopeOf(err).Message)
	require.Empty(t, plaintext)

	expired, _ := b.create(t, apikeys.CreateParams{})
	b.exec(t, "update api_keys set expires_at = now() - interval '1 day' where id = $1", expired.ID)
	_, _, err = b.repo.Rotate(ctx, expired.ID, time.Hour)
	require.Equal(t, apperr.InvalidTransition, apperr.CodeOf(err))
	require.Equal(t, "an expired api key cannot be rotated", apperr.EnvelopeOf(err).Message)

	live, _ := b.create(t, apikeys.CreateParams{})
	_, _, err = b.repo.Rotate(ctx, live.ID, -time.Second)
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))

	// No refused rotation left a successor behind.
	var successors int
	require.NoError(t, b.db.QueryRow(ctx, "select count(*) from api_keys where rotated_from = any($1)",
		[]uuid.UUID{revoked.ID, expired.ID, live.ID}).Scan(&successors))
	require.Zero(t, successors)
}

// On a pool, Create, Rotate and Authenticate commit for real and run
// concurrently.
func TestRepoOnPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	b := setupOn(t, pool)
	old, oldPlain := b.create(t, apikeys.CreateParams{OwnerID: &b.owner, Scopes: []apikeys.Scope{apikeys.ScopeJobsWrite}})

	// Concurrent rotations of one key serialise on its row: each gets its
	// own successor.
	var wg sync.WaitGroup
	plains := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, plains[i], errs[i] = b.repo.Rotate(ctx, old.ID, time.Hour) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	tokens := append(plains, oldPlain)
	authErrs := make([]error, len(tokens))
	for i, p := range tokens {
		wg.Go(func() { _, authErrs[i] = b.repo.Authenticate(ctx, p) })
	}
	wg.Wait()
	for _, err := range authErrs {
		require.NoError(t, err)
	}

	keys, err := b.repo.List(ctx, &b.owner)
	require.NoError(t, err)
	require.Len(t, keys, 3)
	require.NoError(t, b.repo.TouchLastUsedBatch(ctx, map[uuid.UUID]time.Time{keys[0].ID: time.Now(), keys[1].ID: time.Now()}))

	revoked, err := b.repo.Revoke(ctx, old.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	_, err = b.repo.Authenticate(ctx, oldPlain)
	requireRefused(t, err, "api key revoked", apikeys.ErrRevoked, oldPlain)
}

// The scope vocabulary is exactly the one the table's check allows.
func TestScopesMatchConstraint(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	var def string
	require.NoError(t, tx.QueryRow(context.Background(),
		"select pg_get_constraintdef(oid) from pg_constraint where conname = 'api_keys_scopes_check'").Scan(&def))
	var inDB []string
	for _, m := range regexp.MustCompile(`'([^']+)'::text`).FindAllStringSubmatch(def, -1) {
		inDB = append(inDB, m[1])
	}
	var inGo []string
	for _, s := range apikeys.AllScopes() {
		require.True(t, s.Valid())
		inGo = append(inGo, string(s))
	}
	slices.Sort(inDB)
	slices.Sort(inGo)
	require.Equal(t, inGo, inDB)
}

func TestHasScope(t *testing.T) {
	t.Parallel()
	k := apikeys.Key{Scopes: []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeWorker}}
	require.True(t, k.HasScope(apikeys.ScopeJobsRead))
	require.True(t, k.HasScope(apikeys.ScopeWorker))
	require.False(t, k.HasScope(apikeys.ScopeJobsWrite))
	require.False(t, k.HasScope(apikeys.ScopeAdmin))
	require.False(t, apikeys.Key{}.HasScope(apikeys.ScopeJobsRead))

	admin := apikeys.Key{Scopes: []apikeys.Scope{apikeys.ScopeAdmin}}
	for _, s := range apikeys.AllScopes() {
		require.True(t, admin.HasScope(s), s)
	}
	keysAdmin := apikeys.Key{Scopes: []apikeys.Scope{apikeys.ScopeKeysAdmin}}
	require.False(t, keysAdmin.HasScope(apikeys.ScopeAdmin))

	got, err := apikeys.NormalizeScopes([]apikeys.Scope{"worker", "admin", "worker"})
	require.NoError(t, err)
	require.Equal(t, []apikeys.Scope{apikeys.ScopeAdmin, apikeys.ScopeWorker}, got)
	_, err = apikeys.NormalizeScopes([]apikeys.Scope{"jobs:*"})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
}

func TestCheckActive(t *testing.T) {
	t.Parallel()
	now := time.Now()
	require.NoError(t, apikeys.Key{}.CheckActive(now))
	require.NoError(t, apikeys.Key{ExpiresAt: ptr(now.Add(time.Nanosecond))}.CheckActive(now))
	requireRefused(t, apikeys.Key{ExpiresAt: &now}.CheckActive(now), "api key expired", apikeys.ErrExpired)
	requireRefused(t, apikeys.Key{RevokedAt: &now, ExpiresAt: &now}.CheckActive(now), "api key revoked", apikeys.ErrRevoked)
}

func TestNewRepoRefusesBadParams(t *testing.T) {
	t.Parallel()
	_, err := apikeys.NewRepo(pgtest.Tx(t), apikeys.Options{Params: apikeys.Params{MemoryKiB: 1 << 30, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
}
