package main

import (
	"context"
	"fmt"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/seed"
)

func runSeed(ctx context.Context, args []string) error {
	fs := newFlags("seed", "", `Loads supabase/seed.sql into DATABASE_URL (a demo user with a job in each
status and their events) and creates a fresh demo API key, printing its
plaintext once; only its hash is stored. Safe to run again.`)
	if err := parse(fs, args); err != nil {
		return err
	}
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, dsn, database.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	key, err := seedAll(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Printf("Seeded demo user %s with one job in each status.\n", seed.DemoUserID)
	fmt.Printf("Demo sign-in (Supabase Auth, e.g. under supabase start): %s / %s\n", seed.DemoUserEmail, seed.DemoUserPassword)
	fmt.Printf("Demo API key (shown once, only its hash is stored):\n  %s\n", key)
	return nil
}

// seedAll loads the seed data and returns a new demo API key's plaintext;
// demo keys from earlier seeds are revoked.
func seedAll(ctx context.Context, db database.DB) (string, error) {
	if err := seed.Apply(ctx, db); err != nil {
		return "", err
	}
	return seed.DemoKey(ctx, db, apikeys.Options{})
}
