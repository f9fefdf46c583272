// Package daemon assembles `clipper serve`: the pool, the LISTEN
// connection, the HTTP API and its features, and the background loops,
// and shuts them down in order.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/metrics"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/notify"
	"github.com/clipper/clipper/internal/storage"
)

// Options are what Run needs besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Listener, if set, is used instead of listening on cfg.Addr (tests).
	Listener net.Listener
	// OnReady, if set, is called with the base URL once the daemon serves.
	OnReady func(baseURL string)
}

// Run serves until ctx is done, then stops accepting requests, lets
// in-flight ones finish, stops the background loops, closes LISTEN and
// finally the pool.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	log := opts.Logger
	if cfg.DatabaseURL == "" {
		return apperr.New(apperr.InvalidInput, "DATABASE_URL is not set")
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxConns: cfg.DBMaxConns,
		StatementTimeout: cfg.DBStatementTimeout, ConnectTimeout: cfg.DBConnectTimeout})
	if err != nil {
		return err
	}
	defer pool.Close()
	// Rate-limit state is written on every request. Losing its last
	// milliseconds in a crash is harmless (a key gets a few requests more);
	// waiting for a WAL flush on every request is not: it bounded request
	// throughput by the disk's flush rate.
	limitPool, err := database.Open(ctx, cfg.DatabaseURL, database.Options{
		MaxConns: 10, AsyncCommit: true, ApplicationName: "clipper-ratelimit",
		StatementTimeout: cfg.DBStatementTimeout, ConnectTimeout: cfg.DBConnectTimeout})
	if err != nil {
		return err
	}
	defer limitPool.Close()

	m := metrics.New()
	m.RegisterPool(pool)

	// Background work stops after the HTTP server has drained.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	defer func() {
		stopBackground()
		bg.Wait()
		log.Info("background work stopped")
	}()
	goBackground := func(name string, fn func(ctx context.Context)) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			fn(bgCtx)
			log.Debug("background task ended", "task", name)
		}()
	}

	listener := notify.New(cfg.DatabaseURL, log, notify.ChannelJobEvents, notify.ChannelAPIKeys)
	listener.PingEvery, listener.PingTimeout = cfg.ListenProbeInterval, cfg.ListenProbeTimeout
	listener.OnReconnect = m.NotifyReconnects.Inc
	listener.OnConnectionChange = func(up bool) {
		if up {
			m.NotifyConnected.Set(1)
		} else {
			m.NotifyConnected.Set(0)
		}
	}
	goBackground("listen", func(ctx context.Context) { _ = listener.Run(ctx) })

	migrations := &migrationCheck{dsn: cfg.DatabaseURL}
	e := httpapi.New(httpapi.Options{
		Logger:         log,
		Metrics:        m,
		RequestTimeout: cfg.RequestTimeout,
		TrustedProxies: cfg.TrustedProxies,
		Ready: map[string]func(context.Context) error{
			"database":   func(ctx context.Context) error { return apperr.FromDB(pool.Ping(ctx), "database") },
			"migrations": migrations.check,
			"listen": func(context.Context) error {
				if !listener.Connected() {
					return apperr.New(apperr.Unavailable, "LISTEN connection is down")
				}
				return nil
			},
		},
	})
	if pending, err := migrations.pending(ctx); err == nil && pending > 0 {
		log.Warn("database has pending migrations; run 'clipper migrate'", "pending", pending)
	}

	f := features{cfg: cfg, log: log, pool: pool, limitPool: limitPool, metrics: m, listener: listener, background: goBackground, daemonCtx: bgCtx}
	// Requests take connections within CLIPPER_DB_ACQUIRE_TIMEOUT.
	f.db = database.AcquireLimited{Pool: pool, Timeout: cfg.DBAcquireTimeout}
	f.limitDB = database.AcquireLimited{Pool: limitPool, Timeout: cfg.DBAcquireTimeout}
	if err := f.register(ctx, e); err != nil {
		return err
	}

	l := opts.Listener
	if l == nil {
		l, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s (CLIPPER_ADDR): %w", cfg.Addr, err)
		}
	}
	base := "http://" + l.Addr().String()
	log.Info("clipper daemon listening", "url", base, "storage", cfg.StorageBackend)
	if opts.OnReady != nil {
		opts.OnReady(base)
	}
	err = httpapi.Serve(ctx, e, l, httpapi.Timeouts{}, log)
	log.Info("HTTP server stopped")
	return err
}

// features holds what feature packages need to register routes and start
// their background work.
type features struct {
	cfg        config.Config
	log        *slog.Logger
	pool       *pgxpool.Pool
	limitPool  *pgxpool.Pool // asynchronous commit, for rate-limit state only
	db         database.DB   // pool, each acquire within CLIPPER_DB_ACQUIRE_TIMEOUT: for request paths
	limitDB    database.DB   // limitPool, likewise
	metrics    *metrics.Metrics
	listener   *notify.Listener
	background func(name string, fn func(ctx context.Context))
	daemonCtx  context.Context // canceled at shutdown, after HTTP drained
	storage    storage.Signer  // set by the storage block, used by the jobs API

	// auth guards routes with API keys; set by the auth block, which runs first.
	auth *auth.Authenticator
}

// migrationCheck caches a "no pending migrations" result: migrations only
// move forward, so once current it stays current until a new binary.
type migrationCheck struct {
	dsn     string
	mu      sync.Mutex
	current bool
}

func (m *migrationCheck) pending(ctx context.Context) (int, error) {
	list, err := migrate.Status(ctx, m.dsn)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mg := range list {
		if !mg.Applied {
			n++
		}
	}
	return n, nil
}

func (m *migrationCheck) check(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current {
		return nil
	}
	n, err := m.pending(ctx)
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "cannot read migration status")
	}
	if n > 0 {
		return apperr.New(apperr.Unavailable, "%d migration(s) pending", n)
	}
	m.current = true
	return nil
}
