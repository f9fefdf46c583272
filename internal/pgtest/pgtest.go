// Package pgtest gives tests a real, migrated PostgreSQL: a shared
// database per test binary where each test runs in a rolled-back
// transaction, and fresh databases for tests that must commit or LISTEN.
//
// The server is TEST_DATABASE_URL (a superuser DSN; `make test` sets it),
// or else a throwaway cluster this package starts and stops itself.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgcluster"
	"github.com/clipper/clipper/supabase"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	cluster    *pgcluster.Cluster

	templateOnce sync.Once
	templateName string
	templateErr  error

	sharedOnce sync.Once
	sharedPool *pgxpool.Pool
	sharedURL  string
	sharedName string
	sharedErr  error
)

// Main runs the package's tests, then the after functions (clean-ups
// that belong to no single test), and stops the throwaway cluster, if this
// package started one. Call it from TestMain.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if sharedPool != nil {
		sharedPool.Close()
		_ = database.DropDatabase(context.Background(), serverURL, sharedName)
	}
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = cluster.Stop(ctx)
		cancel()
		_ = os.RemoveAll(cluster.DataDir())
	}
	os.Exit(code)
}

// ServerURL returns a superuser DSN for the test server's postgres database.
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			serverURL = u
			return
		}
		dir, err := os.MkdirTemp("", "clipper-pgtest-")
		if err != nil {
			serverErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, serverErr = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Fast: true})
		if serverErr == nil {
			serverURL = cluster.DSN("postgres")
		}
	})
	if serverErr != nil {
		t.Fatalf("pgtest: no PostgreSQL for tests (set TEST_DATABASE_URL or install PostgreSQL): %v", serverErr)
	}
	return serverURL
}

// WithDatabase returns dsn with its database name replaced.
func WithDatabase(dsn, name string) string {
	renamed, err := database.Renamed(dsn, name)
	if err != nil {
		return dsn
	}
	return renamed
}

// migrationsHash names the template after the exact migration set, so a
// changed migration never reuses a stale template.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(supabase.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(supabase.Migrations, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	h.Write([]byte(bootstrap.SQL()))
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

// Template returns the name of a database holding the migrated schema,
// built once per server and migration set (test binaries share it).
func Template(t testing.TB) string {
	t.Helper()
	admin := ServerURL(t)
	templateOnce.Do(func() {
		templateName, templateErr = buildTemplate(admin)
	})
	if templateErr != nil {
		t.Fatalf("pgtest: build template database: %v", templateErr)
	}
	return templateName
}

func buildTemplate(admin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "clipper_tpl_" + sum
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	// Test binaries run in parallel; one builds, the others wait.
	if _, err := conn.Exec(ctx, "select pg_advisory_lock(727274)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "select pg_advisory_unlock(727274)") //nolint:errcheck

	var isTemplate *bool
	err = conn.QueryRow(ctx, "select datistemplate from pg_database where datname = $1", name).Scan(&isTemplate)
	if err == nil && isTemplate != nil && *isTemplate {
		return name, nil
	}
	if err == nil { // a half-built template from an interrupted run
		if err := database.DropDatabase(ctx, admin, name); err != nil {
			return "", err
		}
	}
	dsn, err := database.CreateDatabase(ctx, admin, name, "")
	if err != nil {
		return "", err
	}
	if _, err := migrate.Up(ctx, dsn, nil); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "alter database "+pgx.Identifier{name}.Sanitize()+" is_template true"); err != nil {
		return "", err
	}
	return name, nil
}

// NewDatabase creates a fresh migrated database for one test and drops it
// when the test ends. Use it for tests that commit, LISTEN, or run the
// daemon; use Tx otherwise.
func NewDatabase(t testing.TB) string {
	t.Helper()
	tpl := Template(t)
	admin := ServerURL(t)
	name := "clipper_test_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := database.CreateDatabase(ctx, admin, name, tpl)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = database.DropDatabase(context.Background(), admin, name) })
	return dsn
}

// NewPool returns a pool on a fresh database (see NewDatabase).
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dsn
}

// SharedPool returns the pool on this test binary's shared database. Tests
// must not commit into it; use Tx.
func SharedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	sharedOnce.Do(func() {
		tpl := Template(t)
		admin := ServerURL(t)
		name := "clipper_shared_" + randomSuffix()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sharedName = name
		if sharedURL, sharedErr = database.CreateDatabase(ctx, admin, name, tpl); sharedErr != nil {
			return
		}
		sharedPool, sharedErr = pgxpool.New(context.Background(), sharedURL)
	})
	if sharedErr != nil {
		t.Fatalf("pgtest: shared database: %v", sharedErr)
	}
	return sharedPool
}

// Tx begins a transaction on the shared database and rolls it back when
// the test ends, so tests never see each other's rows.
func Tx(t testing.TB) pgx.Tx {
	t.Helper()
	tx, err := SharedPool(t).Begin(context.Background())
	if err != nil {
		t.Fatalf("pgtest: begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
