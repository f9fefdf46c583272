// Package pgcluster runs a private local PostgreSQL cluster for development and tests.
package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// superuser is the role initdb creates; every DSN connects as it.
	superuser = "postgres"
	// logName is the server log file inside the data directory.
	logName = "postgres.log"
	// logRotateSize is the size above which the log is moved to logName+".old" on start.
	logRotateSize = 16 << 20
	// startTimeout bounds how long Start waits for the server to accept connections.
	startTimeout = 60 * time.Second
	// logTailLines is how many log lines a start failure quotes.
	logTailLines = 20
)

// ErrPortTaken: the port asked for in Options.Port is in use, found
// before the server started or by the server failing to bind it.
var ErrPortTaken = errors.New("port taken")

// Options configure a cluster.
type Options struct {
	// DataDir is where the cluster lives. initdb runs only if it holds no
	// cluster yet (PG_VERSION missing); otherwise the cluster is reused.
	DataDir string
	// Port is the loopback TCP port to listen on; 0 picks a free one.
	Port int
	// Fast trades durability for speed (tests): fsync, synchronous_commit
	// and full_page_writes are turned off and initdb skips syncing.
	Fast bool
	// Settings are extra server settings passed as postgres -c name=value.
	// They override the defaults; the port must be set through Port.
	Settings map[string]string
	// Logf receives short progress lines; nil means silent.
	Logf func(format string, args ...any)
}

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	dataDir string
	port    int

	proc *os.Process
	done chan struct{} // closed once the postmaster has exited
	werr error         // exit status of the postmaster; valid after done is closed

	mu       sync.Mutex
	stopping bool // Stop has signalled the postmaster
}

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (pg_ctl, initdb and postgres). It looks on PATH first, then picks the
// newest /usr/lib/postgresql/<major>/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// Resolve symlinks such as /usr/local/bin/pg_ctl so the directory
		// returned is the real installation next to its siblings.
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if hasServerBinaries(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestMajor := "", -1
	for _, d := range dirs {
		major, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil || major <= bestMajor || !hasServerBinaries(d) {
			continue
		}
		best, bestMajor = d, major
	}
	if best == "" {
		return "", errors.New("pgcluster: PostgreSQL server binaries (pg_ctl, initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install the Debian package postgresql (e.g. apt-get install postgresql-15)")
	}
	return best, nil
}

// hasServerBinaries reports whether dir holds executable pg_ctl, initdb and postgres.
func hasServerBinaries(dir string) bool {
	for _, name := range []string{"pg_ctl", "initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// Start initialises the cluster in opts.DataDir if needed, starts postgres
// listening on 127.0.0.1 (TCP only, no unix socket) and returns once it
// accepts connections; the server log is postgres.log in the data dir.
// When running as root the server runs as an unprivileged user (the data
// directory's owner, else postgres, else nobody). The server also shuts down
// if the calling process dies.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: Options.DataDir is empty")
	}
	if _, ok := opts.Settings["port"]; ok {
		return nil, errors.New("pgcluster: set the port through Options.Port, not Settings")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("pgcluster: create data dir: %w", err)
	}
	cred, err := runAs(dataDir)
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := checkTraversable(dataDir, cred); err != nil {
			return nil, err
		}
	}

	if err := checkNotRunning(dataDir, logf); err != nil {
		return nil, err
	}

	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	} else if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		return nil, fmt.Errorf("%w: pgcluster: port %d on 127.0.0.1 (another server?): %w", ErrPortTaken, port, err)
	} else {
		l.Close()
	}

	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if cred != nil {
			if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("pgcluster: chown data dir: %w", err)
			}
		}
		t0 := time.Now()
		if err := initdb(binDir, dataDir, opts.Fast, cred); err != nil {
			return nil, err
		}
		logf("pgcluster: initdb in %s (%s)", time.Since(t0).Round(time.Millisecond), dataDir)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("pgcluster: cluster initialised, not started: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	} else if fi, err := os.Stat(dataDir); err == nil && fi.Mode().Perm()&0o027 != 0 {
		// postgres refuses a data directory that others can read or enter.
		if err := os.Chmod(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("pgcluster: data dir permissions: %w", err)
		}
	}

	logPath := filepath.Join(dataDir, logName)
	logFile, logOffset, err := openLog(logPath, cred)
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(filepath.Join(binDir, "postgres"), serverArgs(dataDir, port, opts)...)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGINT is a fast shutdown: if this process dies without calling Stop,
	// the server does not linger holding the data directory. Its own
	// process group keeps a terminal's Ctrl-C, which goes to the whole
	// foreground group, away from it: the caller stops it with Stop once
	// its own clients have finished, not at the same moment.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	t0 := time.Now()
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}

	c := &Cluster{dataDir: dataDir, port: port, proc: cmd.Process, done: make(chan struct{})}
	go func() {
		c.werr = cmd.Wait()
		close(c.done)
	}()

	version, err := c.waitReady(ctx)
	if err != nil {
		c.kill()
		tail := logTail(logPath, logOffset)
		if strings.Contains(tail, "could not bind") {
			// Another server took the port between the check above and
			// the bind (two clusters starting at once).
			err = fmt.Errorf("%w: %w", ErrPortTaken, err)
		}
		return nil, fmt.Errorf("%w%s", err, tail)
	}
	logf("pgcluster: postgres %s listening on 127.0.0.1:%d (ready in %s)", version, port, time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the absolute path of the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// HugePages reports whether the server's main shared memory (the buffer
// pool) is mapped on huge pages: the postmaster's map then names
// /anon_hugepage. With the default huge_pages=try the server takes them
// when the kernel has enough reserved (vm.nr_hugepages) and otherwise
// silently uses normal pages, which every backend maps one 4 kB page at a
// time on first touch.
func (c *Cluster) HugePages() (bool, error) {
	maps, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.proc.Pid), "maps"))
	if err != nil {
		return false, fmt.Errorf("pgcluster: huge pages: %w", err)
	}
	return bytes.Contains(maps, []byte("/anon_hugepage")), nil
}

