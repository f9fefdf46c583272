// Package seed loads the minimal development data (supabase/seed.sql)
// and issues the demo user's API key.
package seed

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/supabase"
)

// DemoUserID owns the seeded jobs.
const DemoUserID = "d0000000-0000-4000-8000-000000000001"

// The demo user signs in with Supabase Auth (under `supabase start`) with
// this email and development password; seed.sql stores its bcrypt hash.
const (
	DemoUserEmail    = "demo@clipper.local"
	DemoUserPassword = "clipper-demo-password"
)

// Apply runs seed.sql; running it again changes nothing.
func Apply(ctx context.Context, db database.DB) error {
	return database.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, supabase.Seed, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		return nil
	})
}
