// Package database opens the connection pool and runs functions in
// transactions, so repositories work the same inside or outside a
// caller's transaction.
package database

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/apperr"
)

// DB is what repositories need: *pgxpool.Pool, *pgx.Conn and pgx.Tx all
// satisfy it. Begin on a pgx.Tx opens a savepoint.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Begin(ctx context.Context) (pgx.Tx, error)
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (pgx.Tx)(nil)
	_ DB = (*pgx.Conn)(nil)
)

// InTx runs fn in a transaction on db (a savepoint when db is already a
// transaction). fn's error, or a failed commit, rolls everything back.
func InTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return apperr.FromDB(err, "transaction")
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return apperr.FromDB(err, "transaction")
	}
	return nil
}

// Options tune the pool. Zero values take the defaults.
type Options struct {
	MaxConns         int32         // default 20
	StatementTimeout time.Duration // default 30s; bounds any one query
	IdleInTxTimeout  time.Duration // default 60s; protects the xmin horizon of the hot tables
	ApplicationName  string        // default "clipper"
	// ConnectTimeout bounds opening one connection (default 10s). A
	// frozen server accepts TCP connections and then never answers.
	ConnectTimeout time.Duration
	// AsyncCommit sets synchronous_commit=off: commits return before their
	// WAL reaches disk. Only for writes whose loss in a crash is harmless.
	AsyncCommit bool
}

// Open parses databaseURL and connects a pool, checking it with a ping.
// Errors never repeat the URL (it may hold a password).
func Open(ctx context.Context, databaseURL string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, apperr.New(apperr.InvalidInput, "DATABASE_URL is not a valid PostgreSQL URL")
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 20
	}
	if opts.StatementTimeout == 0 {
		opts.StatementTimeout = 30 * time.Second
	}
	if opts.IdleInTxTimeout == 0 {
		opts.IdleInTxTimeout = 60 * time.Second
	}
	if opts.ApplicationName == "" {
		opts.ApplicationName = "clipper"
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	cfg.MaxConns = opts.MaxConns
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	// A health check of an idle connection to a frozen server must not
	// hang the pool either.
	cfg.PingTimeout = opts.ConnectTimeout
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = opts.ApplicationName
	rp["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
	rp["idle_in_transaction_session_timeout"] = fmt.Sprint(opts.IdleInTxTimeout.Milliseconds())
	if opts.AsyncCommit {
		rp["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, apperr.FromDB(err, "database")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, apperr.FromDB(err, "database")
	}
	return pool, nil
}

// IsNoRows reports whether err is pgx's "no rows".
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