// DSN returns a connection URL for database as the postgres superuser.
func (c *Cluster) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down in fast mode (what pg_ctl stop -m fast does:
// roll back open transactions, disconnect clients, checkpoint) and waits for
// it to exit. If ctx ends first the server is stopped in immediate mode.
// Stop may be called more than once and on a nil Cluster.
func (c *Cluster) Stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	first := !c.stopping
	c.stopping = true
	c.mu.Unlock()

	select {
	case <-c.done:
		if first && c.werr != nil {
			return fmt.Errorf("pgcluster: postgres had exited before Stop: %v (see %s)", c.werr, filepath.Join(c.dataDir, logName))
		}
		return nil
	default:
	}
	if first {
		_ = c.proc.Signal(syscall.SIGINT)
	}
	select {
	case <-c.done:
		if first && c.werr != nil && !killedBy(c.werr, syscall.SIGINT) {
			return fmt.Errorf("pgcluster: postgres shutdown: %v (see %s)", c.werr, filepath.Join(c.dataDir, logName))
		}
		return nil
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("pgcluster: fast shutdown did not finish, stopped in immediate mode: %w", ctx.Err())
	}
}

// killedBy reports whether a Wait error says the process died of sig, which
// happens when a shutdown signal arrives before postgres installs its handlers.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// kill stops the server in immediate mode, escalating to SIGKILL, and waits
// for the postmaster to exit.
func (c *Cluster) kill() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	_ = c.proc.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.proc.Kill()
		<-c.done
	}
}

// waitReady polls until the server accepts a connection and returns its
// version. It fails if the postmaster exits, ctx ends or startTimeout passes.
func (c *Cluster) waitReady(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	dsn := c.DSN("postgres") + "&connect_timeout=2"
	delay := 10 * time.Millisecond
	var lastErr error
	for {
		select {
		case <-c.done:
			return "", fmt.Errorf("pgcluster: postgres exited during startup: %v", c.werr)
		default:
		}
		v, dir, err := serverInfo(ctx, dsn)
		switch {
		case err != nil:
			lastErr = err
		case filepath.Clean(dir) != c.dataDir:
			// Someone else's server took the port first; ours will fail
			// to bind and exit, which the next round reports.
			lastErr = fmt.Errorf("port %d is served from %s", c.port, dir)
		default:
			return v, nil
		}
		select {
		case <-c.done:
			return "", fmt.Errorf("pgcluster: postgres exited during startup: %v", c.werr)
		case <-ctx.Done():
			return "", fmt.Errorf("pgcluster: postgres not ready on port %d: %w (last error: %v)", c.port, ctx.Err(), lastErr)
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// serverInfo connects to dsn and returns the short server version (e.g.
// "15.18") and the server's data directory.
func serverInfo(ctx context.Context, dsn string) (version, dataDir string, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, "select current_setting('server_version'), current_setting('data_directory')").Scan(&version, &dataDir)
	if err != nil {
		return "", "", err
	}
	if f := strings.Fields(version); len(f) > 0 {
		version = f[0]
	}
	return version, dataDir, nil
}

// serverArgs builds the postgres command line: defaults, then the Fast
// settings, then opts.Settings, with the listen address and port fixed.
func serverArgs(dataDir string, port int, opts Options) []string {
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "", // TCP only: nothing needed under /var/run
		"max_connections":         "200",
		"shared_buffers":          "256MB",
	}
	if opts.Fast {
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
	}
	maps.Copy(s, opts.Settings)
	s["port"] = strconv.Itoa(port)

	args := []string{"-D", dataDir}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		args = append(args, "-c", k+"="+s[k])
	}
	return args
}

// initdb creates a new cluster in dataDir, which must be empty, falling
// back to the C locale when C.UTF-8 is not available. It runs to completion
// even if the caller's context ends.
func initdb(binDir, dataDir string, fast bool, cred *syscall.Credential) error {
	var out []byte
	var err error
	for _, locale := range []string{"C.UTF-8", "C"} {
		args := []string{"-D", dataDir, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=" + locale}
		if fast {
			args = append(args, "--no-sync")
		}
		// Not tied to ctx: a killed initdb leaves a PG_VERSION in a half-built
		// directory that the next Start would take for a cluster. It takes a
		// second or two, and on failure it empties the directory itself.
		cmd := exec.Command(filepath.Join(binDir, "initdb"), args...)
		cmd.Dir = "/" // the caller's working directory may be closed to the server user
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err = cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("invalid locale")) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pgcluster: initdb %s: %v\n%s", dataDir, err, tailLines(out, logTailLines))
	}
	return nil
}

