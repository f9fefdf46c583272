package rls_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/rls"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A PHC string of the form the daemon stores (argon2id, OWASP minimum).
const testHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"

// SQLSTATEs the tests expect.
const (
	insufficientPrivilege = "42501" // grants and RLS refusals alike
	checkViolation        = "23514"
	uniqueViolation       = "23505"
	foreignKeyViolation   = "23503"
	invalidTextRep        = "22P02" // bad uuid or json
	invalidTransition     = "CL001" // clipper_internal.jobs_before_write
	appendOnly            = "CL002" // clipper_internal.job_events_append_only
)

// bundle is one test's world, seeded by the migration owner (superuser) in
// a transaction that is rolled back when the test ends.
type bundle struct {
	ctx context.Context
	tx  pgx.Tx

	userA, userB string
	// jobA is A's queued job, jobAProcessing A's claimed one, jobB B's.
	jobA, jobAProcessing, jobB string
	keyA, keyB                 string
	claimsA, claimsB           string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	b := &bundle{ctx: ctx, tx: tx, userA: uuid.NewString(), userB: uuid.NewString()}
	b.claimsA = rls.UserClaims(b.userA)
	b.claimsB = rls.UserClaims(b.userB)

	_, err := tx.Exec(ctx, `insert into auth.users (id, email) values ($1, $2), ($3, $4)`,
		b.userA, "a-"+b.userA+"@example.com", b.userB, "b-"+b.userB+"@example.com")
	require.NoError(t, err)

	insertJob := func(owner, key string) string {
		var id string
		require.NoError(t, tx.QueryRow(ctx, `insert into jobs (owner_id, source_type, source_url, idempotency_key)
			values ($1, 'youtube', 'https://youtu.be/dQw4w9WgXcQ', $2) returning id`, owner, key).Scan(&id))
		return id
	}
	b.jobA = insertJob(b.userA, "a-1")
	b.jobAProcessing = insertJob(b.userA, "a-2")
	b.jobB = insertJob(b.userB, "b-1")
	_, err = tx.Exec(ctx, `update jobs set status = 'processing', attempts = 1, worker_id = 'worker-1',
		claimed_at = now(), last_heartbeat_at = now() where id = $1`, b.jobAProcessing)
	require.NoError(t, err)

	insertKey := func(owner string) string {
		var id string
		require.NoError(t, tx.QueryRow(ctx, `insert into api_keys (lookup_id, hash, owner_id, name, scopes)
			values ($1, $2, $3, 'ci', '{jobs:read,jobs:write}') returning id`,
			randomLookupID(t), testHash, owner).Scan(&id))
		return id
	}
	b.keyA = insertKey(b.userA)
	b.keyB = insertKey(b.userB)
	return b
}

func randomLookupID(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 8)
	_, err := rand.Read(buf)
	require.NoError(t, err)
	return hex.EncodeToString(buf)
}

// get runs fn as a GET request (read-only transaction).
func (b *bundle) get(role, claims, path string, fn func(pgx.Tx) error) error {
	return rls.Do(b.ctx, b.tx, rls.Request{Role: role, Claims: claims, Method: "GET", Path: path}, fn)
}

// write runs fn as a request of the given method (read-write).
func (b *bundle) write(role, claims, method, path string, fn func(pgx.Tx) error) error {
	return rls.Do(b.ctx, b.tx, rls.Request{Role: role, Claims: claims, Method: method, Path: path,
		Headers: map[string]string{"prefer": "return=representation", "content-type": "application/json"}}, fn)
}

