// Command clipper is the clipper data layer's one binary: migrations,
// seed data, the local development environment, cleanup, API keys, the
// benchmark, and the daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/config"
)

// command is one subcommand: its flags are parsed by run itself.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "start everything locally: Postgres, migrations, seed, daemon", runDev},
		{"serve", "run the daemon (HTTP API, webhooks, NOTIFY, cleanup)", runServe},
		{"migrate", "apply the migrations (plain-Postgres bootstrap first where needed)", runMigrate},
		{"seed", "load the minimal development data and print a demo API key", runSeed},
		{"keys", "create, list, rotate and revoke API keys (prints a new key once)", runKeys},
		{"cleanup", "delete expired jobs (and their events) and reap stale jobs", runCleanup},
		{"bench", "load realistic volumes and print throughput and latency figures", runBench},
		{"testdb", "run a command with TEST_DATABASE_URL set to a throwaway Postgres", runTestDB},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if err := config.LoadDotEnv(".env"); err != nil {
		fmt.Fprintln(stderr, "clipper:", err)
		return 2
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "clipper %s: %v\nRun 'clipper %s --help' for usage.\n", c.name, err, c.name)
			return 2
		default:
			var exit exitError
			if errors.As(err, &exit) {
				return int(exit)
			}
			fmt.Fprintf(stderr, "clipper %s: %s\n", c.name, describe(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "clipper: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// describe renders an error for a person at a terminal: coded errors by
// their safe message, others in full (they come from this process's own
// setup, not from request data).
func describe(err error) string {
	var e *apperr.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	return err.Error()
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: clipper <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The database is DATABASE_URL (or the file DATABASE_URL_FILE names), except for")
	fmt.Fprintln(w, "bench (--database-url) and testdb (a throwaway cluster); a .env file in the")
	fmt.Fprintln(w, "current folder is read first.")
	fmt.Fprintln(w, "Run 'clipper <command> --help' for a command's flags.")
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError ends the process with a code and no message (the message was
// already printed, e.g. by a child command).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newFlags returns a flag set whose --help prints summary, usage and flags.
func newFlags(name, usageLine, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("clipper "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\n%s\n", strings.TrimSpace("Usage: clipper "+name+" "+usageLine), summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args; a bad flag is a usage error, --help returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError(2) // the flag package already printed the problem and usage
	}
	return nil
}

// databaseURL returns DATABASE_URL (or the contents of the file named by
// DATABASE_URL_FILE, as the daemon reads it), or a usage error naming it.
func databaseURL() (string, error) {
	u, err := config.DatabaseURL()
	if err != nil {
		return "", usageError{err.Error()}
	}
	if u == "" {
		return "", usageError{"DATABASE_URL is not set (or run 'clipper dev' for a local database)"}
	}
	return u, nil
}
