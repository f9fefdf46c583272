package keysapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/keysapi"
	"github.com/clipper/clipper/internal/pgtest"
)

type cliBundle struct {
	tx   pgx.Tx
	repo *apikeys.Repo
}

func setupCLI(t *testing.T) cliBundle {
	t.Helper()
	tx := pgtest.Tx(t)
	repo, err := apikeys.NewRepo(tx, apikeys.Options{Params: cheap})
	require.NoError(t, err)
	return cliBundle{tx: tx, repo: repo}
}

// run runs `clipper keys args...` and returns stdout, stderr and the error.
func (b cliBundle) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	opened := false
	cmd := keysapi.Command{Stdout: &out, Stderr: &errOut, Open: func(context.Context) (*apikeys.Repo, func(), error) {
		opened = true
		return b.repo, func() {}, nil
	}}
	err := cmd.Run(context.Background(), args)
	if errors.As(err, new(keysapi.UsageError)) || errors.Is(err, flag.ErrHelp) {
		require.False(t, opened, "the database is opened only for a valid command line")
	}
	return out.String(), errOut.String(), err
}

func TestCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CreatePrintsTheKeyAloneOnStdout", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		out, errOut, err := b.run(t, "create", "--name", "first admin", "--scopes", "keys:admin, jobs:read",
			"--rate-limit", "50", "--expires-in", "24h")
		require.NoError(t, err)
		token := strings.TrimSpace(out)
		require.NotContains(t, token, "\n")
		key, err := b.repo.Authenticate(ctx, token)
		require.NoError(t, err)
		require.Equal(t, "first admin", key.Name)
		require.Equal(t, []apikeys.Scope{apikeys.ScopeJobsRead, apikeys.ScopeKeysAdmin}, key.Scopes)
		require.Equal(t, int32(50), *key.RateLimitPerMinute)
		require.WithinDuration(t, time.Now().Add(24*time.Hour), *key.ExpiresAt, time.Minute)
		require.Contains(t, errOut, key.ID.String())
		require.Contains(t, errOut, "shown once")
		require.NotContains(t, errOut, token)
	})

	t.Run("CreateJSON", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		out, _, err := b.run(t, "create", "--json", "--name", "svc", "--scopes", "worker")
		require.NoError(t, err)
		var got struct {
			Key   apikeys.Key `json:"key"`
			Token string      `json:"token"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		key, err := b.repo.Authenticate(ctx, got.Token)
		require.NoError(t, err)
		require.Equal(t, got.Key.ID, key.ID)
		require.NotContains(t, out, "argon2id")
	})

	t.Run("ListRotateRevoke", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		out, _, err := b.run(t, "create", "--name", "worker 1", "--scopes", "worker")
		require.NoError(t, err)
		oldToken := strings.TrimSpace(out)
		old, err := b.repo.Authenticate(ctx, oldToken)
		require.NoError(t, err)

		out, errOut, err := b.run(t, "rotate", old.ID.String(), "--grace", "1h")
		require.NoError(t, err)
		next, err := b.repo.Authenticate(ctx, strings.TrimSpace(out))
		require.NoError(t, err)
		require.Equal(t, old.ID, *next.RotatedFrom)
		require.Contains(t, errOut, "the old key expires")
		_, err = b.repo.Authenticate(ctx, oldToken)
		require.NoError(t, err, "the old key works during its grace")

		out, _, err = b.run(t, "list")
		require.NoError(t, err)
		require.Contains(t, out, "LOOKUP ID")
		require.Contains(t, out, old.LookupID)
		require.Contains(t, out, next.LookupID)
		require.Contains(t, out, "worker 1")
		require.NotContains(t, out, "argon2id")

		out, _, err = b.run(t, "revoke", next.ID.String())
		require.NoError(t, err)
		require.Contains(t, out, "Revoked "+next.ID.String())
		got, err := b.repo.Get(ctx, next.ID)
		require.NoError(t, err)
		require.NotNil(t, got.RevokedAt)

		out, _, err = b.run(t, "list", "--json")
		require.NoError(t, err)
		var keys []apikeys.Key
		require.NoError(t, json.Unmarshal([]byte(out), &keys))
		require.GreaterOrEqual(t, len(keys), 2)
	})

	// The command is the operator's: the HTTP routes' limits do not apply
	// (it makes admin keys, keys without an owner, keys for any owner, and
	// rotates any of them), and its help says so.
	t.Run("OperatorHasNoLimits", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		var owner string
		require.NoError(t, b.tx.QueryRow(ctx, "insert into auth.users (id) values (gen_random_uuid()) returning id::text").Scan(&owner))
		for _, args := range [][]string{
			{"create", "--name", "root", "--scopes", "admin"},
			{"create", "--name", "pool", "--scopes", "worker"},
			{"create", "--name", "alice", "--scopes", "worker,keys:admin", "--owner", owner},
		} {
			out, _, err := b.run(t, args...)
			require.NoError(t, err, args)
			key, err := b.repo.Authenticate(ctx, strings.TrimSpace(out))
			require.NoError(t, err)
			_, _, err = b.run(t, "rotate", "--grace", "0", key.ID.String())
			require.NoError(t, err, "rotate %s", key.Name)
		}
		_, help, err := b.run(t, "--help")
		require.ErrorIs(t, err, flag.ErrHelp)
		require.Contains(t, help, "This command acts as the operator")
	})

	t.Run("RotateNeedsAGrace", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		_, _, err := b.run(t, "rotate", "d0000000-0000-4000-8000-0000000000ff")
		require.Equal(t, keysapi.UsageError{Msg: "--grace is required (0 stops the old key at once)"}, err)
		_, _, err = b.run(t, "rotate", "--grace", "0s", "d0000000-0000-4000-8000-0000000000ff")
		require.Equal(t, apperr.NotFound, apperr.CodeOf(err))
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		for _, c := range []struct {
			args []string
			msg  string
		}{
			{nil, "no command given"},
			{[]string{"frobnicate"}, `unknown command "frobnicate" (create, list, rotate or revoke)`},
			{[]string{"create", "--scopes", "worker"}, "--name is required"},
			{[]string{"create", "--name", "x"}, "--scopes is required, e.g. --scopes jobs:read,jobs:write"},
			{[]string{"create", "--name", "x", "--scopes", "worker", "--owner", "me"}, "--owner is not a UUID"},
			{[]string{"create", "--name", "x", "--scopes", "worker", "--bogus"}, "flag provided but not defined: -bogus"},
			{[]string{"create", "--name", "x", "--scopes", "worker", "extra"}, `unexpected argument "extra"`},
			{[]string{"revoke"}, "expected 1 argument(s), got 0"},
			{[]string{"revoke", "nope"}, "KEY_ID is not a UUID (see 'clipper keys list')"},
			{[]string{"rotate", "--grace", "-1h", "d0000000-0000-4000-8000-0000000000ff"}, "--grace must be a duration from 0 to 720h0m0s, e.g. 24h"},
		} {
			_, _, err := b.run(t, c.args...)
			require.Equal(t, keysapi.UsageError{Msg: c.msg}, err, c.args)
		}
		// Unknown scopes are the repository's to refuse.
		_, _, err := b.run(t, "create", "--name", "x", "--scopes", "root")
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	})

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		b := setupCLI(t)
		for _, args := range [][]string{{"--help"}, {"help"}, {"create", "--help"}, {"rotate", "-h"}} {
			out, errOut, err := b.run(t, args...)
			require.ErrorIs(t, err, flag.ErrHelp)
			require.Empty(t, out)
			require.Contains(t, errOut, "Usage: clipper keys")
		}
		_, errOut, _ := b.run(t, "create", "--help")
		require.Contains(t, errOut, "-scopes")
		require.Contains(t, errOut, "-expires-in")
		// A command without flags shows no empty "Flags:" heading.
		_, errOut, _ = b.run(t, "revoke", "--help")
		require.Contains(t, errOut, "Usage: clipper keys revoke KEY_ID")
		require.NotContains(t, errOut, "Flags:")
	})
}
