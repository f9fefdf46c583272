package pgcluster

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testDataDir returns a data dir path inside a fresh temporary directory that
// the unprivileged server user can reach when the test runs as root.
func testDataDir(t *testing.T) string {
	t.Helper()
	if _, err := FindBinDir(); err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	if os.Geteuid() == 0 {
		// t.TempDir creates <TMPDIR>/<TestName><n>/<seq>, both 0700 root.
		for _, d := range []string{tmp, filepath.Dir(tmp)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(tmp, "pgdata")
}

// noErr fails the test at once if err is not nil.
func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// query runs sql (one or more statements) on the cluster's postgres
// database and returns the first column of the last row as text.
func query(t *testing.T, c *Cluster, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	noErr(t, err, "connect")
	defer conn.Close(ctx)
	// The simple protocol allows several statements; the last result wins.
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	noErr(t, err, sql)
	var s string
	for rows.Next() {
		noErr(t, rows.Scan(&s), sql)
	}
	noErr(t, rows.Err(), sql)
	return s
}

func TestStartStopReuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := testDataDir(t)

	var lines []string
	opts := Options{
		DataDir:  dir,
		Fast:     true,
		Settings: map[string]string{"application_name": "pgcluster_test"},
		Logf: func(format string, args ...any) {
			lines = append(lines, format)
			t.Logf(format, args...)
		},
	}

	c, err := Start(ctx, opts)
	noErr(t, err, "Start")
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if c.DataDir() != dir || c.Port() == 0 {
		t.Fatalf("DataDir %q Port %d", c.DataDir(), c.Port())
	}
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.Port()) + "/app?sslmode=disable"; c.DSN("app") != want {
		t.Fatalf("DSN %q, want %q", c.DSN("app"), want)
	}
	if v := query(t, c, "select version()"); !strings.Contains(v, "PostgreSQL") {
		t.Fatalf("version() = %q", v)
	}
	for setting, want := range map[string]string{"fsync": "off", "application_name": "pgcluster_test", "max_connections": "200", "listen_addresses": "127.0.0.1"} {
		if got := query(t, c, "show "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	query(t, c, "create table kept as select 1 as id; select 'ok'")
	if len(lines) != 2 {
		t.Fatalf("progress lines %q, want initdb and listening", lines)
	}

	// A second server on the same data dir is refused while the first runs.
	if _, err := Start(ctx, opts); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start on a running data dir: %v", err)
	}

	noErr(t, c.Stop(ctx), "Stop")
	noErr(t, c.Stop(ctx), "second Stop")
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid after Stop: %v", err)
	}

	// Reuse: no initdb, and the data survives.
	lines = nil
	c2, err := Start(ctx, opts)
	noErr(t, err, "Start on existing cluster")
	t.Cleanup(func() { _ = c2.Stop(context.Background()) })
	if len(lines) != 1 || !strings.Contains(lines[0], "listening") {
		t.Fatalf("progress lines %q, want only the listening line", lines)
	}
	if n := query(t, c2, "select count(*)::text from kept"); n != "1" {
		t.Fatalf("rows in kept = %s, want 1", n)
	}
	noErr(t, c2.Stop(ctx), "Stop")
	noErr(t, c2.Stop(ctx), "second Stop")
}

func TestStalePidFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := testDataDir(t)

	c, err := Start(ctx, Options{DataDir: dir, Fast: true})
	noErr(t, err, "Start")
	noErr(t, c.Stop(ctx), "Stop")

	// A killed server leaves postmaster.pid behind; here its PID belongs to
	// an unrelated live process, as after a container restart.
	other := exec.Command("sleep", "30")
	noErr(t, other.Start(), "start sleep")
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	stale := strings.Join([]string{strconv.Itoa(other.Process.Pid), dir, "0", "5999", "", "127.0.0.1", "0 0", "ready   ", ""}, "\n")
	noErr(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(stale), 0o600), "write postmaster.pid")

	c, err = Start(ctx, Options{DataDir: dir, Fast: true})
	noErr(t, err, "Start with stale postmaster.pid")
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	query(t, c, "select version()")
	noErr(t, c.Stop(ctx), "Stop")
}

func TestStartFailureQuotesLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := testDataDir(t)

	c, err := Start(ctx, Options{DataDir: dir, Fast: true, Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil || c != nil {
		t.Fatalf("Start with a bad setting: %v", err)
	}
	if !strings.Contains(err.Error(), `"no_such_setting"`) {
		t.Fatalf("error does not quote the server log:\n%v", err)
	}
	t.Logf("error:\n%v", err)
	noErr(t, c.Stop(ctx), "Stop after a failed start")
}

func TestPortTaken(t *testing.T) {
	dir := testDataDir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, err, "listen")
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	c, err := Start(context.Background(), Options{DataDir: dir, Fast: true, Port: port})
	if err == nil || !errors.Is(err, ErrPortTaken) {
		_ = c.Stop(context.Background())
		t.Fatalf("Start on a taken port: %v", err)
	}
}

func TestCancelDuringInitdb(t *testing.T) {
	dir := testDataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: dir, Fast: true})
	if err == nil {
		_ = c.Stop(context.Background())
		t.Skip("initdb finished before the deadline")
	}
	t.Logf("cancelled: %v", err)

	// initdb ran to completion, so the next Start reuses a whole cluster.
	var lines []string
	logf := func(format string, args ...any) { lines = append(lines, format) }
	c, err = Start(context.Background(), Options{DataDir: dir, Fast: true, Logf: logf})
	noErr(t, err, "Start after a cancelled first Start")
	defer c.Stop(context.Background())
	if len(lines) != 1 {
		t.Fatalf("progress lines %q, want only the listening line", lines)
	}
	query(t, c, "select version()")
	noErr(t, c.Stop(context.Background()), "Stop")
}

// The server leads a process group of its own, so a terminal's Ctrl-C,
// which goes to the caller's whole foreground group, does not stop it
// before the caller's clients are done: the caller stops it with Stop.
func TestServerHasItsOwnProcessGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Start(ctx, Options{DataDir: testDataDir(t), Fast: true})
	noErr(t, err, "Start")
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	pgid, err := syscall.Getpgid(c.proc.Pid)
	noErr(t, err, "getpgid")
	if pgid != c.proc.Pid || pgid == syscall.Getpgrp() {
		t.Fatalf("postmaster %d is in process group %d (this process: %d), want its own", c.proc.Pid, pgid, syscall.Getpgrp())
	}
	noErr(t, c.Stop(ctx), "Stop")
}

func TestHugePagesReportsTheBufferPoolMapping(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := testDataDir(t)
	for _, mode := range []string{"off", "on"} {
		c, err := Start(ctx, Options{DataDir: dir, Fast: true,
			Settings: map[string]string{"huge_pages": mode, "shared_buffers": "32MB"}})
		if mode == "on" && err != nil && strings.Contains(err.Error(), "could not map anonymous shared memory") {
			t.Logf("huge_pages=on: this machine has too few huge pages reserved (vm.nr_hugepages): %v", err)
			continue
		}
		noErr(t, err, "Start huge_pages="+mode)
		got, err := c.HugePages()
		noErr(t, err, "HugePages")
		noErr(t, c.Stop(ctx), "Stop")
		if got != (mode == "on") {
			t.Errorf("huge_pages=%s: HugePages() = %v", mode, got)
		}
	}
}
