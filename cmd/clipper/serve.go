package main

import (
	"context"
	"os"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon"
	"github.com/clipper/clipper/internal/logging"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", "[--addr HOST:PORT]", `Runs the daemon: the HTTP API (jobs, workers, events, keys, signed URLs),
Supabase database webhooks, the LISTEN connection, and cleanup. Settings
come from the environment (see .env.example); a bad value stops startup
with a message naming the variable. SIGINT/SIGTERM shut down gracefully.`)
	addr := fs.String("addr", "", "listen address (default CLIPPER_ADDR, 127.0.0.1:8080)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *addr != "" {
		os.Setenv("CLIPPER_ADDR", *addr)
	}
	cfg, err := config.Load()
	if err != nil {
		return usageError{"configuration: " + err.Error()}
	}
	if cfg.DatabaseURL == "" {
		return usageError{"DATABASE_URL is not set (or run 'clipper dev')"}
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	return daemon.Run(ctx, cfg, daemon.Options{Logger: log})
}
