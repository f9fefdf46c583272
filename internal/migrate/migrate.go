// Package migrate applies the embedded Supabase migrations with dbmate,
// after the plain-Postgres bootstrap where the database needs it.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	_ "github.com/amacneil/dbmate/v2/pkg/driver/postgres" // registers postgres:// for dbmate
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/bootstrap"
	"github.com/clipper/clipper/supabase"
)

// HistoryTable is dbmate's history table. It lives outside public, which
// PostgREST exposes; the Supabase CLI keeps its own history in
// supabase_migrations.
const HistoryTable = "clipper_meta.schema_migrations"

// Migration is one migration file and whether the database has it.
type Migration struct {
	Version string
	Name    string
	Applied bool
}

// Result says what Up did.
type Result struct {
	Bootstrapped bool     // the plain-Postgres base was applied
	Applied      []string // migration files applied now
}

// Up bootstraps a plain PostgreSQL if needed, then applies every pending
// migration in order. Progress lines go to log (nil discards them).
func Up(ctx context.Context, databaseURL string, log io.Writer) (Result, error) {
	if log == nil {
		log = io.Discard
	}
	var res Result
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return res, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.Background())

	res.Bootstrapped, err = bootstrap.Apply(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("migrate: %w", err)
	}
	if res.Bootstrapped {
		fmt.Fprintln(log, "Plain PostgreSQL: applied the Supabase base (roles, auth, storage)")
	}

	db, err := newDB(databaseURL, log)
	if err != nil {
		return res, err
	}
	before, err := pending(db)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := db.Migrate(); err != nil {
		return res, fmt.Errorf("migrate: apply: %w", err)
	}
	res.Applied = before
	return res, nil
}

// Status lists every embedded migration and whether it is applied.
func Status(ctx context.Context, databaseURL string) ([]Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := newDB(databaseURL, io.Discard)
	if err != nil {
		return nil, err
	}
	found, err := db.FindMigrations()
	if err != nil {
		return nil, fmt.Errorf("migrate: status: %w", err)
	}
	out := make([]Migration, 0, len(found))
	for _, m := range found {
		out = append(out, Migration{Version: m.Version, Name: m.FileName, Applied: m.Applied})
	}
	return out, nil
}

// Files lists the embedded migration file names in order.
func Files() ([]string, error) {
	entries, err := supabase.Migrations.ReadDir("migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read embedded migrations: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func pending(db *dbmate.DB) ([]string, error) {
	found, err := db.FindMigrations()
	if err != nil {
		// A database without the history table has everything pending.
		if errors.Is(err, dbmate.ErrNoMigrationFiles) {
			return nil, err
		}
		return nil, fmt.Errorf("migrate: find migrations: %w", err)
	}
	var names []string
	for _, m := range found {
		if !m.Applied {
			names = append(names, m.FileName)
		}
	}
	return names, nil
}

func newDB(databaseURL string, log io.Writer) (*dbmate.DB, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return nil, errors.New("migrate: DATABASE_URL is not a valid URL")
	}
	if u.Scheme == "postgresql" {
		u.Scheme = "postgres"
	}
	db := dbmate.New(u)
	db.FS = supabase.Migrations
	db.MigrationsDir = []string{"migrations"}
	db.MigrationsTableName = HistoryTable
	db.AutoDumpSchema = false
	db.Strict = false
	db.Log = log
	return db, nil
}
