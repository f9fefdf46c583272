package main

import (
	"context"
	"errors"
	"os"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/keysapi"
)

func runKeys(ctx context.Context, args []string) error {
	cmd := keysapi.Command{Stdout: os.Stdout, Stderr: os.Stderr, Open: openKeys}
	err := cmd.Run(ctx, args)
	var ue keysapi.UsageError
	if errors.As(err, &ue) {
		return usageError{ue.Msg}
	}
	return err
}

// openKeys connects to DATABASE_URL; new keys are hashed with the
// CLIPPER_ARGON2_* parameters.
func openKeys(ctx context.Context) (*apikeys.Repo, func(), error) {
	dsn, err := databaseURL()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load()
	if err != nil {
		return nil, nil, usageError{"configuration: " + err.Error()}
	}
	pool, err := database.Open(ctx, dsn, database.Options{MaxConns: 2})
	if err != nil {
		return nil, nil, err
	}
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: auth.HashParams(cfg)})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return keys, pool.Close, nil
}
