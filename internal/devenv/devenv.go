// Package devenv starts the local PostgreSQL that `clipper dev`, `clipper
// testdb` and `clipper bench` use when no DATABASE_URL is given.
package devenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/pgcluster"
)

// Database is a running local cluster and the database made in it.
type Database struct {
	Cluster *pgcluster.Cluster
	URL     string // DSN of the database
	Admin   string // DSN of the cluster's postgres database
}

// Options choose where the cluster lives and how it runs.
type Options struct {
	Dir      string // cluster folder; created if missing, reused if it holds a cluster
	Database string // database to create if missing ("" = postgres)
	Port     int    // 0 = a free port
	Fast     bool   // no fsync: tests only
	Settings map[string]string
	Logf     func(format string, args ...any)
}

// Start starts (or restarts) the cluster and makes sure the database exists.
func Start(ctx context.Context, opts Options) (*Database, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// The parent must be enterable by the unprivileged user the server runs
	// as under root; the cluster folder itself is made by pgcluster.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: dir, Port: opts.Port, Fast: opts.Fast, Settings: opts.Settings, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	db := &Database{Cluster: c, Admin: c.DSN("postgres"), URL: c.DSN("postgres")}
	if opts.Database != "" && opts.Database != "postgres" {
		if err := createDatabase(ctx, db.Admin, opts.Database); err != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			return nil, err
		}
		db.URL = c.DSN(opts.Database)
	}
	return db, nil
}

// Stop stops the cluster cleanly.
func (d *Database) Stop(ctx context.Context) error { return d.Cluster.Stop(ctx) }

func createDatabase(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to local cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
