// Command typesgen regenerates the TypeScript types in
// db/typescript/generated from supabase/migrations (see `make types`).
//
// It migrates a fresh database on $TEST_DATABASE_URL (a superuser DSN of a
// plain PostgreSQL) or, when that is unset, on a throwaway cluster it
// starts and stops itself, then runs postgres-meta and drizzle-kit pull.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clipper/clipper/internal/tools/typesgen"
)

func main() {
	dir := flag.String("dir", "db/typescript", "the TypeScript package (node_modules, drizzle.config.ts)")
	out := flag.String("out", "db/typescript/generated", "where the generated files go")
	server := flag.String("server", os.Getenv("TEST_DATABASE_URL"), "superuser DSN of a plain PostgreSQL to create the throwaway database on; empty starts a cluster")
	quiet := flag.Bool("q", false, "print nothing but errors")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	opts := typesgen.Options{Dir: *dir, Out: *out, ServerURL: *server}
	if !*quiet {
		opts.Log = os.Stderr
	}
	t0 := time.Now()
	if err := typesgen.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "types generated in %s\n", time.Since(t0).Round(100*time.Millisecond))
	}
}
