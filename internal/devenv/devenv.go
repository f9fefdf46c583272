// Package devenv starts the local PostgreSQL that `clipper dev`, `clipper
// testdb` and `clipper bench` use when no DATABASE_URL is given.
package devenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/pgcluster"
)

// Database is a running local cluster and the database made in it.
type Database struct {
	Cluster *pgcluster.Cluster
	URL     string // DSN of the database
	Admin   string // DSN of the cluster's postgres database
	Dir     string // where the cluster lives: Options.Dir, or its Place when moved
	Moved   bool   // Options.Dir was out of the server user's reach (see Place)
}

// PlaceRoot is the folder that holds clusters moved out of the server
// user's reach (see Place). /var/tmp survives reboots and is open to every
// user; a variable so tests can point it elsewhere.
var PlaceRoot = "/var/tmp"

// Place returns the folder a cluster asked for at dir lives in. That is dir
// itself, unless this process runs as root and the unprivileged user the
// server runs as cannot enter one of dir's parents (a checkout under /root,
// mode 0700); then it is PlaceRoot/clipper-<hash of dir's absolute
// path>/postgres, the same folder on every run from the same checkout, and
// moved is true. Its parent is made here, owned by root and closed to
// writes by others, with a note naming dir.
func Place(dir string) (place string, moved bool, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	err = pgcluster.Reachable(dir)
	if err == nil || !errors.Is(err, pgcluster.ErrUnreachable) {
		return dir, false, err
	}
	home := movedHome(dir)
	if err := os.Mkdir(home, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", false, fmt.Errorf("create %s: %w", home, err)
	}
	// PlaceRoot is writable by everyone: use the folder only if this user
	// made it, so nobody else can plant a cluster or a symlink there.
	fi, err := os.Lstat(home)
	if err != nil {
		return "", false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return "", false, fmt.Errorf("refusing to keep the cluster in %s: it is not a folder owned by uid %d and closed to writes by others; remove it", home, os.Geteuid())
	}
	if err := os.WriteFile(filepath.Join(home, "checkout"), []byte(dir+"\n"), 0o644); err != nil {
		return "", false, err
	}
	return filepath.Join(home, "postgres"), true, nil
}

// movedHome is the folder under PlaceRoot for a cluster asked for at dir.
func movedHome(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(PlaceRoot, "clipper-"+hex.EncodeToString(sum[:])[:12])
}

// Remove deletes the cluster asked for at dir, both at dir and at its Place
// under PlaceRoot, and returns the folders it removed. It refuses while a
// server runs from either.
func Remove(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	home := movedHome(dir)
	var removed []string
	for _, d := range []string{dir, home} {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			continue
		}
		data := d
		if d == home {
			data = filepath.Join(home, "postgres")
		}
		if err := pgcluster.CheckStopped(data); err != nil {
			return removed, err
		}
		if err := os.RemoveAll(d); err != nil {
			return removed, err
		}
		removed = append(removed, d)
	}
	return removed, nil
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

// Start starts (or restarts) the cluster and makes sure the database
// exists. The cluster lives at opts.Dir, or at its Place when the server
// user cannot reach opts.Dir.
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
	place, moved, err := Place(dir)
	if err != nil {
		return nil, err
	}
	dir = place
	c, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: dir, Port: opts.Port, Fast: opts.Fast, Settings: opts.Settings, Logf: opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	db := &Database{Cluster: c, Admin: c.DSN("postgres"), URL: c.DSN("postgres"), Dir: dir, Moved: moved}
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
