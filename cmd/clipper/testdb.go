package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/clipper/clipper/internal/devenv"
)

func runTestDB(ctx context.Context, args []string) error {
	fs := newFlags("testdb", "[--dir DIR] -- COMMAND [ARGS...]", `Runs COMMAND with TEST_DATABASE_URL naming a superuser DSN on a throwaway
PostgreSQL cluster, then stops the cluster and removes it, whether COMMAND
passed or failed, and exits with COMMAND's status. If TEST_DATABASE_URL is
already set, COMMAND simply runs against it. 'make test' uses this.`)
	dir := fs.String("dir", "", "cluster folder (default: a new temporary folder, removed afterwards)")
	if err := parse(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usageError{"no command given (use: clipper testdb -- go test ./...)"}
	}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		return runChild(argv, nil)
	}
	clusterDir := *dir
	if clusterDir == "" {
		tmp, err := os.MkdirTemp("", "clipper-testdb-")
		if err != nil {
			return err
		}
		clusterDir = tmp
		// Also removes the cluster's Place when it had to move (TMPDIR
		// closed to the server user).
		defer func() { _, _ = devenv.Remove(tmp) }()
	}
	start := time.Now()
	db, err := devenv.Start(ctx, devenv.Options{Dir: clusterDir, Fast: true,
		Settings: map[string]string{"max_connections": "300"}})
	if err != nil {
		return err
	}
	if db.Moved {
		fmt.Fprintf(os.Stderr, "testdb: the PostgreSQL server user cannot reach %s; the cluster lives in %s\n", clusterDir, db.Dir)
	}
	fmt.Fprintf(os.Stderr, "testdb: PostgreSQL ready on port %d in %s\n", db.Cluster.Port(), time.Since(start).Round(time.Millisecond))
	childErr := runChild(argv, []string{"TEST_DATABASE_URL=" + db.Admin})
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := db.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "testdb: stop PostgreSQL:", err)
	}
	return childErr
}

// runChild runs argv with extra environment, passing its exit status on.
// Ctrl-C reaches the child through the terminal's process group; this
// process waits for it so that cleanup still runs.
func runChild(argv, env []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if code := exit.ExitCode(); code > 0 {
			return exitError(code)
		}
		return exitError(1)
	}
	return err
}