// strings runs a one-column query and returns its values.
func (b *bundle) strings(tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(b.ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// exec runs sql and returns the number of rows it touched.
func (b *bundle) exec(tx pgx.Tx, sql string, args ...any) (int64, error) {
	tag, err := tx.Exec(b.ctx, sql, args...)
	return tag.RowsAffected(), err
}

// jobStatus reads a job's status as the migration owner.
func (b *bundle) jobStatus(t *testing.T, id string) string {
	t.Helper()
	var s string
	require.NoError(t, b.tx.QueryRow(b.ctx, `select status::text from jobs where id = $1`, id).Scan(&s))
	return s
}

func requireSQLState(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	return pgErr
}

func TestAnon(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"jobs", "job_events", "api_keys"} {
		t.Run("CannotRead_"+table, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for _, claims := range []string{rls.AnonClaims(), ""} {
				err := b.get(rls.Anon, claims, "/"+table, func(tx pgx.Tx) error {
					_, err := b.strings(tx, `select id::text from `+table)
					return err
				})
				requireSQLState(t, err, insufficientPrivilege)
			}
		})
	}

	t.Run("CannotInsertJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Anon, rls.AnonClaims(), "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', 'https://x.test/v')`)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})

	t.Run("CannotTouchEventsOrKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sql := range []string{
			`insert into job_events (job_id, type) values ('` + b.jobA + `', 'note')`,
			`insert into api_keys (lookup_id, hash, name) values ('abcdefgh12', '` + testHash + `', 'x')`,
			`update jobs set status = 'canceled' where id = '` + b.jobA + `'`,
			`delete from api_keys`,
		} {
			err := b.write(rls.Anon, rls.AnonClaims(), "POST", "/", func(tx pgx.Tx) error {
				_, err := b.exec(tx, sql)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})
}

func TestJobsRead(t *testing.T) {
	t.Parallel()

	t.Run("OwnerSeesOnlyOwnJobs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []string
		err := b.get(rls.Authenticated, b.claimsA, "/jobs", func(tx pgx.Tx) error {
			var err error
			ids, err = b.strings(tx, `select id::text from jobs order by created_at, id`)
			return err
		})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{b.jobA, b.jobAProcessing}, ids)
	})

	t.Run("OwnerSeesOnlyOwnEvents", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var jobIDs []string
		err := b.get(rls.Authenticated, b.claimsA, "/job_events", func(tx pgx.Tx) error {
			var err error
			jobIDs, err = b.strings(tx, `select job_id::text from job_events`)
			return err
		})
		require.NoError(t, err)
		// One creation event per job, one more for the claim.
		require.ElementsMatch(t, []string{b.jobA, b.jobAProcessing, b.jobAProcessing}, jobIDs)
	})

	t.Run("OtherUserSeesNothingOfA", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, q := range []string{
			`select id::text from jobs where id = $1`,
			`select id::text from job_events where job_id = $1`,
			`select id::text from jobs where owner_id = (select owner_id from jobs where id = $1)`,
		} {
			var got []string
			err := b.get(rls.Authenticated, b.claimsB, "/jobs", func(tx pgx.Tx) error {
				var err error
				got, err = b.strings(tx, q, b.jobA)
				return err
			})
			require.NoError(t, err)
			require.Empty(t, got, q)
		}
		var all []string
		err := b.get(rls.Authenticated, b.claimsB, "/jobs", func(tx pgx.Tx) error {
			var err error
			all, err = b.strings(tx, `select id::text from jobs`)
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []string{b.jobB}, all)
	})

	t.Run("PostgRESTShapedRead", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// GET /jobs?select=id,status&order=created_at.desc,id.desc&limit=50
		var body string
		err := b.get(rls.Authenticated, b.claimsA, "/jobs", func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, `
				with pgrst_source as (
				  select "public"."jobs"."id", "public"."jobs"."status" from "public"."jobs"
				  order by "public"."jobs"."created_at" desc, "public"."jobs"."id" desc
				  limit $1 offset $2)
				select coalesce(json_agg(_postgrest_t), '[]')::text as body
				from (select * from pgrst_source) _postgrest_t`, 50, 0).Scan(&body)
		})
		require.NoError(t, err)
		var rows []struct{ ID, Status string }
		require.NoError(t, json.Unmarshal([]byte(body), &rows))
		require.Len(t, rows, 2)
		for _, r := range rows {
			require.Contains(t, []string{b.jobA, b.jobAProcessing}, r.ID)
		}
	})

	t.Run("ServiceRoleSeesAll", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []string
		err := b.get(rls.ServiceRole, rls.ServiceClaims(), "/jobs", func(tx pgx.Tx) error {
			var err error
			ids, err = b.strings(tx, `select id::text from jobs where owner_id in ($1, $2)`, b.userA, b.userB)
			return err
		})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{b.jobA, b.jobAProcessing, b.jobB}, ids)
	})
}

