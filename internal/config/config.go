// Package config reads the daemon's and commands' settings from the
// environment (and a .env file in development) into one validated struct.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/clipper/clipper/internal/apikeys"
)

// Config is every setting, with defaults applied and values validated.
// Secrets are never printed: see Redacted.
type Config struct {
	DatabaseURL string // DATABASE_URL

	Addr      string // CLIPPER_ADDR
	PublicURL string // CLIPPER_PUBLIC_URL: base URL that signed URLs point at
	LogLevel  string // CLIPPER_LOG_LEVEL: debug|info|warn|error
	LogFormat string // CLIPPER_LOG_FORMAT: text|json

	DBMaxConns int32 // CLIPPER_DB_MAX_CONNS

	// GroupCommitWindow is how long a single job create or event append
	// may wait to share a commit with others while one is in flight; 0
	// commits each on its own.
	GroupCommitWindow time.Duration // CLIPPER_GROUP_COMMIT_WINDOW

	// API keys.
	Argon2MemoryKiB       uint32        // CLIPPER_ARGON2_MEMORY_KIB
	Argon2Iterations      uint32        // CLIPPER_ARGON2_ITERATIONS
	Argon2Parallelism     uint8         // CLIPPER_ARGON2_PARALLELISM
	KeyCacheTTL           time.Duration // CLIPPER_KEY_CACHE_TTL
	DefaultRateLimit      int           // CLIPPER_RATE_LIMIT_PER_MINUTE
	LastUsedFlushInterval time.Duration // CLIPPER_LAST_USED_FLUSH_INTERVAL

	// Storage and signed URLs.
	StorageBackend         string        // CLIPPER_STORAGE_BACKEND: local|supabase
	StorageDir             string        // CLIPPER_STORAGE_DIR (local backend)
	StorageSigningSecret   string        // CLIPPER_STORAGE_SIGNING_SECRET[_FILE] (local backend)
	SupabaseURL            string        // SUPABASE_URL (supabase backend)
	SupabaseServiceRoleKey string        // SUPABASE_SERVICE_ROLE_KEY[_FILE] (supabase backend)
	SignedURLTTL           time.Duration // CLIPPER_SIGNED_URL_TTL
	SignedURLMaxTTL        time.Duration // CLIPPER_SIGNED_URL_MAX_TTL

	// Webhooks.
	WebhookSecret        string // CLIPPER_WEBHOOK_SECRET[_FILE]: the Authorization bearer secret
	WebhookSigningSecret string // CLIPPER_WEBHOOK_SIGNING_SECRET[_FILE]: Standard Webhooks whsec_...

	// Jobs and retention.
	JobRetention     time.Duration // CLIPPER_JOB_RETENTION
	HeartbeatTimeout time.Duration // CLIPPER_HEARTBEAT_TIMEOUT
	CleanupInterval  time.Duration // CLIPPER_CLEANUP_INTERVAL
	CleanupBatchSize int           // CLIPPER_CLEANUP_BATCH_SIZE

	// Availability: deadlines, abuse limits, the LISTEN connection's health.
	RequestTimeout        time.Duration // CLIPPER_REQUEST_TIMEOUT
	DBStatementTimeout    time.Duration // CLIPPER_DB_STATEMENT_TIMEOUT
	DBConnectTimeout      time.Duration // CLIPPER_DB_CONNECT_TIMEOUT
	DBAcquireTimeout      time.Duration // CLIPPER_DB_ACQUIRE_TIMEOUT
	KeyDisconnectedTTL    time.Duration // CLIPPER_KEY_DISCONNECTED_TTL
	AuthFailuresPerKey    int           // CLIPPER_AUTH_FAILURES_PER_KEY
	AuthFailuresPerClient int           // CLIPPER_AUTH_FAILURES_PER_CLIENT
	AuthMaxPending        int           // CLIPPER_AUTH_MAX_PENDING
	TrustedProxies        []string      // CLIPPER_TRUSTED_PROXIES: CIDRs
	ListenProbeInterval   time.Duration // CLIPPER_LISTEN_PROBE_INTERVAL
	ListenProbeTimeout    time.Duration // CLIPPER_LISTEN_PROBE_TIMEOUT
	StreamsPerKey         int           // CLIPPER_STREAMS_PER_KEY
	StreamsMax            int           // CLIPPER_STREAMS_MAX
}

// Var documents one environment variable for --help and .env.example.
type Var struct {
	Name, Default, Help string
	Secret              bool
}

