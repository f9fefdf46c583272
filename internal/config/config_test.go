package config_test

import (
	"encoding/base64"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/config"
)

var update = flag.Bool("update", false, "rewrite .env.example")

func TestEnvExampleListsEveryVariable(t *testing.T) {
	want := config.EnvExample()
	if *update {
		require.NoError(t, os.WriteFile("../../.env.example", []byte(want), 0o644))
	}
	got, err := os.ReadFile("../../.env.example")
	require.NoError(t, err)
	require.Equal(t, want, string(got), ".env.example is stale: run go test ./internal/config -update")
}

func TestDefaults(t *testing.T) {
	for _, v := range config.Vars {
		t.Setenv(v.Name, "")
	}
	c, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.Addr)
	require.Equal(t, "http://127.0.0.1:8080", c.PublicURL)
	require.EqualValues(t, 19456, c.Argon2MemoryKiB)
	require.Equal(t, 60*time.Second, c.SignedURLTTL)
	require.Equal(t, time.Hour, c.SignedURLMaxTTL)
	require.Equal(t, "local", c.StorageBackend)
}

func TestBadValuesNameTheVariableNotTheSecret(t *testing.T) {
	t.Setenv("CLIPPER_SIGNED_URL_TTL", "forever")
	t.Setenv("CLIPPER_DB_MAX_CONNS", "0")
	t.Setenv("CLIPPER_LOG_FORMAT", "xml")
	t.Setenv("CLIPPER_STORAGE_BACKEND", "supabase")
	t.Setenv("SUPABASE_URL", "")
	t.Setenv("SUPABASE_SERVICE_ROLE_KEY", "")
	t.Setenv("CLIPPER_WEBHOOK_SIGNING_SECRET", "super-secret-value")
	_, err := config.Load()
	require.Error(t, err)
	msg := err.Error()
	for _, name := range []string{"CLIPPER_SIGNED_URL_TTL", "CLIPPER_DB_MAX_CONNS", "CLIPPER_LOG_FORMAT",
		"SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CLIPPER_WEBHOOK_SIGNING_SECRET"} {
		require.Contains(t, msg, name)
	}
	require.NotContains(t, msg, "super-secret-value")
}

func TestSecretFromFile(t *testing.T) {
	path := t.TempDir() + "/secret"
	require.NoError(t, os.WriteFile(path, []byte("from-file-0123456789abcdef0123456789\n"), 0o600))
	t.Setenv("CLIPPER_WEBHOOK_SECRET_FILE", path)
	c, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, "from-file-0123456789abcdef0123456789", c.WebhookSecret)

	t.Setenv("CLIPPER_WEBHOOK_SECRET_FILE", path+".missing")
	_, err = config.Load()
	require.ErrorContains(t, err, "CLIPPER_WEBHOOK_SECRET_FILE")
}

func TestDotEnvDoesNotOverrideEnvironment(t *testing.T) {
	path := t.TempDir() + "/.env"
	require.NoError(t, os.WriteFile(path, []byte("# comment\nCLIPPER_ADDR=0.0.0.0:9999\nexport CLIPPER_LOG_LEVEL='debug'\n"), 0o600))
	t.Setenv("CLIPPER_ADDR", "127.0.0.1:7000")
	t.Setenv("CLIPPER_LOG_LEVEL", "")
	os.Unsetenv("CLIPPER_LOG_LEVEL")
	require.NoError(t, config.LoadDotEnv(path))
	require.Equal(t, "127.0.0.1:7000", os.Getenv("CLIPPER_ADDR"))
	require.Equal(t, "debug", os.Getenv("CLIPPER_LOG_LEVEL"))

	require.NoError(t, os.WriteFile(path, []byte("no equals sign\n"), 0o600))
	require.ErrorContains(t, config.LoadDotEnv(path), ":1:")
}

