package keysapi_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/keysapi"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testBundle is one database with one or more daemons on it, an admin
// key made with the command line, and a record of every response so a
// test can check that no secret leaked.
type testBundle struct {
	cfg   config.Config
	db    *pgxpool.Pool
	insts []*daemontest.Instance
	admin string // plaintext of a key with scope admin

	mu        sync.Mutex
	responses []recorded
}

type recorded struct {
	what string
	body []byte
	// issued is the plaintext this response is meant to show (create or
	// rotate), or "".
	issued string
}

func setup(t *testing.T, replicas int, tweak ...func(*config.Config)) *testBundle {
	t.Helper()
	cfg := daemontest.Config(t)
	cfg.LastUsedFlushInterval = 100 * time.Millisecond
	for _, f := range tweak {
		f(&cfg)
	}
	db, err := pgxpool.New(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	b := &testBundle{cfg: cfg, db: db}
	b.admin = b.cli(t, "create", "--name", "root", "--scopes", "admin")
	for range replicas {
		b.insts = append(b.insts, daemontest.Start(t, cfg))
	}
	for _, inst := range b.insts {
		require.Eventually(t, func() bool { return inst.Do(t, "GET", "/readyz", "", nil).Status == http.StatusOK },
			30*time.Second, 20*time.Millisecond, "LISTEN connected")
	}
	return b
}

// cli runs `clipper keys args...` on the test database and returns its
// standard output, trimmed.
func (b *testBundle) cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := keysapi.Command{Stdout: &out, Stderr: &errOut, Open: func(ctx context.Context) (*apikeys.Repo, func(), error) {
		repo, err := apikeys.NewRepo(b.db, apikeys.Options{Params: cheap})
		return repo, func() {}, err
	}}
	require.NoError(t, cmd.Run(context.Background(), args), errOut.String())
	return strings.TrimSpace(out.String())
}

var cheap = apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// do sends a request to replica i and records the response.
func (b *testBundle) do(t *testing.T, i int, method, path, key string, body any) daemontest.Response {
	t.Helper()
	r := b.insts[i].Do(t, method, path, key, body)
	b.record(method+" "+path, r.Body, "")
	return r
}

func (b *testBundle) record(what string, body []byte, issued string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.responses = append(b.responses, recorded{what: what, body: body, issued: issued})
}

type keyJSON struct {
	ID                 string   `json:"id"`
	OwnerID            *string  `json:"owner_id"`
	LookupID           string   `json:"lookup_id"`
	Name               string   `json:"name"`
	Scopes             []string `json:"scopes"`
	RateLimitPerMinute *int32   `json:"rate_limit_per_minute"`
	ExpiresAt          *string  `json:"expires_at"`
	RevokedAt          *string  `json:"revoked_at"`
	RotatedFrom        *string  `json:"rotated_from"`
	LastUsedAt         *string  `json:"last_used_at"`
}

type issuedJSON struct {
	OK   bool `json:"ok"`
	Data struct {
		Key      keyJSON `json:"key"`
		Token    string  `json:"token"`
		Previous keyJSON `json:"previous"`
	} `json:"data"`
}

