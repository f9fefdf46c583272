package seed

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/database"
)

// DemoKeyName names the demo user's seeded API keys.
const DemoKeyName = "demo"

// DemoKeyScopes are what the demo key may do: create and read jobs, and
// act as a worker.
var DemoKeyScopes = []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite, apikeys.ScopeWorker}

// DemoKey revokes the demo keys made by earlier seeds and creates a fresh
// one, in one transaction, returning its plaintext (only its hash is
// stored). The demo user must exist (Apply creates it).
func DemoKey(ctx context.Context, db database.DB, opts apikeys.Options) (string, error) {
	owner := uuid.MustParse(DemoUserID)
	var plaintext string
	err := database.InTx(ctx, db, func(tx pgx.Tx) error {
		keys, err := apikeys.NewRepo(tx, opts)
		if err != nil {
			return err
		}
		existing, err := keys.List(ctx, &owner)
		if err != nil {
			return err
		}
		for _, k := range existing {
			if k.Name == DemoKeyName && k.RevokedAt == nil {
				if _, err := keys.Revoke(ctx, k.ID); err != nil {
					return err
				}
			}
		}
		_, plaintext, err = keys.Create(ctx, apikeys.CreateParams{
			OwnerID: &owner,
			Name:    DemoKeyName,
			Scopes:  DemoKeyScopes,
		})
		return err
	})
	return plaintext, err
}
