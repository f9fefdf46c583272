package seed_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/seed"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var cheap = apikeys.Options{Params: apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}}

// Seeding twice leaves exactly one usable demo key: the newest.
func TestDemoKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	repo, err := apikeys.NewRepo(tx, cheap)
	require.NoError(t, err)
	demo := uuid.MustParse(seed.DemoUserID)

	require.NoError(t, seed.Apply(ctx, tx))
	first, err := seed.DemoKey(ctx, tx, cheap)
	require.NoError(t, err)
	key, err := repo.Authenticate(ctx, first)
	require.NoError(t, err)
	require.Equal(t, seed.DemoKeyName, key.Name)
	require.Equal(t, &demo, key.OwnerID)
	require.Equal(t, []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite, apikeys.ScopeWorker}, key.Scopes)

	// Another key of the demo user, not made by the seed, is left alone.
	other, otherToken, err := repo.Create(ctx, apikeys.CreateParams{OwnerID: &demo, Name: "mine", Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}})
	require.NoError(t, err)

	require.NoError(t, seed.Apply(ctx, tx))
	second, err := seed.DemoKey(ctx, tx, cheap)
	require.NoError(t, err)
	require.NotEqual(t, first, second)
	_, err = repo.Authenticate(ctx, first)
	require.ErrorIs(t, err, apikeys.ErrRevoked)
	_, err = repo.Authenticate(ctx, second)
	require.NoError(t, err)
	got, err := repo.Authenticate(ctx, otherToken)
	require.NoError(t, err)
	require.Equal(t, other.ID, got.ID)

	keys, err := repo.List(ctx, &demo)
	require.NoError(t, err)
	active := 0
	for _, k := range keys {
		if k.Name == seed.DemoKeyName && k.RevokedAt == nil {
			active++
		}
	}
	require.Equal(t, 1, active)
}

// The demo user can sign in with Supabase Auth: its rows are what GoTrue
// reads for a password sign-in (supabase/auth internal/models/user.go):
// a bcrypt hash of the printed password, the email confirmed, no null in
// the columns GoTrue scans into strings, and an email identity. A second
// seed changes none of it.
func TestDemoUserCanSignIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	require.NoError(t, seed.Apply(ctx, tx))

	type user struct {
		Email, Aud, Role, Hash                      string
		Confirmed                                   bool
		InstanceID                                  string
		Tokens                                      []*string
		IdentityProvider, IdentityProviderID, IdSub string
		IdentityEmail                               string
	}
	read := func() user {
		var u user
		require.NoError(t, tx.QueryRow(ctx, `select u.email, u.aud, u.role, u.encrypted_password,
			u.email_confirmed_at is not null and u.confirmed_at is not null, u.instance_id::text,
			array[u.confirmation_token, u.recovery_token, u.email_change_token_new, u.email_change,
			  u.email_change_token_current, u.phone_change, u.phone_change_token, u.reauthentication_token]::text[],
			i.provider, i.provider_id, i.identity_data ->> 'sub', i.email
			from auth.users u join auth.identities i on i.user_id = u.id
			where u.id = $1`, seed.DemoUserID).Scan(&u.Email, &u.Aud, &u.Role, &u.Hash, &u.Confirmed, &u.InstanceID,
			&u.Tokens, &u.IdentityProvider, &u.IdentityProviderID, &u.IdSub, &u.IdentityEmail))
		return u
	}
	u := read()
	require.Equal(t, seed.DemoUserEmail, u.Email)
	require.Equal(t, "authenticated", u.Aud)
	require.Equal(t, "authenticated", u.Role)
	require.True(t, u.Confirmed)
	require.Equal(t, "00000000-0000-0000-0000-000000000000", u.InstanceID)
	for i, tok := range u.Tokens {
		require.NotNil(t, tok, "token column %d is null", i)
	}
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte(seed.DemoUserPassword)))
	require.Error(t, bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte("wrong")))
	require.Equal(t, "email", u.IdentityProvider)
	require.Equal(t, seed.DemoUserID, u.IdentityProviderID)
	require.Equal(t, seed.DemoUserID, u.IdSub)
	require.Equal(t, seed.DemoUserEmail, u.IdentityEmail)

	require.NoError(t, seed.Apply(ctx, tx))
	require.Equal(t, u, read())
}
