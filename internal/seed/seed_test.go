package seed_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

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