// TestShortSecretsRefused: webhook and storage-signing secrets under 32
// bytes stop startup with a message naming the variable, never the value.
func TestShortSecretsRefused(t *testing.T) {
	short := strings.Repeat("s", 31)
	shortKey := "v1,whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 31)))
	t.Setenv("CLIPPER_WEBHOOK_SECRET", short)
	t.Setenv("CLIPPER_STORAGE_SIGNING_SECRET", short)
	t.Setenv("CLIPPER_WEBHOOK_SIGNING_SECRET", shortKey)
	_, err := config.Load()
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "CLIPPER_WEBHOOK_SECRET: must be at least 32 bytes")
	require.Contains(t, msg, "CLIPPER_STORAGE_SIGNING_SECRET: must be at least 32 bytes")
	require.Contains(t, msg, "CLIPPER_WEBHOOK_SIGNING_SECRET: the key after whsec_ must be at least 32 bytes")
	require.NotContains(t, msg, short)
	require.NotContains(t, msg, shortKey[len("v1,whsec_"):])

	// From a file too.
	path := t.TempDir() + "/secret"
	require.NoError(t, os.WriteFile(path, []byte(short+"\n"), 0o600))
	t.Setenv("CLIPPER_WEBHOOK_SECRET", "")
	t.Setenv("CLIPPER_WEBHOOK_SECRET_FILE", path)
	_, err = config.Load()
	require.ErrorContains(t, err, "CLIPPER_WEBHOOK_SECRET: must be at least 32 bytes")

	// 32 bytes, or a 32-byte key after whsec_ (what Supabase generates), pass.
	t.Setenv("CLIPPER_WEBHOOK_SECRET_FILE", "")
	t.Setenv("CLIPPER_WEBHOOK_SECRET", short+"s")
	t.Setenv("CLIPPER_STORAGE_SIGNING_SECRET", short+"s")
	t.Setenv("CLIPPER_WEBHOOK_SIGNING_SECRET", "v1,whsec_"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	c, err := config.Load()
	require.NoError(t, err)
	require.Len(t, c.WebhookSecret, 32)
}

// TestArgon2Bounds: the configuration accepts exactly the hasher's bounds
// (one definition, apikeys.Min*/Max*), never below OWASP's minimum
// m=19456 KiB, t=2, p=1.
func TestArgon2Bounds(t *testing.T) {
	for _, c := range []struct {
		name      string
		low, high int
	}{
		{"CLIPPER_ARGON2_MEMORY_KIB", 19456, apikeys.MaxMemoryKiB},
		{"CLIPPER_ARGON2_ITERATIONS", 2, apikeys.MaxIterations},
		{"CLIPPER_ARGON2_PARALLELISM", 1, apikeys.MaxParallelism},
	} {
		for _, bad := range []int{c.low - 1, c.high + 1} {
			t.Setenv(c.name, strconv.Itoa(bad))
			_, err := config.Load()
			require.ErrorContains(t, err, c.name+": must be a whole number from "+strconv.Itoa(c.low)+" to "+strconv.Itoa(c.high))
		}
		for _, good := range []int{c.low, c.high} {
			t.Setenv(c.name, strconv.Itoa(good))
			cfg, err := config.Load()
			require.NoError(t, err, c.name)
			_, err = apikeys.NewRepo(nil, apikeys.Options{Params: auth.HashParams(cfg)})
			require.NoError(t, err, "the hasher accepts %s=%d", c.name, good)
		}
		t.Setenv(c.name, "")
	}
}

// TestDatabaseURLFile: DATABASE_URL_FILE is read as the daemon reads it,
// by Load and by DatabaseURL, which every other command uses.
func TestDatabaseURLFile(t *testing.T) {
	path := t.TempDir() + "/dsn"
	require.NoError(t, os.WriteFile(path, []byte("postgres://u:hunter2@db.example/app\n"), 0o600))
	t.Setenv("DATABASE_URL", "postgres://other@localhost/other")
	t.Setenv("DATABASE_URL_FILE", path)
	u, err := config.DatabaseURL()
	require.NoError(t, err)
	require.Equal(t, "postgres://u:hunter2@db.example/app", u)
	c, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, u, c.DatabaseURL)

	t.Setenv("DATABASE_URL_FILE", path+".missing")
	_, err = config.DatabaseURL()
	require.EqualError(t, err, "DATABASE_URL_FILE: cannot read the file it names")

	t.Setenv("DATABASE_URL_FILE", "")
	u, err = config.DatabaseURL()
	require.NoError(t, err)
	require.Equal(t, "postgres://other@localhost/other", u)
}
