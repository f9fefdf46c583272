package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/internal/pgcluster"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/webhooks"
)

// stubHTTPRequest stands in for Supabase's supabase_functions.http_request:
// instead of posting, it keeps its arguments and the body it would send
// (built exactly as Supabase builds it).
const stubHTTPRequest = `
create schema supabase_functions;
create table supabase_functions.calls (id bigserial primary key, args text[] not null, payload jsonb not null);
create function supabase_functions.http_request() returns trigger
  language plpgsql
as $$
begin
  insert into supabase_functions.calls (args, payload)
  values (tg_argv, jsonb_build_object('old_record', old, 'record', new, 'type', tg_op,
                                      'table', tg_table_name, 'schema', tg_table_schema));
  return new;
end
$$;
`

func psqlPath(t *testing.T) string {
	t.Helper()
	if dir, err := pgcluster.FindBinDir(); err == nil {
		if p := filepath.Join(dir, "psql"); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath("psql")
	require.NoError(t, err, "psql is needed to test install.sql")
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runScript runs a webhooks/*.sql script with psql, as the README says,
// with vars as -v name=value and env as the only environment beyond PATH.
func runScript(t *testing.T, dsn, script string, vars map[string]string, env ...string) (string, error) {
	t.Helper()
	args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", script}
	for k, v := range vars {
		args = append(args, "-v", k+"="+v)
	}
	cmd := exec.Command(psqlPath(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PGCONNECT_TIMEOUT=10"}, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

type installedTrigger struct {
	Name  string
	Table string
	Def   string
	Args  []string
}

func webhookTriggers(t *testing.T, db *pgxpool.Pool) []installedTrigger {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		select tgname::text, tgrelid::regclass::text, pg_get_triggerdef(oid), tgargs
		from pg_trigger where tgname like 'clipper%webhook' order by tgname`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (installedTrigger, error) {
		var tr installedTrigger
		var args []byte
		err := r.Scan(&tr.Name, &tr.Table, &tr.Def, &args)
		// tgargs holds each argument followed by a NUL byte.
		tr.Args = strings.Split(strings.TrimSuffix(string(args), "\x00"), "\x00")
		return tr, err
	})
	require.NoError(t, err)
	return out
}

func TestInstallSQL(t *testing.T) {
	t.Parallel()

	t.Run("PlainPostgresIsANoopWithNotice", func(t *testing.T) {
		t.Parallel()
		pool, dsn := pgtest.NewPool(t)
		const secret = "plain-postgres-secret-value"
		out, err := runScript(t, dsn, "install.sql", map[string]string{
			"webhook_url": "https://clipper.example.com/webhooks/supabase", "webhook_secret": secret})
		require.NoError(t, err, out)
		require.Contains(t, out, "NOTICE:  clipper webhooks: supabase_functions.http_request() does not exist")
		require.NotContains(t, out, secret)
		require.Empty(t, webhookTriggers(t, pool))

		// So is uninstall, twice.
		for range 2 {
			out, err = runScript(t, dsn, "uninstall.sql", nil)
			require.NoError(t, err, out)
		}
	})

	t.Run("RefusesMissingParameters", func(t *testing.T) {
		t.Parallel()
		_, dsn := pgtest.NewPool(t)
		for _, c := range []struct {
			vars map[string]string
			want string
		}{
			{map[string]string{"webhook_secret": "s3cret-value"}, "webhook_url must be an http(s) URL"},
			{map[string]string{"webhook_url": "ftp://x", "webhook_secret": "s3cret-value"}, "webhook_url must be an http(s) URL"},
			{map[string]string{"webhook_url": "https://x/webhooks/supabase"}, "webhook_secret must be set"},
			{map[string]string{"webhook_url": "https://x/webhooks/supabase", "webhook_secret": "two words"}, "webhook_secret must be set"},
		} {
			out, err := runScript(t, dsn, "install.sql", c.vars)
			require.Error(t, err, out)
			require.Contains(t, out, c.want)
		}
	})

	t.Run("OnSupabaseCreatesTheTriggers", func(t *testing.T) {
		t.Parallel()
		// A daemon on the database the webhooks are installed in, so
		// that what the triggers would send can be delivered to it.
		cfg := daemontest.Config(t)
		cfg.WebhookSecret = "install-" + randomSecret(t)
		d := daemontest.Start(t, cfg)
		ctx := context.Background()
		pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		_, err = pool.Exec(ctx, stubHTTPRequest)
		require.NoError(t, err)

		url := d.URL + webhooks.Route
		out, err := runScript(t, cfg.DatabaseURL, "install.sql",
			map[string]string{"webhook_url": url, "webhook_secret": cfg.WebhookSecret})
		require.NoError(t, err, out)
		require.Contains(t, out, "installed clipper_sources_webhook, posting to")
		require.NotContains(t, out, cfg.WebhookSecret)

		headers := `{"Content-Type": "application/json", "Authorization": "Bearer ` + cfg.WebhookSecret + `"}`
		requireTriggers := func(headers string, jobsWebhook bool) {
			t.Helper()
			got := webhookTriggers(t, pool)
			if jobsWebhook {
				require.Len(t, got, 2)
				require.Equal(t, "clipper_jobs_webhook", got[0].Name)
				require.Equal(t, "jobs", got[0].Table)
				require.Contains(t, got[0].Def, "AFTER INSERT OR UPDATE OF status ON public.jobs FOR EACH ROW EXECUTE FUNCTION supabase_functions.http_request(")
				got = got[1:]
			}
			require.Len(t, got, 1, "the jobs webhook is opt-in")
			require.Equal(t, "clipper_sources_webhook", got[0].Name)
			require.Equal(t, "storage.objects", got[0].Table)
			require.Contains(t, got[0].Def, "AFTER INSERT ON storage.objects FOR EACH ROW WHEN ((new.bucket_id = 'sources'::text)) EXECUTE FUNCTION supabase_functions.http_request(")
			for _, tr := range webhookTriggers(t, pool) {
				require.Len(t, tr.Args, 5, tr.Name)
				require.Equal(t, []string{url, "POST"}, tr.Args[:2])
				require.JSONEq(t, headers, tr.Args[2])
				require.Equal(t, []string{"{}", "5000"}, tr.Args[3:])
			}
		}
		requireTriggers(headers, false)

		// An upload to sources calls the webhook once; other buckets do not.
		owner := uuid.New()
		_, err = pool.Exec(ctx, `insert into auth.users (id) values ($1)`, owner)
		require.NoError(t, err)
		name := owner.String() + "/installed.mp4"
		_, err = pool.Exec(ctx, `insert into storage.objects (bucket_id, name, owner, owner_id, user_metadata)
			values ('sources', $1, $2, $3, '{"clip": {"start": 1}}'), ('results', 'r.mp4', $2, $3, null)`, name, owner, owner.String())
		require.NoError(t, err)
		calls := takeCalls(t, pool)
		require.Len(t, calls, 1)

		// Deliver it as pg_net would: its URL, method and headers.
		res := deliverCall(t, calls[0])
		require.Equal(t, "job_created", res.Data.Action, "%+v", res)
		jobID := *res.Data.JobID
		require.Empty(t, takeCalls(t, pool), "job changes call nothing by default")

		// Opted in, the jobs webhook records status changes; heartbeats
		// do not fire it.
		out, err = runScript(t, cfg.DatabaseURL, "install.sql",
			map[string]string{"webhook_url": url, "webhook_secret": cfg.WebhookSecret, "jobs_webhook": "on"})
		require.NoError(t, err, out)
		require.Contains(t, out, "installed clipper_sources_webhook and clipper_jobs_webhook")
		requireTriggers(headers, true)
		_, err = pool.Exec(ctx, `update jobs set last_heartbeat_at = now() where id = $1`, jobID)
		require.NoError(t, err)
		require.Empty(t, takeCalls(t, pool))
		_, err = pool.Exec(ctx, `update jobs set status = 'canceled' where id = $1`, jobID)
		require.NoError(t, err)
		calls = takeCalls(t, pool)
		require.Len(t, calls, 1)
		require.Equal(t, "UPDATE", calls[0].Payload["type"])
		require.Equal(t, "jobs", calls[0].Payload["table"])
		require.Equal(t, "recorded", deliverCall(t, calls[0]).Data.Action)

		// Running it again replaces the triggers: a rotated secret, and
		// without jobs_webhook=on the jobs webhook goes.
		rotated := "rotated-" + randomSecret(t)
		out, err = runScript(t, cfg.DatabaseURL, "install.sql", map[string]string{"webhook_url": url},
			"CLIPPER_WEBHOOK_SECRET="+rotated)
		require.NoError(t, err, out)
		requireTriggers(`{"Content-Type": "application/json", "Authorization": "Bearer `+rotated+`"}`, false)

		out, err = runScript(t, cfg.DatabaseURL, "install.sql",
			map[string]string{"webhook_url": url, "webhook_secret": rotated, "jobs_webhook": "maybe"})
		require.Error(t, err, out)
		require.Contains(t, out, "jobs_webhook must be on or off")

		for range 2 {
			out, err = runScript(t, cfg.DatabaseURL, "uninstall.sql", nil)
			require.NoError(t, err, out)
		}
		require.Empty(t, webhookTriggers(t, pool))
	})
}

type stubCall struct {
	Args    []string
	Payload map[string]any
	Body    []byte
}

// takeCalls returns and forgets the webhook calls made so far.
func takeCalls(t *testing.T, pool *pgxpool.Pool) []stubCall {
	t.Helper()
	rows, err := pool.Query(context.Background(), `delete from supabase_functions.calls returning args, payload::text`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stubCall, error) {
		var c stubCall
		var body string
		if err := r.Scan(&c.Args, &body); err != nil {
			return c, err
		}
		c.Body = []byte(body)
		return c, json.Unmarshal(c.Body, &c.Payload)
	})
	require.NoError(t, err)
	return out
}

// deliverCall sends what a trigger call would have sent.
func deliverCall(t *testing.T, c stubCall) result {
	t.Helper()
	require.Len(t, c.Args, 5)
	req, err := http.NewRequest(c.Args[1], c.Args[0], bytes.NewReader(c.Body))
	require.NoError(t, err)
	var headers map[string]string
	require.NoError(t, json.Unmarshal([]byte(c.Args[2]), &headers))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var res result
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%+v", res)
	return res
}
