package main

import (
	"context"
	"fmt"
	"net"
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
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil && os.Getenv("CLIPPER_ADDR") == "" {
		// Another daemon (another checkout's `make dev`) has the default
		// address: take a free port rather than fail.
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Printf("%s is taken; the daemon listens on %s instead.\n", cfg.Addr, l.Addr())
			cfg.Addr = l.Addr().String()
			if os.Getenv("CLIPPER_PUBLIC_URL") == "" {
				cfg.PublicURL = "http://" + cfg.Addr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("listen on %s (CLIPPER_ADDR): %w", cfg.Addr, err)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	return daemon.Run(ctx, cfg, daemon.Options{Logger: log, Listener: l, OnReady: func(base string) {
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