func TestJobsCancel(t *testing.T) {
	t.Parallel()

	t.Run("OwnerCancelsQueuedJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// PATCH /jobs?id=eq.<id> {"status":"canceled"}, Prefer: return=representation
		var status string
		var finished bool
		var events []string
		err := b.write(rls.Authenticated, b.claimsA, "PATCH", "/jobs", func(tx pgx.Tx) error {
			err := tx.QueryRow(b.ctx, `update jobs set status = 'canceled' where id = $1
				returning status::text, finished_at is not null`, b.jobA).Scan(&status, &finished)
			if err != nil {
				return err
			}
			// The owner reads the event the trigger wrote.
			events, err = b.strings(tx, `select type || ' ' || data::text from job_events
				where job_id = $1 order by ts, id`, b.jobA)
			return err
		})
		require.NoError(t, err)
		require.Equal(t, "canceled", status)
		require.True(t, finished)
		require.Equal(t, []string{
			`status {"to": "queued"}`,
			`status {"to": "canceled", "from": "queued", "attempt": 0}`,
		}, events)
	})

	t.Run("OwnerCancelsProcessingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var n int64
		err := b.write(rls.Authenticated, b.claimsA, "PATCH", "/jobs", func(tx pgx.Tx) error {
			var err error
			n, err = b.exec(tx, `update jobs set status = 'canceled' where id = $1`, b.jobAProcessing)
			return err
		})
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
	})

	t.Run("OwnerCannotMoveToOtherStatuses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cases := []struct {
			job, to, code string
		}{
			// The policy's check (status = 'canceled') refuses these.
			{b.jobA, "processing", insufficientPrivilege},
			{b.jobAProcessing, "done", insufficientPrivilege},
			{b.jobAProcessing, "failed", insufficientPrivilege},
			{b.jobAProcessing, "queued", insufficientPrivilege},
			// The transition trigger runs before the policy check and
			// refuses queued -> done itself.
			{b.jobA, "done", invalidTransition},
		}
		for _, c := range cases {
			before := b.jobStatus(t, c.job)
			err := b.write(rls.Authenticated, b.claimsA, "PATCH", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `update jobs set status = $2 where id = $1`, c.job, c.to)
				return err
			})
			requireSQLState(t, err, c.code)
			require.Equal(t, before, b.jobStatus(t, c.job))
		}
	})

	t.Run("OwnerCannotWriteServiceColumns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, set := range []string{
			`attempts = 1`,
			`max_attempts = 100`,
			`result_keys = '{x.mp4}'`,
			`error_code = 'boom'`,
			`error_message = 'boom'`,
			`worker_id = 'worker-x'`,
			`progress = 50`,
			`claimed_at = now()`,
			`last_heartbeat_at = now()`,
			`finished_at = now()`,
			`expires_at = now() + interval '100 years'`,
			`run_at = now()`,
			`owner_id = '` + b.userB + `'`,
			`api_key_id = '` + b.keyA + `'`,
			`params = '{}'`,
			`source_url = 'https://x.test/other'`,
			`status = 'canceled', error_code = 'user'`,
		} {
			err := b.write(rls.Authenticated, b.claimsA, "PATCH", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `update jobs set `+set+` where id = $1`, b.jobA)
				return err
			})
			pgErr := requireSQLState(t, err, insufficientPrivilege)
			require.Equal(t, "permission denied for table jobs", pgErr.Message, set)
		}
	})

	t.Run("OwnerCannotDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Authenticated, b.claimsA, "DELETE", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `delete from jobs where id = $1`, b.jobA)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})

	t.Run("OtherUserCannotCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var n int64
		err := b.write(rls.Authenticated, b.claimsB, "PATCH", "/jobs", func(tx pgx.Tx) error {
			var err error
			n, err = b.exec(tx, `update jobs set status = 'canceled' where id = $1`, b.jobA)
			return err
		})
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, "queued", b.jobStatus(t, b.jobA))
	})

	t.Run("ReadOnlyRequestCannotCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.get(rls.Authenticated, b.claimsA, "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `update jobs set status = 'canceled' where id = $1`, b.jobA)
			return err
		})
		requireSQLState(t, err, "25006") // read_only_sql_transaction
	})
}

