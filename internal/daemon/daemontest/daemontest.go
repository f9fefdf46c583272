// Package daemontest runs real daemons for end-to-end tests: each on a
// loopback port, against a real PostgreSQL database.
package daemontest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon"
	"github.com/clipper/clipper/internal/pgtest"
)

// Instance is one running daemon.
type Instance struct {
	URL    string
	Config config.Config
	Logs   *SyncBuffer // everything the daemon logged (JSON lines)
	stop   context.CancelFunc
	done   chan error
}

// Config returns a test configuration on a fresh migrated database: cheap
// argon2id parameters, local storage in a temp folder, fixed secrets.
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("daemontest: config: %v", err)
	}
	cfg.StorageDir = t.TempDir()
	cfg.DatabaseURL = pgtest.NewDatabase(t)
	cfg.Addr = "127.0.0.1:0"
	cfg.PublicURL = "" // Start points it at the port it gets
	cfg.Argon2MemoryKiB = 64
	cfg.Argon2Iterations = 1
	cfg.StorageSigningSecret = "test-storage-signing-secret"
	cfg.LogLevel = "debug"
	// Deadlines a loaded machine cannot trip: tests that are about the
	// deadlines set short ones themselves.
	cfg.RequestTimeout, cfg.DBStatementTimeout = 2*time.Minute, time.Minute
	cfg.DBConnectTimeout, cfg.DBAcquireTimeout = time.Minute, time.Minute
	// No retention schedule: its first round runs whenever the daemon's
	// goroutine gets the CPU, and would race a test's own rounds (a
	// reconcile or reap done by the daemon is missing from the test's).
	// Tests of the schedule set an interval.
	cfg.CleanupInterval = 0
	return cfg
}

// Start runs a daemon with cfg until the test ends.
func Start(t testing.TB, cfg config.Config) *Instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("daemontest: listen: %v", err)
	}
	cfg.Addr = l.Addr().String()
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	inst := &Instance{Config: cfg, Logs: logs, stop: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		inst.done <- daemon.Run(ctx, cfg, daemon.Options{Logger: log, Listener: l, OnReady: func(u string) { ready <- u }})
	}()
	select {
	case inst.URL = <-ready:
	case err := <-inst.done:
		t.Fatalf("daemontest: daemon exited before serving: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("daemontest: daemon not ready after 30s\n%s", logs.String())
	}
	t.Cleanup(func() { inst.Stop(t) })
	return inst
}

// Stop shuts the daemon down and waits for it.
func (i *Instance) Stop(t testing.TB) {
	if i.stop == nil {
		return
	}
	i.stop()
	i.stop = nil
	select {
	case err := <-i.done:
		if err != nil {
			t.Errorf("daemontest: daemon returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("daemontest: daemon did not stop within 30s")
	}
}

// Response is a decoded JSON response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("daemontest: decode %s: %v", r.Body, err)
	}
}

// Do sends a request with an optional API key and JSON body.
func (i *Instance) Do(t testing.TB, method, path, key string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		case string:
			rd = bytes.NewReader([]byte(b))
		default:
			buf, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("daemontest: encode: %v", err)
			}
			rd = bytes.NewReader(buf)
		}
	}
	req, err := http.NewRequest(method, i.URL+path, rd)
	if err != nil {
		t.Fatalf("daemontest: request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for j := 0; j+1 < len(headers); j += 2 {
		req.Header.Set(headers[j], headers[j+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("daemontest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("daemontest: read body: %v", err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// SyncBuffer is a goroutine-safe bytes.Buffer.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
