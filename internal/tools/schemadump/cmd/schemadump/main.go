// Command schemadump regenerates db/schema/schema.sql (see `make generate`):
// it migrates a fresh database on $TEST_DATABASE_URL (a superuser DSN of a
// plain PostgreSQL; `clipper testdb --` provides one), dumps its schema
// with pg_dump and drops it again.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/tools/schemadump"
)

// migrateLock is the advisory lock internal/pgtest and typesgen hold while
// they migrate: the bootstrap creates cluster-wide roles.
const migrateLock = 727274

func main() {
	out := flag.String("out", schemadump.Path, "where the snapshot goes")
	server := flag.String("server", os.Getenv("TEST_DATABASE_URL"), "superuser DSN of a plain PostgreSQL to create the throwaway database on")
	flag.Parse()
	if *server == "" {
		fmt.Fprintln(os.Stderr, "schemadump: no server: set TEST_DATABASE_URL or -server, or run through: go run ./cmd/clipper testdb -- go run ./internal/tools/schemadump/cmd/schemadump")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := run(ctx, *server, *out); err != nil {
		fmt.Fprintln(os.Stderr, "schemadump:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "schemadump: wrote", *out)
}

func run(ctx context.Context, server, out string) error {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "clipper_schemadump_" + hex.EncodeToString(suffix)
	dsn, err := database.CreateDatabase(ctx, server, name, "")
	if err != nil {
		return err
	}
	defer func() { _ = database.DropDatabase(ctx, server, name) }()

	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", migrateLock); err != nil {
		return err
	}
	_, err = migrate.Up(ctx, dsn, io.Discard)
	if _, uerr := conn.Exec(ctx, "select pg_advisory_unlock($1)", migrateLock); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	dump, err := schemadump.Dump(ctx, dsn)
	if err != nil {
		return err
	}
	return os.WriteFile(out, dump, 0o644)
}
