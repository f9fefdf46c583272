package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/devenv"
	"github.com/clipper/clipper/internal/migrate"
)

func runDev(ctx context.Context, args []string) error {
	fs := newFlags("dev", "[--dir DIR] [--port PORT]", `Starts everything locally with no account and no configuration:
  1. PostgreSQL: DATABASE_URL (or DATABASE_URL_FILE) if set, else a local cluster kept in DIR
     (reused on the next run) on loopback PORT, run as an unprivileged
     user when started as root;
  2. the migrations, 3. the seed data and a demo API key (printed once),
  4. the daemon.
Ctrl-C stops the daemon and then PostgreSQL cleanly.`)
	dir := fs.String("dir", ".dev", "folder for the local cluster and local storage")
	port := fs.Int("port", 54329, "port of the local cluster (a free one is used if it is taken)")
	if err := parse(fs, args); err != nil {
		return err
	}

	dsn, err := config.DatabaseURL()
	if err != nil {
		return usageError{err.Error()}
	}
	if dsn == "" {
		p := *port
		if !portFree(p) {
			fmt.Printf("Port %d is taken; using a free port instead.\n", p)
			p = 0
		}
		start := time.Now()
		db, err := devenv.Start(ctx, devenv.Options{
			Dir: filepath.Join(*dir, "postgres"), Database: "clipper", Port: p,
			Logf: func(format string, a ...any) { fmt.Printf("postgres: "+format+"\n", a...) },
		})
		if err != nil {
			return err
		}
		defer func() {
			fmt.Println("Stopping PostgreSQL...")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := db.Stop(stopCtx); err != nil {
				fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
			} else {
				fmt.Println("PostgreSQL stopped.")
			}
		}()
		dsn = db.URL
		fmt.Printf("PostgreSQL ready in %s\n  DATABASE_URL=%s\n", time.Since(start).Round(time.Millisecond), dsn)
		if err := os.Setenv("DATABASE_URL", dsn); err != nil {
			return err
		}
	} else {
		fmt.Println("Using DATABASE_URL from the environment.")
	}

	res, err := migrate.Up(ctx, dsn, os.Stdout)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Println("Migrations: database is up to date.")
	}
	pool, err := database.Open(ctx, dsn, database.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	key, err := seedAll(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	fmt.Printf("Seeded demo data. Demo API key (shown once, only its hash is stored):\n  %s\n", key)
	return devServe(ctx, dsn, key)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
