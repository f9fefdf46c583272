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

Try it in another terminal, from this folder (README, Quick start):
  export CLIPPER_URL=%[1]s KEY=%[2]s
  api() { curl -sS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"; }
  echo 'any file will do' > sample.mp4
  api -X POST $CLIPPER_URL/v1/uploads -d '{"name":"sample.mp4"}'      # → data.url, data.path
  curl -sS -X PUT -H 'Content-Type: video/mp4' --data-binary @sample.mp4 "<data.url>"
  api -X POST $CLIPPER_URL/v1/jobs -d '{"source_object":"<data.path>","params":{"start":1,"end":3}}'   # → data.id
  CLIPPER_WORKER_KEY=$KEY go run ./examples/worker -once             # the example worker does the job
  curl -N -H "Authorization: Bearer $KEY" -H 'Accept: text/event-stream' $CLIPPER_URL/v1/jobs/<data.id>/events
  api $CLIPPER_URL/v1/jobs/<data.id>/result                           # signed download URLs of the results
`, base, demoKey)
	}})
}