// Vars lists every variable the project reads, in .env.example order.
var Vars = []Var{
	{"DATABASE_URL", "", "PostgreSQL URL, for every command. Unset in `clipper dev`: a throwaway local cluster is started.", true},
	{"CLIPPER_ADDR", "127.0.0.1:8080", "Address the daemon listens on.", false},
	{"CLIPPER_PUBLIC_URL", "http://<CLIPPER_ADDR>", "Base URL clients reach the daemon at (signed URLs of the local storage backend).", false},
	{"CLIPPER_LOG_LEVEL", "info", "debug, info, warn or error.", false},
	{"CLIPPER_LOG_FORMAT", "text", "text or json.", false},
	{"CLIPPER_DB_MAX_CONNS", "20", "Connection pool size.", false},
	{"CLIPPER_GROUP_COMMIT_WINDOW", "1ms", "Longest a single job create, event append or rate-limit take waits to share one statement and commit with concurrent ones (group commit; an idle daemon never waits). 0 turns it off.", false},
	{"CLIPPER_ARGON2_MEMORY_KIB", "19456", "argon2id memory per key hash (OWASP minimum 19456).", false},
	{"CLIPPER_ARGON2_ITERATIONS", "2", "argon2id iterations (OWASP minimum 2).", false},
	{"CLIPPER_ARGON2_PARALLELISM", "1", "argon2id lanes.", false},
	{"CLIPPER_KEY_CACHE_TTL", "5m", "How long a verified key stays cached (revocation is pushed at once regardless).", false},
	{"CLIPPER_RATE_LIMIT_PER_MINUTE", "600", "Requests per minute for keys without their own limit.", false},
	{"CLIPPER_LAST_USED_FLUSH_INTERVAL", "30s", "How often api_keys.last_used_at is written (batched).", false},
	{"CLIPPER_STORAGE_BACKEND", "local", "local (files served by the daemon) or supabase (Supabase Storage).", false},
	{"CLIPPER_STORAGE_DIR", ".dev/storage", "Folder of the local storage backend.", false},
	{"CLIPPER_STORAGE_SIGNING_SECRET", "(random per start)", "HMAC secret for local signed URLs, at least 32 bytes; set it so URLs survive restarts and work across replicas.", true},
	{"SUPABASE_URL", "", "Project URL, e.g. https://<ref>.supabase.co (supabase backend).", false},
	{"SUPABASE_SERVICE_ROLE_KEY", "", "Secret key sb_secret_... or legacy service_role key (supabase backend). Never sent to clients.", true},
	{"CLIPPER_SIGNED_URL_TTL", "60s", "Default lifetime of a signed URL.", false},
	{"CLIPPER_SIGNED_URL_MAX_TTL", "1h", "Longest lifetime a caller may ask for.", false},
	{"CLIPPER_WEBHOOK_SECRET", "", "Secret expected as `Authorization: Bearer <secret>` on database webhooks, at least 32 bytes (openssl rand -base64 32); unset disables /webhooks/supabase.", true},
	{"CLIPPER_WEBHOOK_SIGNING_SECRET", "", "Standard Webhooks secret (whsec_<base64 of at least 32 bytes>); when set, signatures are required too.", true},
	{"CLIPPER_JOB_RETENTION", "168h", "How long finished jobs are kept (sets expires_at).", false},
	{"CLIPPER_HEARTBEAT_TIMEOUT", "2m", "A processing job with an older heartbeat is requeued or failed.", false},
	{"CLIPPER_CLEANUP_INTERVAL", "5m", "How often the daemon deletes expired jobs and reaps stale ones (0 disables).", false},
	{"CLIPPER_CLEANUP_BATCH_SIZE", "1000", "Jobs deleted per cleanup transaction.", false},
	{"CLIPPER_REQUEST_TIMEOUT", "10s", "Deadline of every request (event streams: of each database read); past it the answer is 503 unavailable.", false},
	{"CLIPPER_DB_STATEMENT_TIMEOUT", "5s", "Server-side statement_timeout of the daemon's connections (a frozen server cannot enforce it: the request deadline does).", false},
	{"CLIPPER_DB_CONNECT_TIMEOUT", "5s", "Deadline for opening one database connection.", false},
	{"CLIPPER_DB_ACQUIRE_TIMEOUT", "3s", "Deadline for taking a connection from the pool; past it 503 unavailable (at most the request timeout).", false},
	{"CLIPPER_KEY_DISCONNECTED_TTL", "5s", "While the LISTEN connection is not proven alive, a cached key is re-verified after this long.", false},
	{"CLIPPER_AUTH_FAILURES_PER_KEY", "10", "Failed key verifications (argon2id) allowed per lookup id per minute, as a burst; beyond it 429 without hashing.", false},
	{"CLIPPER_AUTH_FAILURES_PER_CLIENT", "30", "Failed key verifications allowed per client IP per minute, as a burst; beyond it 429 without hashing.", false},
	{"CLIPPER_AUTH_MAX_PENDING", "0", "Key verifications running or waiting at once; beyond it 503 at once instead of queueing (0: 4 per CPU).", false},
	{"CLIPPER_TRUSTED_PROXIES", "", "Comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client; unset: the TCP peer is the client.", false},
	{"CLIPPER_LISTEN_PROBE_INTERVAL", "5s", "How often the LISTEN connection is proven alive with a round trip.", false},
	{"CLIPPER_LISTEN_PROBE_TIMEOUT", "2s", "Deadline of that round trip; a LISTEN connection that misses it is dropped and reconnected.", false},
	{"CLIPPER_STREAMS_PER_KEY", "20", "Event streams one API key may hold open at once (429 beyond).", false},
	{"CLIPPER_STREAMS_MAX", "2000", "Event streams one daemon holds open at once (429 beyond).", false},
}

