// Package migrate applies the embedded Supabase migrations with dbmate,
// after the plain-Postgres bootstrap where the database needs it.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
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
//
// databaseURL is anything pgx (and libpq) accepts: a URL or key=value
// string, with or without sslmode (default prefer: TLS if the server has
// it). dbmate runs over the same pgx connection settings, so the two
// never disagree about TLS. Nothing is changed until both can connect;
// if a migration fails after the bootstrap or earlier migrations were
// applied, the error says so and that running it again resumes there.
func Up(ctx context.Context, databaseURL string, log io.Writer) (Result, error) {
	if log == nil {
		log = io.Discard
	}
	var res Result
	cfg, err := parseConfig(databaseURL)
	if err != nil {
		return res, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return res, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.Background())

	db := newDB(cfg, log)
	// dbmate's own connection, checked before anything is written.
	before, err := pending(db)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	res.Bootstrapped, err = bootstrap.Apply(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("migrate: %w (nothing was recorded as applied; run clipper migrate again once fixed: every step is idempotent)", err)
	}
	if res.Bootstrapped {
		fmt.Fprintln(log, "Plain PostgreSQL: applied the Supabase base (roles, auth, storage)")
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("migrate: stopped before the first migration (the plain-Postgres base may be applied; it is idempotent): run clipper migrate again: %w", err)
	}
	if err := db.Migrate(); err != nil {
		return res, halfway(db, res.Bootstrapped, before, err)
	}
	res.Applied = before
	return res, nil
}

// halfway explains a failed run: what is already in the database, and
// that running again resumes where it stopped.
func halfway(db *dbmate.DB, bootstrapped bool, before []string, cause error) error {
	done := 0
	next := ""
	if still, err := pending(db); err == nil {
		done = len(before) - len(still)
		if len(still) > 0 {
			next = still[0]
		}
	}
	var b strings.Builder
	b.WriteString("migrate: ")
	// dbmate reports a failed file as a QueryError; it ran in one
	// transaction, rolled back, and is the first one still pending.
	var qerr *dbmate.QueryError
	inFile := errors.As(cause, &qerr) && next != ""
	if inFile {
		fmt.Fprintf(&b, "apply %s: %v. ", next, cause)
	} else {
		fmt.Fprintf(&b, "apply: %v. ", cause)
	}
	if bootstrapped {
		b.WriteString("The plain-Postgres base was applied; ")
	}
	fmt.Fprintf(&b, "%d of %d pending migration(s) were applied and recorded", done, len(before))
	if inFile {
		fmt.Fprintf(&b, "; %s was rolled back", next)
	}
	b.WriteString(". Fix the cause and run clipper migrate again: it resumes at the first unapplied file")
	return errors.New(b.String())
}

// Status lists every embedded migration and whether it is applied.
func Status(ctx context.Context, databaseURL string) ([]Migration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := parseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	found, err := newDB(cfg, io.Discard).FindMigrations()
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

// parseConfig reads the DSN as pgx does (URL or key=value, PG*
// environment variables, sslmode default prefer). Its error never quotes
// the DSN, which may hold a password.
func parseConfig(databaseURL string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("migrate: DATABASE_URL is not a valid PostgreSQL connection string (URL or key=value)")
	}
	return cfg, nil
}

func newDB(cfg *pgx.ConnConfig, log io.Writer) *dbmate.DB {
	db := dbmate.New(driverURL(cfg))
	db.DriverName = driverScheme
	db.FS = supabase.Migrations
	db.MigrationsDir = []string{"migrations"}
	db.MigrationsTableName = HistoryTable
	db.AutoDumpSchema = false
	db.Strict = false
	db.Log = log
	return db
}
