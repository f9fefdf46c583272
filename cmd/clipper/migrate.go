package main

import (
	"context"
	"fmt"
	"os"

	"github.com/clipper/clipper/internal/migrate"
)

func runMigrate(ctx context.Context, args []string) error {
	fs := newFlags("migrate", "[--status]", `Applies the embedded migrations (supabase/migrations) to DATABASE_URL with
dbmate, recording them in `+migrate.HistoryTable+`. On a plain PostgreSQL
(no Supabase auth/storage schemas) it first creates the parts of Supabase
the migrations need; on Supabase it leaves those alone. Safe to run again.`)
	status := fs.Bool("status", false, "list applied and pending migrations, change nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	if *status {
		return printStatus(ctx, dsn)
	}
	res, err := migrate.Up(ctx, dsn, os.Stdout)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Println("Database is up to date.")
	} else {
		fmt.Printf("Applied %d migration(s).\n", len(res.Applied))
	}
	return nil
}

func printStatus(ctx context.Context, dsn string) error {
	list, err := migrate.Status(ctx, dsn)
	if err != nil {
		return err
	}
	pending := 0
	for _, m := range list {
		mark := "[x]"
		if !m.Applied {
			mark = "[ ]"
			pending++
		}
		fmt.Printf("%s %s\n", mark, m.Name)
	}
	fmt.Printf("\nApplied: %d\nPending: %d\n", len(list)-pending, pending)
	return nil
}