func TestJobsInsert(t *testing.T) {
	t.Parallel()

	t.Run("OwnerDefaultsToCaller", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var id, owner, status string
		var events []string
		err := b.write(rls.Authenticated, b.claimsB, "POST", "/jobs", func(tx pgx.Tx) error {
			err := tx.QueryRow(b.ctx, `insert into jobs (source_type, source_object, params)
				values ('upload', $1, '{"start": 1.5, "end": 9}')
				returning id::text, owner_id::text, status::text`, b.userB+"/in.mp4").Scan(&id, &owner, &status)
			if err != nil {
				return err
			}
			events, err = b.strings(tx, `select data->>'to' from job_events where job_id = $1`, id)
			return err
		})
		require.NoError(t, err)
		require.Equal(t, b.userB, owner)
		require.Equal(t, "queued", status)
		require.Equal(t, []string{"queued"}, events)
	})

	t.Run("CannotInsertForAnotherUser", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Authenticated, b.claimsB, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (owner_id, source_type, source_url)
				values ($1, 'youtube', 'https://x.test/v')`, b.userA)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})

	t.Run("CannotInsertServiceColumns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, col := range []struct{ name, value string }{
			{"status", `'done'`},
			{"attempts", `0`},
			{"worker_id", `'w'`},
			{"result_keys", `'{}'`},
			{"api_key_id", `'` + b.keyB + `'`},
			{"expires_at", `now()`},
		} {
			err := b.write(rls.Authenticated, b.claimsB, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url, `+col.name+`)
					values ('youtube', 'https://x.test/v', `+col.value+`)`)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})

	t.Run("IdempotencyKeysAreScopedToTheOwner", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// B can use the key A used: nothing about A's jobs leaks.
		err := b.write(rls.Authenticated, b.claimsB, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url, idempotency_key)
				values ('youtube', 'https://x.test/v', 'a-1')`)
			return err
		})
		require.NoError(t, err)
		// A replaying its own key conflicts.
		err = b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url, idempotency_key)
				values ('youtube', 'https://x.test/v', 'a-1')`)
			return err
		})
		requireSQLState(t, err, uniqueViolation)
	})

	t.Run("PostgRESTShapedInsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// POST /jobs with a JSON body, Prefer: return=representation.
		var body string
		err := b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, postgrestInsertJobs,
				`{"source_type":"youtube","source_url":"https://youtu.be/abc","params":{"start":3}}`).Scan(&body)
		})
		require.NoError(t, err)
		var rows []struct {
			OwnerID string          `json:"owner_id"`
			Status  string          `json:"status"`
			Params  json.RawMessage `json:"params"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &rows))
		require.Len(t, rows, 1)
		require.Equal(t, b.userA, rows[0].OwnerID)
		require.Equal(t, "queued", rows[0].Status)
		require.JSONEq(t, `{"start":3}`, string(rows[0].Params))
	})
}

// postgrestInsertJobs is the statement PostgREST builds for POST /jobs with
// the columns a frontend may send: the body travels as one JSON parameter.
const postgrestInsertJobs = `
with pgrst_source as (
  insert into "public"."jobs"("source_type", "source_url", "source_object", "params", "idempotency_key")
  select pgrst_body."source_type", pgrst_body."source_url", pgrst_body."source_object",
         coalesce(pgrst_body."params", '{}'), pgrst_body."idempotency_key"
  from (select $1::json as json_data) pgrst_payload,
  lateral (select case when json_typeof(pgrst_payload.json_data) = 'array'
                       then pgrst_payload.json_data
                       else json_build_array(pgrst_payload.json_data) end as val) pgrst_uniform_json,
  lateral (select * from json_to_recordset(pgrst_uniform_json.val) as _(
    "source_type" public.job_source_type, "source_url" text, "source_object" text,
    "params" jsonb, "idempotency_key" text)) pgrst_body
  returning "public"."jobs".*)
select coalesce(json_agg(_postgrest_t), '[]')::text from (select * from pgrst_source) _postgrest_t`

func TestJobEventsAreServiceOnly(t *testing.T) {
	t.Parallel()

	t.Run("AuthenticatedCannotWrite", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sql := range []string{
			`insert into job_events (job_id, type, data) values ($1, 'status', '{"to":"done"}')`,
			`update job_events set data = '{}' where job_id = $1`,
			`delete from job_events where job_id = $1`,
		} {
			err := b.write(rls.Authenticated, b.claimsA, "POST", "/job_events", func(tx pgx.Tx) error {
				_, err := b.exec(tx, sql, b.jobA)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})

	t.Run("ServiceRoleAppendsButNeverRewrites", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.ServiceRole, rls.ServiceClaims(), "POST", "/job_events", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into job_events (job_id, type, data) values ($1, 'note', '{"m":"hi"}')`, b.jobA)
			return err
		})
		require.NoError(t, err)
		for _, sql := range []string{
			`update job_events set data = '{}' where job_id = $1`,
			`delete from job_events where job_id = $1`,
		} {
			err := b.write(rls.ServiceRole, rls.ServiceClaims(), "POST", "/job_events", func(tx pgx.Tx) error {
				_, err := b.exec(tx, sql, b.jobA)
				return err
			})
			requireSQLState(t, err, appendOnly)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()

	const publicColumns = `id::text, lookup_id, owner_id::text, name, scopes::text, rate_limit_per_minute,
		created_at, last_used_at, expires_at, revoked_at, rotated_from`

	t.Run("HashIsNeverSelectable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, q := range []string{
			`select hash from api_keys where id = $1`,
			`select * from api_keys where id = $1`,
			// Nor can a filter probe it.
			`select id::text from api_keys where id = $1 and hash like '$argon2id$%'`,
			`select id::text from api_keys where id = $1 order by hash`,
			`select k.id::text from api_keys k where id = $1 and k is not null`,
		} {
			for _, user := range []string{b.claimsA, b.claimsB} {
				err := b.get(rls.Authenticated, user, "/api_keys", func(tx pgx.Tx) error {
					_, err := b.strings(tx, q, b.keyA)
					return err
				})
				requireSQLState(t, err, insufficientPrivilege)
			}
		}
	})

	t.Run("OwnerReadsOwnMetadata", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		read := func(claims string) []string {
			var ids []string
			err := b.get(rls.Authenticated, claims, "/api_keys", func(tx pgx.Tx) error {
				rows, err := tx.Query(b.ctx, `select `+publicColumns+` from api_keys`)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					vals, err := rows.Values()
					if err != nil {
						return err
					}
					ids = append(ids, vals[0].(string))
				}
				return rows.Err()
			})
			require.NoError(t, err)
			return ids
		}
		require.Equal(t, []string{b.keyA}, read(b.claimsA))
		require.Equal(t, []string{b.keyB}, read(b.claimsB))
	})

	t.Run("ServiceRoleReadsHash", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var hash string
		err := b.get(rls.ServiceRole, rls.ServiceClaims(), "/api_keys", func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, `select hash from api_keys where id = $1`, b.keyA).Scan(&hash)
		})
		require.NoError(t, err)
		require.Equal(t, testHash, hash)
	})

	t.Run("AuthenticatedCannotWrite", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sql := range []string{
			`insert into api_keys (lookup_id, hash, name, owner_id) values ('abcdefgh12', '` + testHash + `', 'x', $1)`,
			`update api_keys set revoked_at = null where owner_id = $1`,
			`update api_keys set scopes = '{admin}' where owner_id = $1`,
			`delete from api_keys where owner_id = $1`,
		} {
			err := b.write(rls.Authenticated, b.claimsA, "POST", "/api_keys", func(tx pgx.Tx) error {
				_, err := b.exec(tx, sql, b.userA)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})
}

func TestStorage(t *testing.T) {
	t.Parallel()

	insertObject := func(b *bundle, role, claims, bucket, name string) error {
		// What Storage does for an upload: the insert runs as the caller.
		return b.write(role, claims, "POST", "/object/"+bucket+"/"+name, func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into storage.objects (bucket_id, name, owner_id, metadata)
				values ($1, $2, nullif(auth.uid()::text, ''), '{"size": 1}')`, bucket, name)
			return err
		})
	}

	t.Run("UploadUnderOwnFolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, insertObject(b, rls.Authenticated, b.claimsA, "sources", b.userA+"/in.mp4"))
		require.NoError(t, insertObject(b, rls.Authenticated, b.claimsA, "sources", b.userA+"/deep/er/in.mp4"))
	})

	t.Run("RefusedElsewhere", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, c := range []struct{ bucket, name string }{
			{"sources", b.userB + "/in.mp4"},
			{"sources", "in.mp4"},
			{"sources", b.userA},
			{"sources", "x/" + b.userA + "/in.mp4"},
			{"results", b.userA + "/out.mp4"},
		} {
			err := insertObject(b, rls.Authenticated, b.claimsA, c.bucket, c.name)
			requireSQLState(t, err, insufficientPrivilege)
		}
	})

	t.Run("AnonNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tx.Exec(b.ctx, `insert into storage.objects (bucket_id, name) values ('sources', $1)`, b.userA+"/in.mp4")
		require.NoError(t, err)
		err = insertObject(b, rls.Anon, rls.AnonClaims(), "sources", b.userA+"/x.mp4")
		requireSQLState(t, err, insufficientPrivilege)
		var names []string
		err = b.get(rls.Anon, rls.AnonClaims(), "/object/list/sources", func(tx pgx.Tx) error {
			var err error
			names, err = b.strings(tx, `select name from storage.objects`)
			return err
		})
		require.NoError(t, err)
		require.Empty(t, names)
	})

	t.Run("OwnerListsOnlyOwnSources", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tx.Exec(b.ctx, `insert into storage.objects (bucket_id, name) values
			('sources', $1), ('sources', $2), ('results', $3)`,
			b.userA+"/a.mp4", b.userB+"/b.mp4", b.userA+"/out.mp4")
		require.NoError(t, err)
		list := func(claims string) []string {
			var names []string
			err := b.get(rls.Authenticated, claims, "/object/list/sources", func(tx pgx.Tx) error {
				var err error
				names, err = b.strings(tx, `select bucket_id || '/' || name from storage.objects`)
				return err
			})
			require.NoError(t, err)
			return names
		}
		require.Equal(t, []string{"sources/" + b.userA + "/a.mp4"}, list(b.claimsA))
		require.Equal(t, []string{"sources/" + b.userB + "/b.mp4"}, list(b.claimsB))
	})

	t.Run("NoUpdateOrDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tx.Exec(b.ctx, `insert into storage.objects (bucket_id, name) values ('sources', $1)`, b.userA+"/a.mp4")
		require.NoError(t, err)
		for _, sql := range []string{
			`update storage.objects set name = $1 || '/b.mp4' where bucket_id = 'sources'`,
			`delete from storage.objects where name like $1 || '/%'`,
		} {
			var n int64
			err := b.write(rls.Authenticated, b.claimsA, "POST", "/object", func(tx pgx.Tx) error {
				var err error
				n, err = b.exec(tx, sql, b.userA)
				return err
			})
			require.NoError(t, err)
			require.Zero(t, n, sql)
		}
	})
}

func TestCraftedInput(t *testing.T) {
	t.Parallel()

	t.Run("SQLInStringsIsStoredVerbatim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		url := `https://x/'); drop table jobs;--`
		key := `'; delete from jobs where ''='`
		params := `{"k'); drop table jobs;--": "v\"'; select pg_sleep(10);--"}`
		var gotURL, gotKey, gotParams string
		err := b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, `insert into jobs (source_type, source_url, idempotency_key, params)
				values ('youtube', $1, $2, $3) returning source_url, idempotency_key, params::text`,
				url, key, params).Scan(&gotURL, &gotKey, &gotParams)
		})
		require.NoError(t, err)
		require.Equal(t, url, gotURL)
		require.Equal(t, key, gotKey)
		require.JSONEq(t, params, gotParams)

		// The same through PostgREST's JSON body.
		body, err := json.Marshal(map[string]any{"source_type": "youtube", "source_url": url, "idempotency_key": key})
		require.NoError(t, err)
		var out string
		err = b.write(rls.Authenticated, b.claimsB, "POST", "/jobs", func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, postgrestInsertJobs, string(body)).Scan(&out)
		})
		require.NoError(t, err)
		require.Contains(t, out, `"source_url":"https://x/'); drop table jobs;--"`)

		var jobs *string
		require.NoError(t, b.tx.QueryRow(b.ctx, `select to_regclass('public.jobs')::text`).Scan(&jobs))
		require.NotNil(t, jobs)
	})

	t.Run("SourceURLMustBeHTTP", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, url := range []string{
			`javascript:alert(1)`,
			`file:///etc/passwd`,
			`'; drop table jobs;--`,
			`https://x/` + strings.Repeat("a", 2048),
		} {
			err := b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', $1)`, url)
				return err
			})
			pgErr := requireSQLState(t, err, checkViolation)
			require.Equal(t, "jobs_source_url_check", pgErr.ConstraintName)
		}
	})

	t.Run("HugeParamsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		random := make([]byte, 40<<10)
		_, err := rand.Read(random)
		require.NoError(t, err)
		for name, params := range map[string]map[string]any{
			"incompressible": {"pad": hex.EncodeToString(random)},  // 80 KiB of hex
			"compressible":   {"pad": strings.Repeat("x", 70<<10)}, // compresses to ~1 KiB
			"many keys":      manyKeys(5000),                       // ~80 KiB
			"nested":         {"a": []any{map[string]any{"b": strings.Repeat("y", 66<<10)}}},
		} {
			body, err := json.Marshal(params)
			require.NoError(t, err)
			require.Greater(t, len(body), 64<<10, name)
			err = b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url, params)
					values ('youtube', 'https://x.test/v', $1)`, string(body))
				return err
			})
			pgErr := requireSQLState(t, err, checkViolation)
			require.Equal(t, "jobs_params_check", pgErr.ConstraintName, name)
		}

		// Just under the limit is accepted.
		body, err := json.Marshal(map[string]any{"pad": strings.Repeat("x", 60<<10)})
		require.NoError(t, err)
		err = b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url, params)
				values ('youtube', 'https://x.test/v', $1)`, string(body))
			return err
		})
		require.NoError(t, err)
	})

	t.Run("ParamsMustBeAnObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, params := range []string{`[]`, `"x"`, `1`, `null`} {
			err := b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url, params)
					values ('youtube', 'https://x.test/v', $1::jsonb)`, params)
				return err
			})
			requireSQLState(t, err, checkViolation)
		}
	})

	t.Run("MalformedSubFailsCleanly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// auth.uid() casts the sub to uuid, as Supabase's does, so even an
		// empty sub is an error rather than "no user".
		for _, sub := range []string{"not-a-uuid", b.userA + "' or '1'='1", ""} {
			claims := rls.UserClaims(sub)
			err := b.get(rls.Authenticated, claims, "/jobs", func(tx pgx.Tx) error {
				_, err := b.strings(tx, `select id::text from jobs`)
				return err
			})
			requireSQLState(t, err, invalidTextRep)
			err = b.write(rls.Authenticated, claims, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', 'https://x.test/v')`)
				return err
			})
			requireSQLState(t, err, invalidTextRep)
		}
	})

	t.Run("ClaimsNotJSONFailCleanly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, claims := range []string{`not json`, `{"sub":`, `'); drop table jobs;--`} {
			err := b.get(rls.Authenticated, claims, "/jobs", func(tx pgx.Tx) error {
				_, err := b.strings(tx, `select id::text from jobs`)
				return err
			})
			requireSQLState(t, err, invalidTextRep)
		}
	})

	t.Run("NoSubSeesNothingAndCannotInsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, claims := range []string{"", `{"role":"authenticated"}`, `{"sub":null}`} {
			var ids []string
			err := b.get(rls.Authenticated, claims, "/jobs", func(tx pgx.Tx) error {
				var err error
				ids, err = b.strings(tx, `select id::text from jobs`)
				return err
			})
			require.NoError(t, err)
			require.Empty(t, ids)
			err = b.write(rls.Authenticated, claims, "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', 'https://x.test/v')`)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})

	t.Run("UnknownUserCannotInsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Authenticated, rls.UserClaims(uuid.NewString()), "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', 'https://x.test/v')`)
			return err
		})
		requireSQLState(t, err, foreignKeyViolation)
	})
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[uuid.NewString()[:12]+string(rune('a'+i%26))] = i
	}
	return m
}

func TestHelperRefusesUnknownRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := rls.AsUser(b.ctx, b.tx, "postgres", "", func(pgx.Tx) error { return nil })
	require.ErrorContains(t, err, "unknown role")
	// The role never outlives the request.
	err = rls.AsUser(b.ctx, b.tx, rls.Anon, rls.AnonClaims(), func(tx pgx.Tx) error {
		var role string
		if err := tx.QueryRow(b.ctx, `select current_user`).Scan(&role); err != nil {
			return err
		}
		require.Equal(t, rls.Anon, role)
		return nil
	})
	require.NoError(t, err)
	var role string
	require.NoError(t, b.tx.QueryRow(b.ctx, `select current_user`).Scan(&role))
	require.NotEqual(t, rls.Anon, role)
}

func TestInternalsAreUnreachable(t *testing.T) {
	t.Parallel()

	t.Run("AuthUsers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.get(rls.Authenticated, b.claimsA, "/", func(tx pgx.Tx) error {
			_, err := b.strings(tx, `select email from auth.users`)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})

	t.Run("InternalSchema", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Authenticated, b.claimsA, "POST", "/rpc/jobs_write_events", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `select clipper_internal.jobs_write_events()`)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})

	// PostgREST exposes public: a security definer function there would run
	// with its owner's rights for anyone, and a view without
	// security_invoker would read its tables past their policies.
	t.Run("NoDefinerRightsInPublic", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		bad, err := b.strings(b.tx, `
			select n.nspname || '.' || p.proname from pg_proc p
			join pg_namespace n on n.oid = p.pronamespace
			where p.prosecdef
			  and n.nspname not in ('pg_catalog', 'information_schema')
			  and (n.nspname = 'public' or not coalesce(p.proconfig @> array['search_path=""'], false))
			union all
			select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
			where n.nspname = 'public' and c.relkind in ('v', 'm')
			  and not coalesce(c.reloptions && array['security_invoker=true', 'security_invoker=on',
			                                         'security_invoker=1', 'security_invoker=yes'], false)`)
		require.NoError(t, err)
		require.Empty(t, bad)
	})
}

