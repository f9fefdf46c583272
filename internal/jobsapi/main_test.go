package jobsapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/jobsapi"
	"github.com/clipper/clipper/internal/notify"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/storage"
	"github.com/clipper/clipper/internal/watches"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const videoURL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"

// testBundle is one API server on its own database, with a real LISTEN
// connection.
type testBundle struct {
	url      string
	dsn      string
	pool     *pgxpool.Pool
	keys     *apikeys.Repo
	hub      *jobsapi.Hub
	listener *notify.Listener
	storage  *storage.Local
	shutdown context.CancelFunc
	// listenLost receives a channel each time the LISTEN connection is
	// lost, with options.holdReconnect; closing it lets the listener
	// reconnect.
	listenLost chan chan struct{}
}

type options struct {
	stream jobsapi.StreamOptions
	// serverTimeout sets the server's read and write timeouts (0: none).
	serverTimeout time.Duration
	// noListen leaves the LISTEN connection down: streams are woken only
	// by their periodic re-read.
	noListen bool
	// holdReconnect makes a lost LISTEN connection stay down until the
	// test releases it: each loss sends a release channel on listenLost.
	holdReconnect bool
	// deps, if set, changes the API's dependencies before Register.
	deps func(d *jobsapi.Deps)
}

func setup(t *testing.T, opts ...func(*options)) *testBundle {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.stream.Reread == 0 {
		// Long, so that tests prove NOTIFY wakes streams.
		o.stream.Reread = time.Hour
	}
	pool, dsn := pgtest.NewPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("JOBSAPI_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	listener := notify.New(dsn, log, notify.ChannelJobEvents)
	listenLost := make(chan chan struct{})
	if o.holdReconnect {
		// The listener calls this on its own goroutine before it
		// reconnects, so blocking here keeps LISTEN down.
		listener.OnConnectionChange = func(up bool) {
			if up {
				return
			}
			release := make(chan struct{})
			select {
			case listenLost <- release:
			case <-ctx.Done():
				return
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}
	watched := watches.New(pool, watches.Options{Logger: log})
	go watched.Run(ctx)
	hub := jobsapi.NewHubWith(listener, log, jobsapi.HubOptions{Watches: watched})
	go hub.Run(ctx)
	if !o.noListen {
		go func() { _ = listener.Run(ctx) }()
		require.Eventually(t, listener.Connected, 30*time.Second, 10*time.Millisecond)
	}

	keys, err := apikeys.NewRepo(pool, apikeys.Options{Params: apikeys.Params{
		MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32,
	}})
	require.NoError(t, err)
	authn, err := auth.New(auth.Options{Keys: keys, Limiter: auth.NewLimiter(pool), Logger: log})
	require.NoError(t, err)

	e := httpapi.New(httpapi.Options{Logger: log})
	srv := httptest.NewUnstartedServer(e)
	srv.Config.ReadTimeout = o.serverTimeout
	srv.Config.WriteTimeout = o.serverTimeout
	srv.Config.IdleTimeout = time.Minute // idle keep-alive connections would otherwise use ReadTimeout
	baseURL := "http://" + srv.Listener.Addr().String()
	local, err := storage.NewLocal(t.TempDir(), baseURL, "test-storage-secret", storage.LocalOptions{})
	require.NoError(t, err)
	local.RegisterRoutes(e)

	shutdownCtx, shutdown := context.WithCancel(context.Background())
	t.Cleanup(shutdown)
	deps := jobsapi.Deps{
		DB:           pool,
		Auth:         authn,
		Signer:       local,
		Hub:          hub,
		Logger:       log,
		JobRetention: 24 * time.Hour,
		URLPolicy:    storage.TTLPolicy{Default: time.Minute, Max: time.Hour},
		Shutdown:     shutdownCtx,
		Stream:       o.stream,
	}
	if o.deps != nil {
		o.deps(&deps)
	}
	require.NoError(t, jobsapi.Register(e, deps))
	srv.Start()
	t.Cleanup(srv.Close)
	return &testBundle{url: srv.URL, dsn: dsn, pool: pool, keys: keys, hub: hub, listener: listener, storage: local,
		shutdown: shutdown, listenLost: listenLost}
}

func (b *testBundle) newUser(t *testing.T) uuid.UUID {
	t.Helper()
	id := uuid.New()
	_, err := b.pool.Exec(context.Background(), "insert into auth.users (id, email) values ($1, $2)", id, id.String()+"@example.test")
	require.NoError(t, err)
	return id
}

// newKey creates an API key (owner nil: a service key) and returns its token.
func (b *testBundle) newKey(t *testing.T, owner *uuid.UUID, scopes ...apikeys.Scope) (apikeys.Key, string) {
	t.Helper()
	key, token, err := b.keys.Create(context.Background(), apikeys.CreateParams{OwnerID: owner, Name: "test", Scopes: scopes})
	require.NoError(t, err)
	return key, token
}

// client is a user's key with read and write scopes.
func (b *testBundle) client(t *testing.T, owner *uuid.UUID) (apikeys.Key, string) {
	t.Helper()
	return b.newKey(t, owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite)
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request; body is JSON-encoded unless it is a string.
func (b *testBundle) do(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		buf, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// send is do for other goroutines than the test's: it fails nothing and
// returns the status (0 when the request failed). An optional first extra
// argument that is not a string receives the success envelope's data;
// the strings are header name, value pairs.
func (b *testBundle) send(method, path, token string, body any, extra ...any) int {
	buf, err := json.Marshal(body)
	if err != nil {
		return 0
	}
	req, err := http.NewRequest(method, b.url+path, bytes.NewReader(buf))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	var into any
	if len(extra) > 0 {
		if _, isString := extra[0].(string); !isString {
			into, extra = extra[0], extra[1:]
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i].(string), extra[i+1].(string))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if into != nil {
		_ = json.NewDecoder(resp.Body).Decode(&struct {
			Data any `json:"data"`
		}{into})
	}
	return resp.StatusCode
}

// ok checks the status and decodes the success envelope's data into v.
func (r response) ok(t *testing.T, status int, v any) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	var env struct {
		OK   bool            `json:"ok"`
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &env))
	require.True(t, env.OK)
	if v != nil {
		require.NoError(t, json.Unmarshal(env.Data, v))
	}
}

// fails checks the status and the error envelope's code.
func (r response) fails(t *testing.T, status int, code apperr.Code) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	var env apperr.Envelope
	require.NoError(t, json.Unmarshal(r.Body, &env), "body: %s", r.Body)
	require.False(t, env.OK)
	require.Equal(t, code, env.Code, "message: %s", env.Message)
	require.NotEmpty(t, env.Message)
}

// job is the JSON of a job as clients see it.
type job struct {
	ID           uuid.UUID       `json:"id"`
	OwnerID      *uuid.UUID      `json:"owner_id"`
	APIKeyID     *uuid.UUID      `json:"api_key_id"`
	SourceType   string          `json:"source_type"`
	SourceURL    *string         `json:"source_url"`
	SourceObject *string         `json:"source_object"`
	Params       json.RawMessage `json:"params"`
	Status       string          `json:"status"`
	Attempts     int             `json:"attempts"`
	MaxAttempts  int             `json:"max_attempts"`
	WorkerID     *string         `json:"worker_id"`
	Progress     int             `json:"progress"`
	ResultKeys   []string        `json:"result_keys"`
	ErrorCode    *string         `json:"error_code"`
	ErrorMessage *string         `json:"error_message"`
	RunAt        time.Time       `json:"run_at"`
	CreatedAt    time.Time       `json:"created_at"`
	ExpiresAt    *time.Time      `json:"expires_at"`
}

func (b *testBundle) createJob(t *testing.T, token string, body map[string]any) job {
	t.Helper()
	if body == nil {
		body = map[string]any{"source_url": videoURL}
	}
	var j job
	b.do(t, "POST", "/v1/jobs", token, body).ok(t, http.StatusCreated, &j)
	return j
}

type event struct {
	ID    int64           `json:"id"`
	JobID uuid.UUID       `json:"job_id"`
	TS    time.Time       `json:"ts"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// dbEventIDs returns a job's event ids in stream order, from the database.
func (b *testBundle) dbEventIDs(t *testing.T, jobID uuid.UUID) []int64 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "select id from job_events where job_id = $1 order by ts, id", jobID)
	require.NoError(t, err)
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

// sseMessage is one Server-Sent Event; Comment is set for comment lines.
type sseMessage struct {
	ID      string
	Event   string
	Data    string
	Retry   string
	Comment string
}

// sseClient reads a stream in the background.
type sseClient struct {
	resp *http.Response
	msgs chan sseMessage
	done chan struct{} // closed when the stream ends
}

// openStream connects to a job's event stream; headers are name, value pairs.
func (b *testBundle) openStream(t *testing.T, jobID uuid.UUID, token, query string, headers ...string) *sseClient {
	t.Helper()
	req, err := http.NewRequest("GET", b.url+"/v1/jobs/"+jobID.String()+"/events"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseClient{resp: resp, msgs: make(chan sseMessage, 10000), done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseClient) read() {
	defer close(s.done)
	sc := bufio.NewScanner(s.resp.Body)
	var m sseMessage
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if m != (sseMessage{}) {
				s.msgs <- m
			}
			m = sseMessage{}
			continue
		}
		if c, ok := strings.CutPrefix(line, ":"); ok {
			s.msgs <- sseMessage{Comment: strings.TrimSpace(c)}
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			m.ID = value
		case "event":
			m.Event = value
		case "data":
			m.Data = value
		case "retry":
			m.Retry = value
		}
	}
}

func (s *sseClient) close() { s.resp.Body.Close() }

// next returns the next event, skipping comments and retry fields.
func (s *sseClient) next(t *testing.T) sseMessage {
	t.Helper()
	for {
		select {
		case m := <-s.msgs:
			if m.Comment != "" || m.Event == "" {
				continue
			}
			return m
		case <-s.done:
			select {
			case m := <-s.msgs:
				if m.Comment != "" || m.Event == "" {
					continue
				}
				return m
			default:
			}
			t.Fatalf("stream ended while an event was expected")
		case <-time.After(30 * time.Second):
			t.Fatalf("no event within 10s")
		}
	}
}

// nextEvent returns the next job event, decoded.
func (s *sseClient) nextEvent(t *testing.T) event {
	t.Helper()
	m := s.next(t)
	require.NotEqual(t, "end", m.Event, "stream ended early: %s", m.Data)
	var ev event
	require.NoError(t, json.Unmarshal([]byte(m.Data), &ev))
	require.Equal(t, m.Event, ev.Type)
	require.Equal(t, m.ID, jsonID(ev.ID))
	return ev
}

// requireEnd checks that the next event is end with status and that the
// stream then closes.
func (s *sseClient) requireEnd(t *testing.T, status string) {
	t.Helper()
	m := s.next(t)
	require.Equal(t, "end", m.Event, "data: %s", m.Data)
	require.Empty(t, m.ID)
	var d struct {
		Status *string `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(m.Data), &d))
	require.NotNil(t, d.Status)
	require.Equal(t, status, *d.Status)
	s.requireClosed(t)
}

// requireClosed checks that the server closes the stream with no further
// event.
func (s *sseClient) requireClosed(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("stream still open")
	}
	for {
		select {
		case m := <-s.msgs:
			require.NotEmpty(t, m.Comment, "unexpected message after the end: %+v", m)
		default:
			return
		}
	}
}

func jsonID(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

func ptr[T any](v T) *T { return &v }
