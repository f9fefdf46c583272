package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/client"
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/pgtest"
)

// The examples' folders (exampleTB.TempDir) have no test to clean them
// up: they go when the tests are done.
func TestMain(m *testing.M) { pgtest.Main(m, removeExampleDirs) }

const videoURL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"

// env is a real daemon on a real, freshly migrated database.
type env struct {
	d    *daemontest.Instance
	url  string
	pool *pgxpool.Pool
	keys *apikeys.Repo
}

func newEnv(t testing.TB, tune ...func(*config.Config)) *env {
	t.Helper()
	cfg := daemontest.Config(t)
	cfg.PublicURL = ""
	for _, f := range tune {
		f(&cfg)
	}
	d := daemontest.Start(t, cfg)
	return envFor(t, d, d.URL, cfg.DatabaseURL)
}

func envFor(t testing.TB, d *daemontest.Instance, baseURL, dsn string) *env {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{
		MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32,
	}})
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	e := &env{d: d, url: baseURL, pool: pool, keys: keys}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

func (e *env) newUser(t testing.TB) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := e.pool.Exec(context.Background(), "insert into auth.users (id, email) values ($1, $2)", id, id.String()+"@example.test")
	require.NoError(t, err)
	return id
}

// key makes an API key and returns its token.
func (e *env) key(t testing.TB, owner *uuid.UUID, scopes ...apikeys.Scope) string {
	t.Helper()
	_, token, err := e.keys.Create(context.Background(), apikeys.CreateParams{OwnerID: owner, Name: "test", Scopes: scopes})
	require.NoError(t, err)
	return token
}

// client is a Client on baseURL (the daemon, or a proxy before it) with
// short backoffs, so that retried tests run fast.
func newClient(t testing.TB, baseURL, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		BaseURL: baseURL, APIKey: token,
		Retry: client.RetryPolicy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxRetryAfter: 5 * time.Second},
	})
	require.NoError(t, err)
	return c
}

// faults is a reverse proxy before the daemon that answers chosen
// requests itself, as a rate limiter, an overloaded daemon or a load
// balancer would, and counts what reaches the daemon.
type faults struct {
	url      string
	upstream atomic.Pointer[url.URL]

	mu      sync.Mutex
	rules   []*rule
	reached map[string]int // "METHOD /path" -> requests that reached the daemon
	headers map[string][]http.Header
}

// rule answers the next n requests whose "METHOD path" ends with match.
type rule struct {
	match  string
	n      int
	status int
	header http.Header
	body   string
	// afterUpstream forwards the request first and then drops the
	// daemon's answer: a lost answer.
	afterUpstream bool
}

func newFaults(t testing.TB, upstream string) *faults {
	t.Helper()
	return newFaultsOn(t, upstream, "127.0.0.1:0")
}

// newFaultsOn listens on addr, e.g. the daemon's CLIPPER_PUBLIC_URL, so
// that signed URLs lead through the proxy too.
func newFaultsOn(t testing.TB, upstream, addr string) *faults {
	t.Helper()
	f := &faults{reached: map[string]int{}, headers: map[string][]http.Header{}}
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	f.upstream.Store(u)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(f.upstream.Load())
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Method + " " + r.URL.Path
		f.mu.Lock()
		f.headers[name] = append(f.headers[name], r.Header.Clone())
		f.mu.Unlock()
		ru := f.take(name)
		if ru == nil || ru.afterUpstream {
			f.mu.Lock()
			f.reached[name]++
			f.mu.Unlock()
		}
		switch {
		case ru == nil:
			proxy.ServeHTTP(w, r)
		case ru.afterUpstream:
			rec := &discard{h: http.Header{}}
			proxy.ServeHTTP(rec, r)
			w.WriteHeader(ru.status)
		default:
			for k, v := range ru.header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ru.status)
			fmt.Fprint(w, ru.body)
		}
	})}
	go srv.Serve(l) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	f.url = "http://" + l.Addr().String()
	return f
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func (f *faults) add(r rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &r)
}

func (f *faults) take(name string) *rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if strings.HasSuffix(name, r.match) {
			r.n--
			if r.n <= 0 {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
			}
			return r
		}
	}
	return nil
}

// sent returns the headers of every request to "METHOD path" so far.
func (f *faults) sent(name string) []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.headers[name]...)
}

func (f *faults) count(suffix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.reached {
		if strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

// The daemon's own answers for these codes (internal/apperr envelopes;
// auth.Require sets Retry-After on 429).
func rateLimited(retryAfter string) rule {
	return rule{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {retryAfter}},
		body: `{"ok":false,"code":"rate_limited","message":"rate limit of 7 requests per minute exceeded"}`}
}

func unavailable() rule {
	return rule{status: http.StatusServiceUnavailable, body: `{"ok":false,"code":"unavailable","message":"database unavailable"}`}
}

// runDaemonOn runs a daemon on a fixed address (so that a restarted daemon
// answers at the same URL) until stop is called.
func runDaemonOn(t testing.TB, cfg config.Config, addr string) (stop func()) {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	cfg.Addr = addr
	cfg.PublicURL = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	logs := &daemontest.SyncBuffer{}
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), Listener: l,
			OnReady: func(u string) { ready <- u },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon exited: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon not ready after 30s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("daemon did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func init() {
	// Tests print nothing of the daemon's unless asked.
	if os.Getenv("CLIENT_TEST_LOG") != "" {
		slog.SetLogLoggerLevel(slog.LevelDebug)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