// Load reads the environment. Every variable of a *_FILE form may instead
// name a file holding the value (for secrets mounted as files).
func Load() (Config, error) {
	var errs []error
	r := reader{errs: &errs}
	c := Config{
		DatabaseURL:            r.secret("DATABASE_URL", ""),
		Addr:                   r.str("CLIPPER_ADDR", "127.0.0.1:8080"),
		PublicURL:              r.str("CLIPPER_PUBLIC_URL", ""),
		LogLevel:               r.oneOf("CLIPPER_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:              r.oneOf("CLIPPER_LOG_FORMAT", "text", "text", "json"),
		GroupCommitWindow:      r.duration("CLIPPER_GROUP_COMMIT_WINDOW", time.Millisecond, 0, 100*time.Millisecond),
		DBMaxConns:             int32(r.intIn("CLIPPER_DB_MAX_CONNS", 20, 1, 1000)),
		Argon2MemoryKiB:        uint32(r.intIn("CLIPPER_ARGON2_MEMORY_KIB", int(apikeys.DefaultParams.MemoryKiB), apikeys.MinMemoryKiB, apikeys.MaxMemoryKiB)),
		Argon2Iterations:       uint32(r.intIn("CLIPPER_ARGON2_ITERATIONS", int(apikeys.DefaultParams.Iterations), apikeys.MinIterations, apikeys.MaxIterations)),
		Argon2Parallelism:      uint8(r.intIn("CLIPPER_ARGON2_PARALLELISM", int(apikeys.DefaultParams.Parallelism), apikeys.MinParallelism, apikeys.MaxParallelism)),
		KeyCacheTTL:            r.duration("CLIPPER_KEY_CACHE_TTL", 5*time.Minute, time.Second, 24*time.Hour),
		DefaultRateLimit:       r.intIn("CLIPPER_RATE_LIMIT_PER_MINUTE", 600, 1, 1000000),
		LastUsedFlushInterval:  r.duration("CLIPPER_LAST_USED_FLUSH_INTERVAL", 30*time.Second, 100*time.Millisecond, time.Hour),
		StorageBackend:         r.oneOf("CLIPPER_STORAGE_BACKEND", "local", "local", "supabase"),
		StorageDir:             r.str("CLIPPER_STORAGE_DIR", ".dev/storage"),
		StorageSigningSecret:   r.secret("CLIPPER_STORAGE_SIGNING_SECRET", ""),
		SupabaseURL:            strings.TrimRight(r.str("SUPABASE_URL", ""), "/"),
		SupabaseServiceRoleKey: r.secret("SUPABASE_SERVICE_ROLE_KEY", ""),
		SignedURLTTL:           r.duration("CLIPPER_SIGNED_URL_TTL", 60*time.Second, time.Second, 7*24*time.Hour),
		SignedURLMaxTTL:        r.duration("CLIPPER_SIGNED_URL_MAX_TTL", time.Hour, time.Second, 7*24*time.Hour),
		WebhookSecret:          r.secret("CLIPPER_WEBHOOK_SECRET", ""),
		WebhookSigningSecret:   r.secret("CLIPPER_WEBHOOK_SIGNING_SECRET", ""),
		JobRetention:           r.duration("CLIPPER_JOB_RETENTION", 7*24*time.Hour, time.Minute, 10*365*24*time.Hour),
		HeartbeatTimeout:       r.duration("CLIPPER_HEARTBEAT_TIMEOUT", 2*time.Minute, time.Second, 24*time.Hour),
		CleanupInterval:        r.duration("CLIPPER_CLEANUP_INTERVAL", 5*time.Minute, 0, 24*time.Hour),
		CleanupBatchSize:       r.intIn("CLIPPER_CLEANUP_BATCH_SIZE", 1000, 1, 100000),
		RequestTimeout:         r.duration("CLIPPER_REQUEST_TIMEOUT", 10*time.Second, 100*time.Millisecond, 10*time.Minute),
		DBStatementTimeout:     r.duration("CLIPPER_DB_STATEMENT_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Hour),
		DBConnectTimeout:       r.duration("CLIPPER_DB_CONNECT_TIMEOUT", 5*time.Second, 100*time.Millisecond, 5*time.Minute),
		DBAcquireTimeout:       r.duration("CLIPPER_DB_ACQUIRE_TIMEOUT", 3*time.Second, 10*time.Millisecond, 10*time.Minute),
		KeyDisconnectedTTL:     r.duration("CLIPPER_KEY_DISCONNECTED_TTL", 5*time.Second, 100*time.Millisecond, time.Hour),
		AuthFailuresPerKey:     r.intIn("CLIPPER_AUTH_FAILURES_PER_KEY", 10, 1, 1000000),
		AuthFailuresPerClient:  r.intIn("CLIPPER_AUTH_FAILURES_PER_CLIENT", 30, 1, 1000000),
		AuthMaxPending:         r.intIn("CLIPPER_AUTH_MAX_PENDING", 0, 0, 100000),
		TrustedProxies:         r.cidrs("CLIPPER_TRUSTED_PROXIES"),
		ListenProbeInterval:    r.duration("CLIPPER_LISTEN_PROBE_INTERVAL", 5*time.Second, 50*time.Millisecond, time.Hour),
		ListenProbeTimeout:     r.duration("CLIPPER_LISTEN_PROBE_TIMEOUT", 2*time.Second, 50*time.Millisecond, time.Minute),
		StreamsPerKey:          r.intIn("CLIPPER_STREAMS_PER_KEY", 20, 1, 1000000),
		StreamsMax:             r.intIn("CLIPPER_STREAMS_MAX", 2000, 1, 10000000),
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.DBStatementTimeout > c.RequestTimeout {
		errs = append(errs, errors.New("CLIPPER_DB_STATEMENT_TIMEOUT: must not exceed CLIPPER_REQUEST_TIMEOUT"))
	}
	if c.DBAcquireTimeout > c.RequestTimeout {
		errs = append(errs, errors.New("CLIPPER_DB_ACQUIRE_TIMEOUT: must not exceed CLIPPER_REQUEST_TIMEOUT"))
	}
	if c.SignedURLTTL > c.SignedURLMaxTTL {
		errs = append(errs, errors.New("CLIPPER_SIGNED_URL_TTL: must not exceed CLIPPER_SIGNED_URL_MAX_TTL"))
	}
	if c.StorageBackend == "supabase" {
		if c.SupabaseURL == "" {
			errs = append(errs, errors.New("SUPABASE_URL: required when CLIPPER_STORAGE_BACKEND=supabase"))
		}
		if c.SupabaseServiceRoleKey == "" {
			errs = append(errs, errors.New("SUPABASE_SERVICE_ROLE_KEY: required when CLIPPER_STORAGE_BACKEND=supabase"))
		}
	}
	if s := c.WebhookSigningSecret; s != "" && !strings.HasPrefix(strings.TrimPrefix(s, "v1,"), "whsec_") {
		errs = append(errs, errors.New("CLIPPER_WEBHOOK_SIGNING_SECRET: must start with whsec_"))
	}
	errs = append(errs, checkSecretLengths(c)...)
	return c, errors.Join(errs...)
}

type reader struct{ errs *[]error }

func (r reader) fail(name, format string, args ...any) {
	*r.errs = append(*r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (r reader) str(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// secret reads NAME, or the file named by NAME_FILE. Error messages name
// the variable, never the value.
func (r reader) secret(name, def string) string {
	if path := os.Getenv(name + "_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			r.fail(name+"_FILE", "cannot read the file it names")
			return def
		}
		return strings.TrimSpace(string(b))
	}
	return r.str(name, def)
}

func (r reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

func (r reader) intIn(name string, def, min, max int) int {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		r.fail(name, "must be a whole number from %d to %d, got %q", min, max, s)
		return def
	}
	return n
}

// cidrs reads a comma-separated list of CIDRs (a bare IP means that IP).
func (r reader) cidrs(name string) []string {
	var out []string
	for part := range strings.SplitSeq(r.str(name, ""), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			if ip := net.ParseIP(part); ip != nil && ip.To4() != nil {
				part += "/32"
			} else {
				part += "/128"
			}
		}
		if _, _, err := net.ParseCIDR(part); err != nil {
			r.fail(name, "must be a comma-separated list of CIDRs, got %q", part)
			continue
		}
		out = append(out, part)
	}
	return out
}

func (r reader) duration(name string, def, min, max time.Duration) time.Duration {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < min || d > max {
		r.fail(name, "must be a duration from %s to %s (e.g. 30s, 5m), got %q", min, max, s)
		return def
	}
	return d
}

// LoadDotEnv sets variables from a .env file (KEY=VALUE lines, # comments,
// optional quotes) that are not already set. A missing file is fine.
func LoadDotEnv(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		key = strings.TrimSpace(key)
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		if _, set := os.LookupEnv(key); !set {
			os.Setenv(key, val)
		}
	}
	return sc.Err()
}
