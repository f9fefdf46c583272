package config_test

import (
	"flag"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	require.NoError(t, os.WriteFile(path, []byte("from-file\n"), 0o600))
	t.Setenv("CLIPPER_WEBHOOK_SECRET_FILE", path)
	c, err := config.Load()
	require.NoError(t, err)
	require.Equal(t, "from-file", c.WebhookSecret)

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
