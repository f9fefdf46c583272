package webhooks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/daemon/daemontest"
	"github.com/clipper/clipper/webhooks"
)

// testBundle is one running daemon with webhooks on, its database, and
// every response body it sent (to check that none holds a secret).
type testBundle struct {
	ctx    context.Context
	d      *daemontest.Instance
	pool   *pgxpool.Pool
	secret string
	signer *webhooks.Verifier // nil: bearer only

	mu     sync.Mutex
	bodies []string
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// setup starts a daemon with a bearer secret and, if signed, a signing
// secret.
func setup(t *testing.T, signed bool) *testBundle {
	t.Helper()
	cfg := daemontest.Config(t)
	cfg.WebhookSecret = "bearer-" + randomSecret(t)
	b := &testBundle{ctx: context.Background(), secret: cfg.WebhookSecret}
	if signed {
		key := make([]byte, 32)
		_, err := rand.Read(key)
		require.NoError(t, err)
		cfg.WebhookSigningSecret = "v1,whsec_" + base64.StdEncoding.EncodeToString(key)
		b.signer, err = webhooks.NewVerifier(cfg.WebhookSigningSecret)
		require.NoError(t, err)
	}
	b.d = daemontest.Start(t, cfg)
	pool, err := pgxpool.New(b.ctx, cfg.DatabaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.pool = pool
	return b
}

// post sends body to the webhook route with the given bearer key and
// headers (name, value pairs).
func (b *testBundle) post(t *testing.T, key string, body []byte, headers ...string) daemontest.Response {
	t.Helper()
	r := b.d.Do(t, http.MethodPost, webhooks.Route, key, body, headers...)
	b.mu.Lock()
	b.bodies = append(b.bodies, string(r.Body))
	b.mu.Unlock()
	return r
}

// signedHeaders returns Standard Webhooks headers for one delivery.
func (b *testBundle) signedHeaders(id string, at time.Time, body []byte) []string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return []string{webhooks.HeaderID, id, webhooks.HeaderTimestamp, ts,
		webhooks.HeaderSignature, b.signer.Sign(id, ts, body)}
}

// send delivers body as the configured sender would: the bearer secret,
// and a signature under a new webhook-id when signing is on.
func (b *testBundle) send(t *testing.T, body []byte) (daemontest.Response, []string) {
	t.Helper()
	var h []string
	if b.signer != nil {
		h = b.signedHeaders("msg_"+uuid.NewString(), time.Now(), body)
	}
	return b.post(t, b.secret, body, h...), h
}

type result struct {
	OK   bool `json:"ok"`
	Data struct {
		Delivery  string     `json:"delivery"`
		Duplicate bool       `json:"duplicate"`
		Action    string     `json:"action"`
		JobID     *uuid.UUID `json:"job_id"`
		Reason    string     `json:"reason"`
	} `json:"data"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func decode(t *testing.T, r daemontest.Response) result {
	t.Helper()
	var res result
	r.JSON(t, &res)
	return res
}

func requireAccepted(t *testing.T, r daemontest.Response, action string, duplicate bool) result {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	res := decode(t, r)
	require.True(t, res.OK)
	require.Equal(t, action, res.Data.Action, "%s", r.Body)
	require.Equal(t, duplicate, res.Data.Duplicate, "%s", r.Body)
	return res
}

func requireRefused(t *testing.T, r daemontest.Response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.Status, "%s", r.Body)
	res := decode(t, r)
	require.False(t, res.OK)
	require.Equal(t, code, res.Code)
	require.NotEmpty(t, res.Message)
}

// newUser adds an auth user.
func (b *testBundle) newUser(t *testing.T) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := b.pool.Exec(b.ctx, `insert into auth.users (id) values ($1)`, id)
	require.NoError(t, err)
	return id
}

// upload inserts a storage object and returns it with the body that
// supabase_functions.http_request would send for the insert.
func (b *testBundle) upload(t *testing.T, bucket, name string, owner *uuid.UUID, userMetadata string) (uuid.UUID, []byte) {
	t.Helper()
	var ownerText *string
	if owner != nil {
		s := owner.String()
		ownerText = &s
	}
	var id uuid.UUID
	var body []byte
	err := b.pool.QueryRow(b.ctx, `
		insert into storage.objects as o (bucket_id, name, owner, owner_id, metadata, user_metadata)
		values ($1, $2, $3, $4, '{"size": 1048576, "mimetype": "video/mp4"}', $5::jsonb)
		returning o.id, jsonb_build_object('old_record', null, 'record', to_jsonb(o),
		  'type', 'INSERT', 'table', 'objects', 'schema', 'storage')::text`,
		bucket, name, owner, ownerText, userMetadata).Scan(&id, &body)
	require.NoError(t, err)
	return id, body
}

// uniqueName is an object name no other test uses.
func uniqueName(prefix string) string { return prefix + "/" + uuid.NewString() + ".mp4" }

type jobRow struct {
	ID             uuid.UUID
	OwnerID        uuid.NullUUID
	SourceType     string
	SourceObject   string
	Params         string
	Status         string
	IdempotencyKey *string
}

func (b *testBundle) jobsFor(t *testing.T, name string) []jobRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `select id, owner_id, source_type::text, source_object, params::text,
		status::text, idempotency_key from jobs where source_object = $1`, name)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobRow])
	require.NoError(t, err)
	return out
}

type deliveryRow struct {
	DeliveryKey string
	Type        string
	SchemaName  string
	TableName   string
	RecordID    *string
	Payload     string
	Action      string
	JobID       uuid.NullUUID
}

func (b *testBundle) deliveriesFor(t *testing.T, recordID string) []deliveryRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `select delivery_key, type, schema_name, table_name, record_id,
		payload::text, action, job_id from clipper_internal.webhook_deliveries where record_id = $1 order by id`, recordID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[deliveryRow])
	require.NoError(t, err)
	return out
}

// requireNothingRecorded checks that an upload left no trace.
func (b *testBundle) requireNothingRecorded(t *testing.T, objectID uuid.UUID, name string) {
	t.Helper()
	require.Empty(t, b.deliveriesFor(t, objectID.String()))
	require.Empty(t, b.jobsFor(t, name))
	require.False(t, b.uploadJob(t, objectID).Valid)
}

// uploadJob is the job clipper_internal.upload_jobs holds for an object.
func (b *testBundle) uploadJob(t *testing.T, objectID uuid.UUID) uuid.NullUUID {
	t.Helper()
	var id uuid.NullUUID
	err := b.pool.QueryRow(b.ctx, `select job_id from clipper_internal.upload_jobs where object_id = $1`, objectID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.NullUUID{}
	}
	require.NoError(t, err)
	return id
}

func TestSignedDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	start := time.Now()

	t.Run("Deliveries", func(t *testing.T) {
		t.Run("UploadCreatesOneJob", func(t *testing.T) {
			t.Parallel()
			owner := b.newUser(t)
			name := uniqueName(owner.String())
			objID, body := b.upload(t, "sources", name, &owner, `{"clip": {"start": 12.5, "end": 30}}`)
			r, h := b.send(t, body)
			res := requireAccepted(t, r, "job_created", false)
			require.NotNil(t, res.Data.JobID)
			require.Equal(t, "id:"+h[1], res.Data.Delivery)

			got := b.jobsFor(t, name)
			require.Len(t, got, 1)
			j := got[0]
			require.Equal(t, *res.Data.JobID, j.ID)
			require.Equal(t, uuid.NullUUID{UUID: owner, Valid: true}, j.OwnerID)
			require.Equal(t, "upload", j.SourceType)
			require.Equal(t, "queued", j.Status)
			require.JSONEq(t, `{"start": 12.5, "end": 30}`, j.Params)
			require.Equal(t, "storage:"+objID.String(), *j.IdempotencyKey)

			var events []string
			rows, err := b.pool.Query(b.ctx, `select type || ' ' || data::text from job_events where job_id = $1 order by ts, id`, j.ID)
			require.NoError(t, err)
			events, err = pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{`status {"to": "queued"}`}, events)

			ds := b.deliveriesFor(t, objID.String())
			require.Len(t, ds, 1)
			d := ds[0]
			require.Equal(t, "id:"+h[1], d.DeliveryKey)
			require.Equal(t, []string{"INSERT", "storage", "objects", "job_created"}, []string{d.Type, d.SchemaName, d.TableName, d.Action})
			require.Equal(t, uuid.NullUUID{UUID: j.ID, Valid: true}, d.JobID)
			require.JSONEq(t, string(body), d.Payload)
			require.Equal(t, uuid.NullUUID{UUID: j.ID, Valid: true}, b.uploadJob(t, objID))
		})

		t.Run("ReplaySameIDIsDuplicate", func(t *testing.T) {
			t.Parallel()
			name := uniqueName("replay")
			objID, body := b.upload(t, "sources", name, nil, `{}`)
			r, h := b.send(t, body)
			first := requireAccepted(t, r, "job_created", false)

			// The same delivery again, even signed anew.
			again := b.post(t, b.secret, body, h...)
			res := requireAccepted(t, again, "job_created", true)
			require.Equal(t, first.Data.JobID, res.Data.JobID)
			resigned := b.post(t, b.secret, body, b.signedHeaders(h[1], time.Now().Add(-time.Minute), body)...)
			requireAccepted(t, resigned, "job_created", true)

			require.Len(t, b.jobsFor(t, name), 1)
			require.Len(t, b.deliveriesFor(t, objID.String()), 1)
		})

		t.Run("NewDeliveryOfSameUploadFindsTheJob", func(t *testing.T) {
			t.Parallel()
			owner := b.newUser(t)
			name := uniqueName(owner.String())
			objID, body := b.upload(t, "sources", name, &owner, `{}`)
			r, _ := b.send(t, body)
			first := requireAccepted(t, r, "job_created", false)
			r, _ = b.send(t, body)
			second := requireAccepted(t, r, "job_exists", false)
			require.Equal(t, first.Data.JobID, second.Data.JobID)
			require.Len(t, b.jobsFor(t, name), 1)
			require.Len(t, b.deliveriesFor(t, objID.String()), 2)
		})

		t.Run("ConcurrentDeliveries", func(t *testing.T) {
			t.Parallel()
			name := uniqueName("concurrent")
			objID, body := b.upload(t, "sources", name, nil, `{}`)
			sameID := b.signedHeaders("msg_"+uuid.NewString(), time.Now(), body)
			const n = 6
			var wg sync.WaitGroup
			results := make([]result, 2*n)
			for i := range 2 * n {
				wg.Go(func() {
					h := sameID
					if i >= n { // distinct ids: distinct deliveries of one upload
						h = b.signedHeaders(fmt.Sprintf("msg_%d_%s", i, uuid.NewString()), time.Now(), body)
					}
					r := b.post(t, b.secret, body, h...)
					if r.Status == http.StatusOK {
						results[i] = decode(t, r)
					}
				})
			}
			wg.Wait()
			created, duplicates := 0, 0
			for _, res := range results {
				require.True(t, res.OK)
				if res.Data.Action == "job_created" && !res.Data.Duplicate {
					created++
				}
				if res.Data.Duplicate {
					duplicates++
				}
			}
			require.Equal(t, 1, created)
			require.Equal(t, n-1, duplicates)
			got := b.jobsFor(t, name)
			require.Len(t, got, 1)
			require.Len(t, b.deliveriesFor(t, objID.String()), n+1)
			require.Equal(t, uuid.NullUUID{UUID: got[0].ID, Valid: true}, b.uploadJob(t, objID))
		})

		t.Run("WrongSecret", func(t *testing.T) {
			t.Parallel()
			name := uniqueName("wrong-secret")
			objID, body := b.upload(t, "sources", name, nil, `{}`)
			h := b.signedHeaders("msg_"+uuid.NewString(), time.Now(), body)
			for _, key := range []string{"", "not-the-secret", b.secret + "x", b.secret[:len(b.secret)-1]} {
				requireRefused(t, b.post(t, key, body, h...), http.StatusUnauthorized, "unauthorized")
			}
			r := b.post(t, "", body, append(h, "Authorization", "Basic "+b.secret)...)
			requireRefused(t, r, http.StatusUnauthorized, "unauthorized")
			require.Equal(t, `Bearer realm="clipper-webhooks"`, r.Header.Get("WWW-Authenticate"))
			b.requireNothingRecorded(t, objID, name)
		})

		t.Run("BadSignature", func(t *testing.T) {
			t.Parallel()
			name := uniqueName("bad-signature")
			objID, body := b.upload(t, "sources", name, nil, `{}`)
			id := "msg_" + uuid.NewString()
			good := b.signedHeaders(id, time.Now(), body)
			other, err := webhooks.NewVerifier("whsec_" + base64.StdEncoding.EncodeToString([]byte(randomSecret(t))))
			require.NoError(t, err)
			tampered := bytes.Replace(body, []byte(`"sources"`), []byte(`"sources" `), 1)
			for name, h := range map[string][]string{
				"None":       nil,
				"OtherKey":   {webhooks.HeaderID, id, webhooks.HeaderTimestamp, good[3], webhooks.HeaderSignature, other.Sign(id, good[3], body)},
				"OtherID":    {webhooks.HeaderID, id + "x", webhooks.HeaderTimestamp, good[3], webhooks.HeaderSignature, good[5]},
				"NoID":       {webhooks.HeaderTimestamp, good[3], webhooks.HeaderSignature, good[5]},
				"Garbage":    {webhooks.HeaderID, id, webhooks.HeaderTimestamp, good[3], webhooks.HeaderSignature, "v1,not-a-signature"},
				"SigForBody": b.signedHeaders(id, time.Now(), tampered),
			} {
				r := b.post(t, b.secret, body, h...)
				require.Equal(t, http.StatusUnauthorized, r.Status, "%s: %s", name, r.Body)
			}
			// A signature over the body, sent with another body.
			requireRefused(t, b.post(t, b.secret, tampered, good...), http.StatusUnauthorized, "unauthorized")
			b.requireNothingRecorded(t, objID, name)
		})

		t.Run("StaleOrFutureTimestamp", func(t *testing.T) {
			t.Parallel()
			name := uniqueName("stale")
			objID, body := b.upload(t, "sources", name, nil, `{}`)
			for _, at := range []time.Time{time.Now().Add(-6 * time.Minute), time.Now().Add(6 * time.Minute)} {
				r := b.post(t, b.secret, body, b.signedHeaders("msg_"+uuid.NewString(), at, body)...)
				requireRefused(t, r, http.StatusUnauthorized, "unauthorized")
				require.Contains(t, decode(t, r).Message, "webhook-timestamp")
			}
			b.requireNothingRecorded(t, objID, name)
		})

		t.Run("Malformed", func(t *testing.T) {
			t.Parallel()
			var keys []string
			for name, body := range map[string]string{
				"NotJSON":       `{"type": "INSERT", `,
				"Array":         `[]`,
				"WrongType":     `{"type":"UPSERT","table":"objects","schema":"storage","record":{}}`,
				"NoRecord":      `{"type":"INSERT","table":"objects","schema":"storage","record":null}`,
				"ObjectNoUUID":  `{"type":"INSERT","table":"objects","schema":"storage","record":{"id":"1","bucket_id":"sources","name":"a.mp4"}}`,
				"NumberTooBig":  `{"type":"INSERT","table":"t","schema":"s","record":{"n":1e999999}}`,
				"Empty":         ``,
				"NotUTF8":       "{\"type\":\"INSERT\",\"table\":\"t\",\"schema\":\"s\",\"record\":{\"a\":\"\xc3\"}}",
				"ControlInJSON": "{\"type\":\"INSERT\",\"table\":\"t\",\"schema\":\"s\",\"record\":{\"a\":\"\x01\"}}",
			} {
				h := b.signedHeaders("msg_"+uuid.NewString(), time.Now(), []byte(body))
				keys = append(keys, "id:"+h[1])
				r := b.post(t, b.secret, []byte(body), h...)
				require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", name, r.Body)
				require.Equal(t, "invalid_input", decode(t, r).Code, name)
			}
			// A webhook-id that cannot be stored.
			body := []byte(`{"type":"INSERT","table":"t","schema":"s","record":{}}`)
			r := b.post(t, b.secret, body, b.signedHeaders(strings.Repeat("i", 256), time.Now(), body)...)
			requireRefused(t, r, http.StatusBadRequest, "invalid_input")
			var n int
			require.NoError(t, b.pool.QueryRow(b.ctx, `select count(*) from clipper_internal.webhook_deliveries where delivery_key = any($1)`, keys).Scan(&n))
			require.Zero(t, n)
		})

		t.Run("Oversized", func(t *testing.T) {
			t.Parallel()
			pad := strings.Repeat("x", webhooks.MaxBodyBytes)
			body := []byte(`{"type":"INSERT","table":"big","schema":"public","record":{"id":"oversized","pad":"` + pad + `"}}`)
			h := b.signedHeaders("msg_"+uuid.NewString(), time.Now(), body)
			requireRefused(t, b.post(t, b.secret, body, h...), http.StatusRequestEntityTooLarge, "payload_too_large")

			// Without a Content-Length, the limit holds while reading.
			req, err := http.NewRequest(http.MethodPost, b.d.URL+webhooks.Route, io.MultiReader(bytes.NewReader(body)))
			require.NoError(t, err)
			require.Equal(t, int64(0), req.ContentLength)
			req.Header.Set("Authorization", "Bearer "+b.secret)
			for i := 0; i+1 < len(h); i += 2 {
				req.Header.Set(h[i], h[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			requireRefused(t, daemontest.Response{Status: resp.StatusCode, Header: resp.Header, Body: got},
				http.StatusRequestEntityTooLarge, "payload_too_large")
			require.Empty(t, b.deliveriesFor(t, "oversized"))
		})

		t.Run("JustUnderTheLimit", func(t *testing.T) {
			t.Parallel()
			head := `{"type":"INSERT","table":"big","schema":"public","record":{"id":"limit","pad":"`
			pad := strings.Repeat("x", webhooks.MaxBodyBytes-len(head)-3)
			body := []byte(head + pad + `"}}`)
			require.Len(t, body, webhooks.MaxBodyBytes)
			r, _ := b.send(t, body)
			requireAccepted(t, r, "ignored", false)
		})

		t.Run("UnknownTableIsRecordedAndIgnored", func(t *testing.T) {
			t.Parallel()
			id := uuid.NewString()
			body := []byte(`{"type":"UPDATE","table":"profiles","schema":"public","record":{"id":"` + id + `","name":"b"},"old_record":{"id":"` + id + `","name":"a"}}`)
			r, h := b.send(t, body)
			requireAccepted(t, r, "ignored", false)
			ds := b.deliveriesFor(t, id)
			require.Len(t, ds, 1)
			require.Equal(t, "id:"+h[1], ds[0].DeliveryKey)
			require.Equal(t, "ignored", ds[0].Action)
			require.Equal(t, []string{"UPDATE", "public", "profiles"}, []string{ds[0].Type, ds[0].SchemaName, ds[0].TableName})
		})

		t.Run("OtherBucketsAndPlaceholdersAreIgnored", func(t *testing.T) {
			t.Parallel()
			for _, o := range []struct{ bucket, name string }{
				{"results", uniqueName("results")},
				{"sources", "folder-" + uuid.NewString() + "/.emptyFolderPlaceholder"},
			} {
				if o.bucket == "results" {
					_, err := b.pool.Exec(b.ctx, `insert into storage.buckets (id, name) values ('results', 'results') on conflict do nothing`)
					require.NoError(t, err)
				}
				objID, body := b.upload(t, o.bucket, o.name, nil, `{}`)
				r, _ := b.send(t, body)
				requireAccepted(t, r, "ignored", false)
				require.Empty(t, b.jobsFor(t, o.name))
				require.Len(t, b.deliveriesFor(t, objID.String()), 1)
			}
		})

		// An upload with no owner into a user's or an API key's folder came
		// through a URL the daemon signed (POST /v1/uploads); its client
		// makes the job, so the webhook must not make a second one.
		t.Run("DaemonSignedUploadsIntoOwnedFoldersAreIgnored", func(t *testing.T) {
			t.Parallel()
			for _, name := range []string{
				uniqueName("keys/" + uuid.NewString()),
				uniqueName(b.newUser(t).String()),
			} {
				objID, body := b.upload(t, "sources", name, nil, `{}`)
				r, _ := b.send(t, body)
				requireAccepted(t, r, "ignored", false)
				require.Empty(t, b.jobsFor(t, name))
				require.False(t, b.uploadJob(t, objID).Valid)
			}
		})

		t.Run("UnusableUploadIsRejected", func(t *testing.T) {
			t.Parallel()
			for _, o := range []struct{ name, meta, reason string }{
				{uniqueName("clip-array"), `{"clip": [1, 2]}`, "params must be a JSON object"},
				{"dots/../" + uuid.NewString() + ".mp4", `{}`, "source_object"},
			} {
				objID, body := b.upload(t, "sources", o.name, nil, o.meta)
				r, _ := b.send(t, body)
				res := requireAccepted(t, r, "rejected", false)
				require.Contains(t, res.Data.Reason, o.reason)
				require.Nil(t, res.Data.JobID)
				require.Empty(t, b.jobsFor(t, o.name))
				ds := b.deliveriesFor(t, objID.String())
				require.Len(t, ds, 1)
				require.Equal(t, "rejected", ds[0].Action)
				require.False(t, b.uploadJob(t, objID).Valid)
			}
		})

		t.Run("OwnerThatIsNoUserGivesAnOwnerlessJob", func(t *testing.T) {
			t.Parallel()
			stranger := uuid.New()
			name := uniqueName(stranger.String())
			_, body := b.upload(t, "sources", name, &stranger, `{}`)
			r, _ := b.send(t, body)
			requireAccepted(t, r, "job_created", false)
			got := b.jobsFor(t, name)
			require.Len(t, got, 1)
			require.False(t, got[0].OwnerID.Valid)
			require.Nil(t, got[0].IdempotencyKey)
		})

		t.Run("JobChangeIsOnlyRecorded", func(t *testing.T) {
			t.Parallel()
			var jobID uuid.UUID
			var body []byte
			require.NoError(t, b.pool.QueryRow(b.ctx, `
				with j as (insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/x') returning *),
				u as (select j.*, 'canceled'::job_status as new_status from j)
				select u.id, jsonb_build_object('type', 'UPDATE', 'table', 'jobs', 'schema', 'public',
				  'record', to_jsonb(u) - 'new_status' || jsonb_build_object('status', u.new_status),
				  'old_record', to_jsonb(u) - 'new_status')::text from u`).Scan(&jobID, &body))
			countEvents := func() int {
				var n int
				require.NoError(t, b.pool.QueryRow(b.ctx, `select count(*) from job_events where job_id = $1`, jobID).Scan(&n))
				return n
			}
			events := countEvents()
			r, _ := b.send(t, body)
			requireAccepted(t, r, "recorded", false)
			require.Equal(t, events, countEvents())
			var status string
			require.NoError(t, b.pool.QueryRow(b.ctx, `select status::text from jobs where id = $1`, jobID).Scan(&status))
			require.Equal(t, "queued", status, "the receiver does not apply job changes")
			ds := b.deliveriesFor(t, jobID.String())
			require.Len(t, ds, 1)
			require.Equal(t, "recorded", ds[0].Action)
		})

		t.Run("WrongMethod", func(t *testing.T) {
			t.Parallel()
			r := b.d.Do(t, http.MethodGet, webhooks.Route, b.secret, nil)
			require.Equal(t, http.StatusBadRequest, r.Status)
		})
	})

	// After every delivery above: no response and no log line holds a
	// secret, whatever the outcome.
	t.Run("NoSecretInResponsesOrLogs", func(t *testing.T) {
		signing := strings.TrimPrefix(b.d.Config.WebhookSigningSecret, "v1,")
		key := strings.TrimPrefix(signing, "whsec_")
		logs := b.d.Logs.String()
		require.Contains(t, logs, "webhook delivery refused", "the refusals were logged")
		require.Contains(t, logs, `"action":"job_created"`)
		b.mu.Lock()
		defer b.mu.Unlock()
		require.NotEmpty(t, b.bodies)
		for _, s := range append(b.bodies, logs) {
			for _, secret := range []string{b.secret, signing, key, key[:16]} {
				require.NotContains(t, s, secret)
			}
		}
		t.Logf("%d responses and %d bytes of logs checked (%s)", len(b.bodies), len(logs), time.Since(start).Round(time.Millisecond))

		// How long deliveries took, from the access log.
		var ms []float64
		for line := range strings.Lines(logs) {
			var l struct {
				Msg, Route string
				Status     int
				DurationMS float64 `json:"duration_ms"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" && l.Route == webhooks.Route && l.Status == http.StatusOK {
				ms = append(ms, l.DurationMS)
			}
		}
		require.NotEmpty(t, ms)
		slices.Sort(ms)
		// Reported, not asserted: on a loaded machine any one delivery can
		// be slow, and the bench is where speed is measured.
		t.Logf("accepted deliveries: %d, median %.1f ms, max %.1f ms (pg_net gives up after %s)",
			len(ms), ms[len(ms)/2], ms[len(ms)-1], webhooks.DefaultTimeout)
	})

	t.Run("Metrics", func(t *testing.T) {
		r := b.d.Do(t, http.MethodGet, "/metrics", "", nil)
		for _, result := range []string{"accepted", "duplicate", "unauthorized", "invalid"} {
			require.Contains(t, string(r.Body), `clipper_webhook_deliveries_total{result="`+result+`"}`)
		}
	})
}

func TestBearerOnlyDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t, false)

	t.Run("ReplayWithoutIDIsDuplicate", func(t *testing.T) {
		t.Parallel()
		name := uniqueName("no-id")
		objID, body := b.upload(t, "sources", name, nil, `{"clip": {"end": 5}}`)
		r, h := b.send(t, body)
		require.Empty(t, h)
		first := requireAccepted(t, r, "job_created", false)
		require.True(t, strings.HasPrefix(first.Data.Delivery, "sha256:"), first.Data.Delivery)

		// The same change, encoded with other key order and spacing.
		var v map[string]any
		require.NoError(t, json.Unmarshal(body, &v))
		reencoded, err := json.MarshalIndent(v, "", "    ")
		require.NoError(t, err)
		require.NotEqual(t, string(body), string(reencoded))
		for _, again := range [][]byte{body, reencoded} {
			res := requireAccepted(t, b.post(t, b.secret, again), "job_created", true)
			require.Equal(t, first.Data.Delivery, res.Data.Delivery)
			require.Equal(t, first.Data.JobID, res.Data.JobID)
		}
		require.Len(t, b.jobsFor(t, name), 1)
		require.Len(t, b.deliveriesFor(t, objID.String()), 1)
	})

	t.Run("IDWithoutSignatureStillNamesTheDelivery", func(t *testing.T) {
		t.Parallel()
		name := uniqueName("with-id")
		_, body := b.upload(t, "sources", name, nil, `{}`)
		id := "relay-" + uuid.NewString()
		first := requireAccepted(t, b.post(t, b.secret, body, webhooks.HeaderID, id), "job_created", false)
		require.Equal(t, "id:"+id, first.Data.Delivery)
		requireAccepted(t, b.post(t, b.secret, body, webhooks.HeaderID, id), "job_created", true)
	})

	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		name := uniqueName("bearer-wrong")
		objID, body := b.upload(t, "sources", name, nil, `{}`)
		requireRefused(t, b.post(t, "nope", body), http.StatusUnauthorized, "unauthorized")
		b.requireNothingRecorded(t, objID, name)
	})
}

func TestDisabledWithoutSecret(t *testing.T) {
	t.Parallel()
	cfg := daemontest.Config(t)
	cfg.WebhookSecret = ""
	d := daemontest.Start(t, cfg)
	body := []byte(`{"type":"INSERT","table":"t","schema":"s","record":{"id":"x"}}`)
	for _, key := range []string{"", "anything"} {
		r := d.Do(t, http.MethodPost, webhooks.Route, key, body)
		require.Equal(t, http.StatusServiceUnavailable, r.Status)
		var env struct{ Code, Message string }
		r.JSON(t, &env)
		require.Equal(t, "unavailable", env.Code)
		require.Contains(t, env.Message, "CLIPPER_WEBHOOK_SECRET is not set")
	}
	pool, err := pgxpool.New(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `select count(*) from clipper_internal.webhook_deliveries`).Scan(&n))
	require.Zero(t, n)
	require.Contains(t, d.Logs.String(), "database webhooks disabled")
}

func TestBadSigningSecretStopsTheHandler(t *testing.T) {
	t.Parallel()
	const secret = "whsec_c2hvcnQ="
	_, err := webhooks.NewHandler(webhooks.Options{Secret: "bearer", SigningSecret: secret})
	require.Error(t, err)
	require.Contains(t, err.Error(), "CLIPPER_WEBHOOK_SIGNING_SECRET")
	require.NotContains(t, err.Error(), "c2hvcnQ")
}
