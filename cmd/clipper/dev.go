package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/devenv"
	"github.com/clipper/clipper/internal/migrate"
	"github.com/clipper/clipper/internal/pgcluster"
)

func runDev(ctx context.Context, args []string) error {
	fs := newFlags("dev", "[--dir DIR] [--port PORT] [--reset]", `Starts everything locally with no account and no configuration:
  1. PostgreSQL: DATABASE_URL (or DATABASE_URL_FILE) if set, else a local cluster kept in
     DIR/postgres (reused on the next run) on loopback PORT, run as an
     unprivileged user when started as root. When that user cannot enter
     the checkout (e.g. a clone under /root, mode 0700), the cluster is kept
     in /var/tmp/clipper-<hash of the path>/postgres instead, the same
     folder on every run; the first lines printed say where;
  2. the migrations, 3. the seed data and a demo API key (printed once),
  4. the daemon, on CLIPPER_ADDR (a free port if the default is taken).
Ctrl-C stops the daemon and then PostgreSQL cleanly, and exits 0. Under
make, Ctrl-Z is ignored (it would stop the daemon alone, not make).
--reset deletes the local cluster (wherever it lives) and DIR, then exits.`)
	dir := fs.String("dir", ".dev", "folder for the local cluster and local storage")
	port := fs.Int("port", 54329, "port of the local cluster (a free one is used if it is taken)")
	reset := fs.Bool("reset", false, "delete the local cluster and DIR (stop 'clipper dev' first), then exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *reset {
		return resetDev(*dir)
	}
	// Ctrl-C goes to this process alone, not to make and go run above it.
	defer takeTerminal()()

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
		opts := devenv.Options{
			Dir: filepath.Join(*dir, "postgres"), Database: "clipper", Port: p,
			Logf: func(format string, a ...any) { fmt.Printf("postgres: "+format+"\n", a...) },
		}
		db, err := devenv.Start(ctx, opts)
		if errors.Is(err, pgcluster.ErrPortTaken) && p != 0 {
			// Another server (another checkout's make dev) took the port
			// between the check above and the server's bind.
			fmt.Printf("Port %d was taken meanwhile; using a free port instead.\n", p)
			opts.Port = 0
			db, err = devenv.Start(ctx, opts)
		}
		if err != nil {
			return err
		}
		if db.Moved {
			asked, _ := filepath.Abs(filepath.Join(*dir, "postgres"))
			fmt.Printf("The PostgreSQL server user cannot reach %s, so the local cluster lives in\n  %s\n(reused on every run from this checkout; 'clipper dev --reset' or 'make clean' deletes it).\n",
				asked, db.Dir)
		} else {
			fmt.Printf("Local cluster: %s ('clipper dev --reset' or 'make clean' deletes it)\n", db.Dir)
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

// resetDev deletes the local cluster of dir, wherever it lives, and dir.
func resetDev(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if wd, err := os.Getwd(); err == nil && (abs == wd || strings.HasPrefix(wd, abs+string(filepath.Separator))) {
		return usageError{fmt.Sprintf("--dir %s holds the current folder; refusing to delete it", dir)}
	}
	removed, err := devenv.Remove(filepath.Join(dir, "postgres"))
	for _, d := range removed {
		fmt.Println("Removed", d)
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		fmt.Println("Removed", dir)
	}
	return nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