// issue sends a create or rotate request, expects 201 and records the
// response as the one allowed to show the new key's plaintext.
func (b *testBundle) issue(t *testing.T, i int, method, path, key string, body any) issuedJSON {
	t.Helper()
	r := b.insts[i].Do(t, method, path, key, body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	var out issuedJSON
	r.JSON(t, &out)
	require.True(t, out.OK)
	require.True(t, strings.HasPrefix(out.Data.Token, apikeys.Prefix))
	b.record(method+" "+path, r.Body, out.Data.Token)
	return out
}

// create makes a key through replica 0 with the admin key.
func (b *testBundle) create(t *testing.T, body map[string]any) (keyJSON, string) {
	t.Helper()
	out := b.issue(t, 0, "POST", "/v1/keys", b.admin, body)
	return out.Data.Key, out.Data.Token
}

type envelope struct {
	OK      bool   `json:"ok"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func requireError(t *testing.T, r daemontest.Response, status int, code, message string) {
	t.Helper()
	require.Equal(t, status, r.Status, string(r.Body))
	var env envelope
	r.JSON(t, &env)
	require.Equal(t, envelope{Code: code, Message: message}, env)
}

// eventually polls cond every 10 ms. Changes reach another replica in
// milliseconds (the test logs how long); the 30 s bound only keeps a
// broken build from hanging, so a loaded machine cannot fail the test.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 10*time.Millisecond, msg)
}

// requireNoLeaks checks every recorded response and every log line for
// any key's plaintext (outside the one response that issued it) and for
// any stored hash.
func (b *testBundle) requireNoLeaks(t *testing.T, plaintexts ...string) {
	t.Helper()
	rows, err := b.db.Query(context.Background(), "select hash from api_keys")
	require.NoError(t, err)
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, hashes)
	plaintexts = append(plaintexts, b.admin)
	var salts []string
	for _, h := range hashes {
		parts := strings.Split(h, "$")
		salts = append(salts, parts[4], parts[5])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.responses {
		for _, p := range plaintexts {
			if p != r.issued {
				require.NotContains(t, string(r.body), p, r.what)
			}
		}
		for _, h := range hashes {
			require.NotContains(t, string(r.body), h, r.what)
		}
		for _, s := range salts {
			require.NotContains(t, string(r.body), s, r.what)
		}
		require.NotContains(t, string(r.body), "argon2id", r.what)
	}
	for i, inst := range b.insts {
		logs := inst.Logs.String()
		require.NotEmpty(t, logs)
		for _, p := range plaintexts {
			require.NotContains(t, logs, p, "replica %d logs", i)
			_, secret, err := apikeys.Parse(p)
			require.NoError(t, err)
			require.NotContains(t, logs, secret, "replica %d logs", i)
		}
		for _, s := range salts {
			require.NotContains(t, logs, s, "replica %d logs", i)
		}
		require.NotContains(t, logs, "argon2id", "replica %d logs", i)
	}
}

var cacheLookupRe = regexp.MustCompile(`(?m)^clipper_api_key_cache_lookups_total\{result="(\w+)"\} (\d+)$`)

// lookups reads replica i's key cache counters from /metrics.
func (b *testBundle) lookups(t *testing.T, i int) map[string]int {
	t.Helper()
	r := b.insts[i].Do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	out := map[string]int{}
	for _, m := range cacheLookupRe.FindAllStringSubmatch(string(r.Body), -1) {
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		out[m[1]] = n
	}
	return out
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.db.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// TestLifecycle: create through the API, use on two replicas, rotate with
// a grace period, let the grace end, revoke; every change reaches the
// other replica within a second.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)

	ops, opsToken := b.create(t, map[string]any{"name": "ops", "scopes": []string{"keys:admin"}})
	require.Equal(t, []string{"keys:admin"}, ops.Scopes)
	require.Nil(t, ops.RevokedAt)

	// Usable on both replicas; last use reaches the database in a batch.
	for i := range b.insts {
		r := b.do(t, i, "GET", "/v1/keys", opsToken, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	}
	eventually(t, func() bool {
		var used *time.Time
		require.NoError(t, b.db.QueryRow(context.Background(), "select last_used_at from api_keys where id = $1", ops.ID).Scan(&used))
		return used != nil
	}, "last_used_at written by the flusher")

	// Rotate with a grace period: both keys work on both replicas.
	rot := b.issue(t, 0, "POST", "/v1/keys/"+ops.ID+"/rotate", b.admin, map[string]any{"grace_seconds": 3600})
	next, nextToken := rot.Data.Key, rot.Data.Token
	require.Equal(t, ops.ID, *next.RotatedFrom)
	require.Equal(t, "ops", next.Name)
	require.Equal(t, ops.Scopes, next.Scopes)
	require.NotNil(t, rot.Data.Previous.ExpiresAt, "the old key now expires")
	for i := range b.insts {
		for _, tok := range []string{opsToken, nextToken} {
			r := b.do(t, i, "GET", "/v1/keys", tok, nil)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		}
	}

	// The grace period ends (moved by SQL): the old key stops everywhere.
	b.exec(t, "update api_keys set expires_at = now() - interval '1 second' where id = $1", ops.ID)
	for i := range b.insts {
		eventually(t, func() bool {
			return b.do(t, i, "GET", "/v1/keys", opsToken, nil).Status == http.StatusUnauthorized
		}, "old key refused after its grace")
		requireError(t, b.do(t, i, "GET", "/v1/keys", opsToken, nil), http.StatusUnauthorized, "unauthorized", "api key expired")
		require.Equal(t, http.StatusOK, b.do(t, i, "GET", "/v1/keys", nextToken, nil).Status)
	}

	// Revoked through replica 0: replica 1 refuses within a second.
	r := b.do(t, 0, "POST", "/v1/keys/"+next.ID+"/revoke", b.admin, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	start := time.Now()
	eventually(t, func() bool {
		return b.do(t, 1, "GET", "/v1/keys", nextToken, nil).Status == http.StatusUnauthorized
	}, "revocation reaches the other replica")
	t.Logf("revocation reached the other replica in %s", time.Since(start))
	for i := range b.insts {
		requireError(t, b.do(t, i, "GET", "/v1/keys", nextToken, nil), http.StatusUnauthorized, "unauthorized", "api key revoked")
	}

	// Revoking again is harmless; rotating a revoked key is not allowed.
	r = b.do(t, 1, "POST", "/v1/keys/"+next.ID+"/revoke", b.admin, nil)
	require.Equal(t, http.StatusOK, r.Status)
	requireError(t, b.do(t, 1, "POST", "/v1/keys/"+next.ID+"/rotate", b.admin, map[string]any{"grace_seconds": 0}),
		http.StatusConflict, "invalid_transition", "a revoked api key cannot be rotated")

	// The list shows every key and no hash.
	r = b.do(t, 1, "GET", "/v1/keys", b.admin, nil)
	require.Equal(t, http.StatusOK, r.Status)
	var list struct {
		Data struct {
			Keys []keyJSON `json:"keys"`
		} `json:"data"`
	}
	r.JSON(t, &list)
	require.Len(t, list.Data.Keys, 3)
	require.NotContains(t, string(r.Body), `"hash"`)

	b.requireNoLeaks(t, opsToken, nextToken)
}

// TestRotateWithoutGrace: grace 0 stops the old key at once, here and on
// the other replica.
func TestRotateWithoutGrace(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	k, tok := b.create(t, map[string]any{"name": "w", "scopes": []string{"keys:admin"}, "rate_limit_per_minute": 100})
	for i := range b.insts {
		require.Equal(t, http.StatusOK, b.do(t, i, "GET", "/v1/keys", tok, nil).Status)
	}
	rot := b.issue(t, 0, "POST", "/v1/keys/"+k.ID+"/rotate", b.admin, map[string]any{"grace_seconds": 0})
	require.Equal(t, int32(100), *rot.Data.Key.RateLimitPerMinute, "the limit is inherited")
	requireError(t, b.do(t, 0, "GET", "/v1/keys", tok, nil), http.StatusUnauthorized, "unauthorized", "api key expired")
	eventually(t, func() bool { return b.do(t, 1, "GET", "/v1/keys", tok, nil).Status == http.StatusUnauthorized },
		"old key refused on the other replica")
	require.Equal(t, http.StatusOK, b.do(t, 1, "GET", "/v1/keys", rot.Data.Token, nil).Status)
	b.requireNoLeaks(t, tok, rot.Data.Token)
}

func TestScopes(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	_, reader := b.create(t, map[string]any{"name": "reader", "scopes": []string{"jobs:read", "jobs:write", "worker"}})
	keyAdmin, keyAdminToken := b.create(t, map[string]any{"name": "key admin", "scopes": []string{"keys:admin"}})
	rootID := b.keyID(t, "root")
	owner := b.user(t)

	// A key without keys:admin cannot reach the admin routes.
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"GET", "/v1/keys/" + keyAdmin.ID},
		{"POST", "/v1/keys/" + keyAdmin.ID + "/rotate"}, {"POST", "/v1/keys/" + keyAdmin.ID + "/revoke"},
	} {
		requireError(t, b.do(t, 0, req.method, req.path, reader, map[string]any{}),
			http.StatusForbidden, "forbidden", "api key lacks scope keys:admin")
	}
	// Nor can a request without a key.
	requireError(t, b.do(t, 0, "GET", "/v1/keys", "", nil), http.StatusUnauthorized, "unauthorized", "missing api key")

	// keys:admin alone grants nothing it does not hold: no worker key, no
	// admin key, no key without an owner or for any owner; and it cannot
	// take over an admin key.
	for _, c := range []struct {
		body map[string]any
		msg  string
	}{
		{map[string]any{"name": "x", "scopes": []string{"worker"}}, "an api key may grant only scopes it holds itself; it lacks scope worker"},
		{map[string]any{"name": "x", "scopes": []string{"jobs:read"}, "owner_id": owner}, "an api key may grant only scopes it holds itself; it lacks scope jobs:read"},
		{map[string]any{"name": "x", "scopes": []string{"admin"}}, "only a key with scope admin may grant the admin scope"},
		{map[string]any{"name": "x", "scopes": []string{"keys:admin"}}, "only a key with scope admin may create a key without an owner"},
		{map[string]any{"name": "x", "scopes": []string{"keys:admin"}, "owner_id": owner}, "only a key with scope admin may create keys for another owner"},
	} {
		requireError(t, b.do(t, 0, "POST", "/v1/keys", keyAdminToken, c.body), http.StatusForbidden, "forbidden", c.msg)
	}
	requireError(t, b.do(t, 0, "POST", "/v1/keys/"+rootID+"/rotate", keyAdminToken, map[string]any{"grace_seconds": 60}),
		http.StatusForbidden, "forbidden", "only a key with scope admin may rotate an admin key")
	requireError(t, b.do(t, 0, "POST", "/v1/keys/"+rootID+"/revoke", keyAdminToken, nil),
		http.StatusForbidden, "forbidden", "only a key with scope admin may revoke an admin key")
	require.Equal(t, 3, b.count(t), "no key was made")
	// admin may do all of it.
	second := b.issue(t, 0, "POST", "/v1/keys", b.admin, map[string]any{"name": "second root", "scopes": []string{"admin"}})
	worker := b.issue(t, 0, "POST", "/v1/keys", b.admin, map[string]any{"name": "w", "scopes": []string{"worker"}})
	owned := b.issue(t, 0, "POST", "/v1/keys", b.admin, map[string]any{"name": "o", "scopes": []string{"keys:admin"}, "owner_id": owner})
	require.Equal(t, owner, *owned.Data.Key.OwnerID)

	b.requireNoLeaks(t, reader, keyAdminToken, second.Data.Token, worker.Data.Token, owned.Data.Token)
}

// TestOwners: a key with an owner manages only its owner's keys and grants
// only scopes it holds; a key without an owner (not admin) only sees and
// revokes keys without an owner; only admin crosses owners. Every refusal
// is 403 forbidden and hands out no plaintext.
func TestOwners(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	alice, bob := b.user(t), b.user(t)
	aAdmin, aAdminToken := b.create(t, map[string]any{"name": "alice keys", "scopes": []string{"keys:admin", "jobs:read"}, "owner_id": alice})
	aReader, aReaderToken := b.create(t, map[string]any{"name": "alice reader", "scopes": []string{"jobs:read"}, "owner_id": alice})
	aWorker, _ := b.create(t, map[string]any{"name": "alice worker", "scopes": []string{"worker"}, "owner_id": alice})
	bobKey, bobToken := b.create(t, map[string]any{"name": "bob", "scopes": []string{"jobs:read"}, "owner_id": bob})
	svc, _ := b.create(t, map[string]any{"name": "service", "scopes": []string{"jobs:read"}})
	svcAdmin, svcAdminToken := b.create(t, map[string]any{"name": "service keys", "scopes": []string{"keys:admin"}})
	rootID := b.keyID(t, "root")
	const otherOwner = "an api key with an owner manages only its owner's keys"
	const ownerless = "an api key without an owner manages only keys without an owner; only a key with scope admin crosses owners"

	// Alice's keys:admin key makes keys for Alice only, with scopes it holds.
	made := b.issue(t, 0, "POST", "/v1/keys", aAdminToken, map[string]any{"name": "alice reader 2", "scopes": []string{"jobs:read"}})
	require.Equal(t, alice, *made.Data.Key.OwnerID, "the caller's owner by default")
	made2 := b.issue(t, 0, "POST", "/v1/keys", aAdminToken, map[string]any{"name": "alice keys 2", "scopes": []string{"keys:admin"}, "owner_id": alice})
	require.Equal(t, alice, *made2.Data.Key.OwnerID)
	n := b.count(t)
	for _, c := range []struct {
		body map[string]any
		msg  string
	}{
		{map[string]any{"name": "x", "scopes": []string{"worker"}}, "an api key may grant only scopes it holds itself; it lacks scope worker"},
		{map[string]any{"name": "x", "scopes": []string{"jobs:read", "jobs:write"}}, "an api key may grant only scopes it holds itself; it lacks scope jobs:write"},
		{map[string]any{"name": "x", "scopes": []string{"admin"}}, "only a key with scope admin may grant the admin scope"},
		{map[string]any{"name": "x", "scopes": []string{"jobs:read"}, "owner_id": bob}, "only a key with scope admin may create keys for another owner"},
	} {
		requireError(t, b.do(t, 0, "POST", "/v1/keys", aAdminToken, c.body), http.StatusForbidden, "forbidden", c.msg)
	}
	require.Equal(t, n, b.count(t), "refused creates make no key")

	// It lists and reads Alice's keys only.
	require.ElementsMatch(t, []string{aAdmin.ID, aReader.ID, aWorker.ID, made.Data.Key.ID, made2.Data.Key.ID},
		b.list(t, aAdminToken, ""))
	requireError(t, b.do(t, 0, "GET", "/v1/keys?owner_id="+bob, aAdminToken, nil), http.StatusForbidden, "forbidden", otherOwner)
	require.Equal(t, http.StatusOK, b.do(t, 0, "GET", "/v1/keys/"+aReader.ID, aAdminToken, nil).Status)
	for _, id := range []string{bobKey.ID, svc.ID, rootID} {
		requireError(t, b.do(t, 0, "GET", "/v1/keys/"+id, aAdminToken, nil), http.StatusForbidden, "forbidden", otherOwner)
	}

	// It cannot rotate (and so receive the plaintext of) another owner's
	// key, a key without an owner, or a key with scopes it lacks.
	for _, c := range []struct{ id, msg string }{
		{bobKey.ID, otherOwner},
		{svc.ID, otherOwner},
		{rootID, otherOwner},
		{aWorker.ID, "an api key may rotate only keys whose scopes it holds itself; it lacks scope worker"},
	} {
		r := b.do(t, 0, "POST", "/v1/keys/"+c.id+"/rotate", aAdminToken, map[string]any{"grace_seconds": 0})
		requireError(t, r, http.StatusForbidden, "forbidden", c.msg)
		require.NotContains(t, string(r.Body), apikeys.Prefix)
	}
	require.Equal(t, n, b.count(t), "refused rotations make no key")
	rot := b.issue(t, 0, "POST", "/v1/keys/"+aReader.ID+"/rotate", aAdminToken, map[string]any{"grace_seconds": 0})
	require.Equal(t, alice, *rot.Data.Key.OwnerID)

	// It revokes Alice's keys (even one with more scopes), no one else's.
	for _, id := range []string{bobKey.ID, svc.ID, rootID} {
		requireError(t, b.do(t, 0, "POST", "/v1/keys/"+id+"/revoke", aAdminToken, nil), http.StatusForbidden, "forbidden", otherOwner)
	}
	require.Equal(t, http.StatusOK, b.do(t, 0, "POST", "/v1/keys/"+aWorker.ID+"/revoke", aAdminToken, nil).Status)
	// Bob's key was left alone: it still works and was never rotated.
	require.Equal(t, http.StatusOK, b.do(t, 0, "GET", "/v1/jobs", bobToken, nil).Status)
	b.requireNotRevoked(t, bobKey.ID, svc.ID, rootID)

	// A keys:admin key without an owner sees and revokes keys without an
	// owner only, and makes none.
	require.ElementsMatch(t, []string{rootID, svc.ID, svcAdmin.ID}, b.list(t, svcAdminToken, ""))
	requireError(t, b.do(t, 0, "GET", "/v1/keys?owner_id="+alice, svcAdminToken, nil), http.StatusForbidden, "forbidden", ownerless)
	requireError(t, b.do(t, 0, "GET", "/v1/keys/"+aReader.ID, svcAdminToken, nil), http.StatusForbidden, "forbidden", ownerless)
	requireError(t, b.do(t, 0, "POST", "/v1/keys/"+aReader.ID+"/revoke", svcAdminToken, nil), http.StatusForbidden, "forbidden", ownerless)
	requireError(t, b.do(t, 0, "POST", "/v1/keys/"+svcAdmin.ID+"/rotate", svcAdminToken, map[string]any{"grace_seconds": 60}),
		http.StatusForbidden, "forbidden", "only a key with scope admin may rotate a key without an owner")
	requireError(t, b.do(t, 0, "POST", "/v1/keys", svcAdminToken, map[string]any{"name": "x", "scopes": []string{"keys:admin"}, "owner_id": alice}),
		http.StatusForbidden, "forbidden", "only a key with scope admin may create keys for another owner")
	require.Equal(t, http.StatusOK, b.do(t, 0, "POST", "/v1/keys/"+svc.ID+"/revoke", svcAdminToken, nil).Status)

	// admin crosses owners.
	require.Len(t, b.list(t, b.admin, ""), b.count(t))
	require.ElementsMatch(t, []string{bobKey.ID}, b.list(t, b.admin, bob))
	bobRot := b.issue(t, 0, "POST", "/v1/keys/"+bobKey.ID+"/rotate", b.admin, map[string]any{"grace_seconds": 60})
	require.Equal(t, bob, *bobRot.Data.Key.OwnerID)

	b.requireNoLeaks(t, aAdminToken, aReaderToken, bobToken, svcAdminToken, made.Data.Token, made2.Data.Token,
		rot.Data.Token, bobRot.Data.Token)
}

// user adds a user to auth.users and returns its id.
func (b *testBundle) user(t *testing.T) string {
	t.Helper()
	var id string
	require.NoError(t, b.db.QueryRow(context.Background(),
		"insert into auth.users (id) values (gen_random_uuid()) returning id::text").Scan(&id))
	return id
}

// keyID returns the id of the key named name.
func (b *testBundle) keyID(t *testing.T, name string) string {
	t.Helper()
	var id string
	require.NoError(t, b.db.QueryRow(context.Background(), "select id::text from api_keys where name = $1", name).Scan(&id))
	return id
}

// count returns the number of keys in the database.
func (b *testBundle) count(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), "select count(*) from api_keys").Scan(&n))
	return n
}

// list returns the ids GET /v1/keys shows to key (for owner, if not "").
func (b *testBundle) list(t *testing.T, key, owner string) []string {
	t.Helper()
	path := "/v1/keys"
	if owner != "" {
		path += "?owner_id=" + owner
	}
	r := b.do(t, 0, "GET", path, key, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct {
		Data struct {
			Keys []keyJSON `json:"keys"`
		} `json:"data"`
	}
	r.JSON(t, &out)
	ids := []string{}
	for _, k := range out.Data.Keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// requireNotRevoked checks that none of ids is revoked, expired or rotated.
func (b *testBundle) requireNotRevoked(t *testing.T, ids ...string) {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), `select count(*) from api_keys
		where id = any($1::uuid[]) and revoked_at is null and expires_at is null`, ids).Scan(&n))
	require.Equal(t, len(ids), n)
	require.NoError(t, b.db.QueryRow(context.Background(),
		"select count(*) from api_keys where rotated_from = any($1::uuid[])", ids).Scan(&n))
	require.Zero(t, n)
}

func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	k, tok := b.create(t, map[string]any{"name": "v", "scopes": []string{"jobs:read"}})
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		code, msg    string
	}{
		{"POST", "/v1/keys", map[string]any{"name": "x"}, 400, "invalid_input", "scopes must name at least one scope"},
		{"POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"root"}}, 400, "invalid_input",
			"scope 1 is unknown; known scopes are jobs:read, jobs:write, worker, keys:admin, admin"},
		{"POST", "/v1/keys", map[string]any{"name": " ", "scopes": []string{"worker"}}, 400, "invalid_input", "api key name is empty"},
		{"POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"worker"}, "hash": "h"}, 400, "invalid_input", `unknown field "hash"`},
		{"POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"worker"}, "rate_limit_per_minute": 0}, 400, "invalid_input",
			"rate limit must be between 1 and 1000000 per minute"},
		{"POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"worker"}, "owner_id": "d0000000-0000-4000-8000-0000000000ff"},
			400, "invalid_input", "api key refers to a row that does not exist (api_keys_owner_id_fkey)"},
		{"POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"worker"}, "expires_at": "2001-01-01T00:00:00Z"},
			400, "invalid_input", "expiry must be in the future"},
		{"GET", "/v1/keys?owner_id=nope", nil, 400, "invalid_input", "owner_id is not a UUID"},
		{"GET", "/v1/keys/nope", nil, 400, "invalid_input", "key id is not a UUID"},
		{"GET", "/v1/keys/d0000000-0000-4000-8000-0000000000ff", nil, 404, "not_found", "api key not found"},
		{"POST", "/v1/keys/" + k.ID + "/rotate", map[string]any{}, 400, "invalid_input", "grace_seconds is required (0 stops the old key at once)"},
		{"POST", "/v1/keys/" + k.ID + "/rotate", map[string]any{"grace_seconds": -1}, 400, "invalid_input", "grace_seconds must be between 0 and 2592000"},
		{"POST", "/v1/keys/d0000000-0000-4000-8000-0000000000ff/revoke", nil, 404, "not_found", "api key not found"},
	} {
		requireError(t, b.do(t, 0, c.method, c.path, b.admin, c.body), c.status, c.code, c.msg)
	}
	r := b.do(t, 0, "GET", "/v1/keys/"+k.ID, b.admin, nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), k.LookupID)
	b.requireNoLeaks(t, tok)
}

// TestCache: a key is verified (one argon2id) once per cache lifetime per
// replica; unknown keys are remembered briefly.
func TestCache(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	_, tok := b.create(t, map[string]any{"name": "c", "scopes": []string{"keys:admin"}})

	before := b.lookups(t, 0)
	for range 5 {
		require.Equal(t, http.StatusOK, b.do(t, 0, "GET", "/v1/keys", tok, nil).Status)
	}
	after := b.lookups(t, 0)
	require.Equal(t, 1, after["miss"]-before["miss"], "verified once")
	require.Equal(t, 4, after["hit"]-before["hit"])

	unknown, err := apikeys.Generate()
	require.NoError(t, err)
	before = after
	for range 3 {
		requireError(t, b.do(t, 0, "GET", "/v1/keys", unknown.Plaintext(), nil), http.StatusUnauthorized, "unauthorized", "invalid api key")
	}
	after = b.lookups(t, 0)
	require.Equal(t, 1, after["miss"]-before["miss"], "looked up once")
	require.Equal(t, 2, after["negative_hit"]-before["negative_hit"])

	// Malformed keys never reach the cache or the database.
	before = after
	requireError(t, b.do(t, 0, "GET", "/v1/keys", "clp_not_a_key", nil), http.StatusUnauthorized, "unauthorized", "invalid api key")
	require.Equal(t, before, b.lookups(t, 0))
	b.requireNoLeaks(t, tok, unknown.Plaintext())
}

// TestRateLimitAcrossReplicas: a limit of 5 per minute holds across two
// replicas: of 10 requests alternating between them, exactly 5 pass.
func TestRateLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t, 2)
	_, tok := b.create(t, map[string]any{"name": "limited", "scopes": []string{"keys:admin"}, "rate_limit_per_minute": 5})
	passed := 0
	for i := range 10 {
		r := b.do(t, i%2, "GET", "/v1/keys", tok, nil)
		require.Equal(t, "5", r.Header.Get("RateLimit-Limit"))
		switch r.Status {
		case http.StatusOK:
			passed++
			require.Equal(t, strconv.Itoa(5-passed), r.Header.Get("RateLimit-Remaining"), "request %d", i+1)
			require.Empty(t, r.Header.Get("Retry-After"))
		case http.StatusTooManyRequests:
			requireError(t, r, http.StatusTooManyRequests, "rate_limited", "rate limit of 5 requests per minute exceeded")
			require.Equal(t, "0", r.Header.Get("RateLimit-Remaining"))
			retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
			require.NoError(t, err)
			require.InDelta(t, 12, retry, 1, "one request per 12 s after the burst")
			reset, err := strconv.Atoi(r.Header.Get("RateLimit-Reset"))
			require.NoError(t, err)
			require.InDelta(t, 60, reset, 1)
		default:
			t.Fatalf("request %d: status %d: %s", i+1, r.Status, r.Body)
		}
	}
	require.Equal(t, 5, passed)

	// Keys without their own limit get the default.
	r := b.do(t, 1, "GET", "/v1/keys", b.admin, nil)
	require.Equal(t, strconv.Itoa(b.cfg.DefaultRateLimit), r.Header.Get("RateLimit-Limit"))
	b.requireNoLeaks(t, tok)
}

// TestLastUsedAtShutdown: uses recorded since the last flush are written
// when the daemon stops.
func TestLastUsedAtShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, func(c *config.Config) { c.LastUsedFlushInterval = time.Hour })
	k, tok := b.create(t, map[string]any{"name": "u", "scopes": []string{"keys:admin"}})
	require.Equal(t, http.StatusOK, b.do(t, 0, "GET", "/v1/keys", tok, nil).Status)
	var used *time.Time
	require.NoError(t, b.db.QueryRow(context.Background(), "select last_used_at from api_keys where id = $1", k.ID).Scan(&used))
	require.Nil(t, used, "not written per request")
	b.insts[0].Stop(t)
	require.NoError(t, b.db.QueryRow(context.Background(), "select last_used_at from api_keys where id = $1", k.ID).Scan(&used))
	require.NotNil(t, used)
}
