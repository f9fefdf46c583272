package migrate

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"sync"

	"github.com/amacneil/dbmate/v2/pkg/dbmate"
	"github.com/amacneil/dbmate/v2/pkg/driver/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// driverScheme names dbmate's Postgres driver running over pgx. dbmate's
// own postgres driver connects with lib/pq, which reads a DSN differently
// from pgx: without sslmode it demands TLS (pgx prefers it, then falls
// back), so `postgres://u:p@localhost:5432/db` bootstrapped the database
// over pgx and then failed in dbmate with "SSL is not enabled on the
// server". This driver keeps dbmate's SQL (history table, inserts) and
// hands it the connection settings pgx parsed, so both connect alike.
const driverScheme = "clipper-pgx"

func init() { dbmate.RegisterDriver(newPgxDriver, driverScheme) }

// configs passes each parsed pgx config to the driver dbmate builds from a
// URL: the URL carries only a key into this map, never the DSN (which may
// hold a password) or its parts.
var configs sync.Map // string -> *pgx.ConnConfig

func driverURL(cfg *pgx.ConnConfig) *url.URL {
	// Keyed by a hash of the text the config was parsed from: two configs
	// from the same text connect alike, so sharing an entry is harmless.
	sum := sha256.Sum256([]byte(cfg.ConnString()))
	key := hex.EncodeToString(sum[:16])
	configs.Store(key, cfg)
	return &url.URL{Scheme: driverScheme, Opaque: key}
}

type pgxDriver struct {
	*postgres.Driver
	cfg *pgx.ConnConfig
}

func newPgxDriver(c dbmate.DriverConfig) dbmate.Driver {
	d := &pgxDriver{Driver: postgres.NewDriver(c).(*postgres.Driver)}
	if v, ok := configs.Load(c.DatabaseURL.Opaque); ok {
		d.cfg = v.(*pgx.ConnConfig)
	}
	return d
}

var errNoConfig = errors.New("migrate: internal error: no connection settings for the migration driver")

// Open connects with pgx's own settings (database/sql over pgx/stdlib).
func (d *pgxDriver) Open() (*sql.DB, error) {
	if d.cfg == nil {
		return nil, errNoConfig
	}
	return stdlib.OpenDB(*d.cfg.Copy()), nil
}

// Ping checks that the database answers.
func (d *pgxDriver) Ping() error {
	db, err := d.Open()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

// QueryError keeps the statement position pgx reports, as dbmate's lib/pq
// driver does for its errors.
func (d *pgxDriver) QueryError(query string, err error) error {
	pos := 0
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		pos = int(pgErr.Position)
	}
	return &dbmate.QueryError{Err: err, Query: query, Position: pos}
}

// CreateMigrationsTable creates dbmate's history table, and its schema if
// that is missing (dbmate's driver recognises only lib/pq's error for it).
func (d *pgxDriver) CreateMigrationsTable(db *sql.DB) error {
	schema, table, _ := strings.Cut(HistoryTable, ".")
	create := "create table if not exists " + pgx.Identifier{schema, table}.Sanitize() + " (version varchar primary key)"
	_, err := db.Exec(create)
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "3F000" {
		return err
	}
	// Only when missing: creating a schema needs a right the table does not.
	if _, err := db.Exec("create schema if not exists " + pgx.Identifier{schema}.Sanitize()); err != nil {
		return err
	}
	_, err = db.Exec(create)
	return err
}
