package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon"
)

// startDaemon runs the real daemon on a loopback port against the bench's
// database, with the environment's settings less its own schedules, and
// set's changes. It returns the daemon's base URL and a function that
// stops it and waits for it.
func (e *env) startDaemon(ctx context.Context, set func(*config.Config)) (string, func(), error) {
	cfg, err := config.Load()
	if err != nil {
		return "", nil, err
	}
	cfg.DatabaseURL = e.dsn
	cfg.CleanupInterval = 0
	cfg.DBMaxConns = 40
	cfg.StorageSigningSecret = "bench"
	cfg.StorageDir = os.TempDir()
	// The bench measures speed, not deadlines: generous ones keep a
	// machine loaded by other work from failing a phase with 503s.
	cfg.RequestTimeout, cfg.DBStatementTimeout = 2*time.Minute, time.Minute
	cfg.DBConnectTimeout, cfg.DBAcquireTimeout = time.Minute, time.Minute
	if set != nil {
		set(&cfg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- daemon.Run(dctx, cfg, daemon.Options{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Listener: l,
			OnReady: func(u string) { ready <- u },
		})
	}()
	select {
	case base := <-ready:
		return base, func() { cancel(); <-done }, nil
	case err := <-done:
		cancel()
		return "", nil, fmt.Errorf("daemon: %w", err)
	}
}
