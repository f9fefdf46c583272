package main

import (
	"context"
	"fmt"
	"os"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon"
	"github.com/clipper/clipper/internal/logging"
)

// devServe runs the daemon on the local database and prints how to call it.
func devServe(ctx context.Context, dsn, demoKey string) error {
	cfg, err := config.Load()
	if err != nil {
		return usageError{"configuration: " + err.Error()}
	}
	cfg.DatabaseURL = dsn
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	return daemon.Run(ctx, cfg, daemon.Options{Logger: log, OnReady: func(base string) {
		fmt.Printf(`
Clipper is running at %[1]s  (Ctrl-C stops it and PostgreSQL)

Try it:
  curl -s -H 'Authorization: Bearer %[2]s' '%[1]s/v1/jobs?status=queued'
  curl -s -X POST -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
       -H 'Idempotency-Key: first-clip' \
       -d '{"source_url":"https://www.youtube.com/watch?v=dQw4w9WgXcQ","params":{"start":10,"end":20}}' \
       %[1]s/v1/jobs

`, base, demoKey)
	}})
}
