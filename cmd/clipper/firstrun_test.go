package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A new user's first run, as root, from a clone in a folder the
// unprivileged PostgreSQL user cannot enter (like /root, mode 0700): `make
// dev` in a terminal serves /readyz, Ctrl-C stops it with exit status 0 and
// no warning, a second run reuses the cluster, and `make clean` removes it.
//
// It clones the committed HEAD of this checkout (CLIPPER_FIRST_RUN_REF
// names another revision). Needs root, git and make; it takes a minute or
// two (go run compiles in the clone).
func TestFirstRunFromPrivateClone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (it checks that a clone in a 0700 folder works when the server runs as another user)")
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: runs make dev in a fresh clone")
	}
	for _, tool := range []string{"git", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s is not installed", tool)
		}
	}
	ref := os.Getenv("CLIPPER_FIRST_RUN_REF")
	if ref == "" {
		ref = "HEAD"
	}
	top := strings.TrimSpace(string(mustRun(t, ".", "git", "rev-parse", "--show-toplevel")))
	private, err := os.MkdirTemp("", "clipper-first-run-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(private) })
	require.NoError(t, os.Chmod(private, 0o700))
	clone := filepath.Join(private, "clipper")
	mustRun(t, private, "git", "clone", "-q", "--no-checkout", top, clone)
	mustRun(t, clone, "git", "checkout", "-q", "--detach", ref)
	t.Cleanup(func() {
		// Leave nothing in /var/tmp even when the test failed half-way.
		cmd := exec.Command("make", "clean")
		cmd.Dir, cmd.Env = clone, devEnv()
		_ = cmd.Run()
	})

	out := makeDevThenCtrlC(t, clone)
	place := regexp.MustCompile(`(/var/tmp/clipper-[0-9a-f]+)/postgres`).FindStringSubmatch(out)
	require.NotNil(t, place, "make dev says where the cluster lives when the checkout is closed to the server user:\n%s", out)
	fi, err := os.Stat(place[0])
	require.NoError(t, err)
	require.NotEqual(t, uint32(0), fi.Sys().(*syscall.Stat_t).Uid, "the cluster belongs to the unprivileged server user")

	// The second run reuses the cluster: no initdb.
	out = makeDevThenCtrlC(t, clone)
	require.Contains(t, out, place[0])
	require.NotContains(t, out, "initdb")

	cmd := exec.Command("make", "clean")
	cmd.Dir, cmd.Env = clone, devEnv()
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "make clean:\n%s", b)
	require.Contains(t, string(b), "Removed "+place[1])
	_, err = os.Stat(place[1])
	require.ErrorIs(t, err, os.ErrNotExist, "make clean removes the cluster")
}

// makeDevThenCtrlC runs `make dev` in clone on a new terminal, waits for
// /readyz to answer 200, types Ctrl-C, and returns the terminal's output
// after checking that make exited 0 and nothing warned on the way down.
func makeDevThenCtrlC(t *testing.T, clone string) string {
	t.Helper()
	term, tty := openPty(t)
	cmd := exec.Command("make", "dev")
	cmd.Dir, cmd.Env = clone, devEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// A session of its own with the terminal as its controlling terminal:
	// make's process group is the terminal's foreground group, as in a shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	tty.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // a hang: end make's whole session
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	var mu sync.Mutex
	var buf bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		b := make([]byte, 4096)
		for {
			n, err := term.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return // EIO once every process has closed the terminal
			}
		}
	}()
	output := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }

	// Hang guards only: go run compiles first, on a busy machine.
	readyLine := regexp.MustCompile(`Clipper is running at (http://\S+)`)
	var base string
	require.Eventually(t, func() bool {
		if m := readyLine.FindStringSubmatch(output()); m != nil {
			base = m[1]
			return true
		}
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
			return false
		}
	}, 10*time.Minute, 200*time.Millisecond)
	require.NotEmpty(t, base, "make dev ended before serving:\n%s", output())
	client := &http.Client{Timeout: 10 * time.Second}
	var status int
	var body []byte
	require.Eventually(t, func() bool {
		res, err := client.Get(base + "/readyz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		status = res.StatusCode
		body, _ = io.ReadAll(res.Body)
		return status == http.StatusOK
	}, time.Minute, 200*time.Millisecond, "GET /readyz: %d %s", status, body)
	require.Contains(t, string(body), `"ok":true`)

	ready := len(output())
	_, err := term.Write([]byte{0x03}) // Ctrl-C: the terminal signals its foreground group
	require.NoError(t, err)
	var waitErr error
	select {
	case waitErr = <-exited:
		exited <- waitErr
	case <-time.After(2 * time.Minute):
		t.Fatalf("make dev still running 2 minutes after Ctrl-C:\n%s", output())
	}
	select {
	case <-copied:
	case <-time.After(30 * time.Second): // a leftover child holds the terminal
	}
	out := output()
	require.NoError(t, waitErr, "make dev's exit status after Ctrl-C:\n%s", out)
	require.Contains(t, out, "PostgreSQL stopped.")
	require.NotContains(t, out, "make: ***")
	shutdown := out[ready:]
	for _, bad := range []string{"level=WARN", "level=ERROR", "could not", "Error"} {
		require.NotContains(t, shutdown, bad, "output after Ctrl-C:\n%s", shutdown)
	}
	return out
}

// openPty opens a new pseudo-terminal and returns its controller and the
// terminal end a program runs on.
func openPty(t *testing.T) (term, tty *os.File) {
	t.Helper()
	term, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("skipped: no /dev/ptmx to run make dev on a terminal")
	}
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })
	fd := int(term.Fd())
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	return term, tty
}

// devEnv is this process's environment without database settings, so
// make dev starts its own cluster as a new user's would.
func devEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "TEST_DATABASE_URL=") &&
			!strings.HasPrefix(kv, "CLIPPER_ADDR=") {
			env = append(env, kv)
		}
	}
	return env
}

func mustRun(t *testing.T, dir string, argv ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", strings.Join(argv, " "), out)
	return out
}