// apiPrivileges lists every privilege role holds on the relations of the
// schema PostgREST exposes: table-wide as "table:PRIV", per column (where
// not table-wide) as "table.column:PRIV", sequences alike.
const apiPrivileges = `
with rels as (
  select c.oid, c.relname::text as relname, c.relkind from pg_class c
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S'))
select r.relname || ':' || p from rels r,
  unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
where r.relkind <> 'S' and has_table_privilege($1, r.oid, p)
union all
select r.relname || ':' || p from rels r, unnest(array['USAGE', 'SELECT', 'UPDATE']) p
where r.relkind = 'S' and has_sequence_privilege($1, r.oid, p)
union all
select r.relname || '.' || a.attname || ':' || p from rels r
  join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped,
  unnest(array['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p
where r.relkind <> 'S' and has_column_privilege($1, r.oid, a.attnum, p)
  and not has_table_privilege($1, r.oid, p)
order by 1`

// The whole surface the API roles have in public: anon nothing,
// authenticated exactly what the frontend needs. A migration that widens
// it must change this list.
func TestAPIRolePrivileges(t *testing.T) {
	t.Parallel()

	t.Run("AnonHasNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.strings(b.tx, apiPrivileges, rls.Anon)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("AuthenticatedHasOnlyTheFrontendSurface", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.strings(b.tx, apiPrivileges, rls.Authenticated)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{
			"jobs:SELECT",
			"jobs.source_type:INSERT",
			"jobs.source_url:INSERT",
			"jobs.source_object:INSERT",
			"jobs.params:INSERT",
			"jobs.idempotency_key:INSERT",
			"jobs.status:UPDATE",
			"job_events:SELECT",
			"api_keys.id:SELECT",
			"api_keys.lookup_id:SELECT",
			"api_keys.owner_id:SELECT",
			"api_keys.name:SELECT",
			"api_keys.scopes:SELECT",
			"api_keys.rate_limit_per_minute:SELECT",
			"api_keys.created_at:SELECT",
			"api_keys.last_used_at:SELECT",
			"api_keys.expires_at:SELECT",
			"api_keys.revoked_at:SELECT",
			"api_keys.rotated_from:SELECT",
		}, got)
	})

	// Sequence changes survive a rollback, so the probe only draws a
	// value (USAGE); the listing above covers setval (UPDATE).
	t.Run("SequencesAreOutOfReach", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, role := range []string{rls.Anon, rls.Authenticated} {
			err := b.write(role, rls.UserClaims(b.userA), "POST", "/", func(tx pgx.Tx) error {
				_, err := b.exec(tx, `select nextval('public.job_events_id_seq')`)
				return err
			})
			requireSQLState(t, err, insufficientPrivilege)
		}
	})
}