// runAs returns the credential the server binaries must run with, or nil to
// run them as the current user. initdb and postgres refuse to run as root,
// so root hands them to the data directory's owner if that is not root,
// else to the postgres user, else to nobody.
func runAs(dataDir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if fi, err := os.Stat(dataDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			gid := st.Gid
			if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
				if g, err := strconv.Atoi(u.Gid); err == nil {
					gid = uint32(g)
				}
			}
			return &syscall.Credential{Uid: st.Uid, Gid: gid}, nil
		}
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgcluster: running as root and neither a postgres nor a nobody user exists to run the server as")
}

// ErrUnreachable says the server user cannot enter a parent folder of a data
// directory (see Reachable).
var ErrUnreachable = errors.New("pgcluster: data directory unreachable by the server user")

// Reachable reports whether a server started by Start could use dataDir:
// an error wrapping ErrUnreachable when running as root and the
// unprivileged user the server would run as cannot enter one of dataDir's
// parent folders (a checkout under /root, mode 0700), nil otherwise.
func Reachable(dataDir string) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	cred, err := runAs(dataDir)
	if err != nil || cred == nil {
		return err
	}
	return checkTraversable(dataDir, cred)
}

// CheckStopped fails if a server from dataDir is running (see Start).
func CheckStopped(dataDir string) error {
	return checkNotRunning(dataDir, func(string, ...any) {})
}

// checkTraversable reports a clear error when a parent directory of dataDir
// cannot be entered by the server user (a 0700 temporary directory, /root).
func checkTraversable(dataDir string, cred *syscall.Credential) error {
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgcluster: %w", err)
		}
		// A folder not made yet is skipped: Reachable may ask before the
		// caller makes it; Start checks again once it exists.
		if st, ok := statT(fi); ok {
			perm := uint32(fi.Mode().Perm())
			var bit uint32 = 0o001
			switch {
			case st.Uid == cred.Uid:
				bit = 0o100
			case st.Gid == cred.Gid:
				bit = 0o010
			}
			if perm&bit == 0 {
				return fmt.Errorf("%w: the server runs as uid %d, which cannot enter %s (mode %04o); chmod o+x it or use another data dir", ErrUnreachable, cred.Uid, dir, perm)
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// statT returns fi's system stat, if fi is not nil.
func statT(fi os.FileInfo) (*syscall.Stat_t, bool) {
	if fi == nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}

// checkNotRunning fails if a server from dataDir is already running. A
// postmaster.pid whose PID now belongs to an unrelated process (common after
// a container restart) is removed; one whose PID is gone is left for
// postgres, which cleans it up itself.
func checkNotRunning(dataDir string, logf func(string, ...any)) error {
	pidPath := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return nil // torn or empty file: postgres reports or replaces it
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if !isPostmasterOf(pid, dataDir) {
		if err := os.Remove(pidPath); err != nil {
			return fmt.Errorf("pgcluster: remove stale postmaster.pid: %w", err)
		}
		logf("pgcluster: removed stale postmaster.pid (pid %d is not this cluster's server)", pid)
		return nil
	}
	port := "unknown port"
	if len(lines) > 3 && strings.TrimSpace(lines[3]) != "" {
		port = "port " + strings.TrimSpace(lines[3])
	}
	return fmt.Errorf("pgcluster: a postgres server (pid %d, %s) is already running from %s; stop it first (kill -INT %d)", pid, port, dataDir, pid)
}

// isPostmasterOf reports whether live process pid looks like a postgres
// server whose working directory is dataDir. When /proc cannot tell, it
// assumes so, keeping postgres's own lock check in charge.
func isPostmasterOf(pid int, dataDir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil {
		return true
	}
	if name := strings.TrimSpace(string(comm)); name != "postgres" && name != "postmaster" {
		return false
	}
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil {
		return true
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
	}
	return cwd == want || cwd == dataDir
}

// openLog opens the server log for appending, moving an oversized one aside
// first, and returns it with its current size so a failure can quote only
// the lines written by this run.
func openLog(path string, cred *syscall.Credential) (*os.File, int64, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > logRotateSize {
		_ = os.Rename(path, path+".old")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("pgcluster: open server log: %w", err)
	}
	if cred != nil {
		_ = f.Chown(int(cred.Uid), int(cred.Gid))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("pgcluster: open server log: %w", err)
	}
	return f, fi.Size(), nil
}

// logTail formats the last lines the server wrote to path after offset, for
// appending to an error.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return fmt.Sprintf("\n--- %s (last lines) ---\n%s", path, tailLines(b, logTailLines))
}

// tailLines returns the last n non-empty lines of b.
func tailLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
