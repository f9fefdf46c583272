package jobsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobsapi"
)

func TestListEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.newUser(t)
	_, client := b.client(t, &owner)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	for i := range 5 {
		b.post(t, worker, j.ID, "events", map[string]any{"type": "log", "data": map[string]any{"n": i}}).ok(t, http.StatusCreated, nil)
	}
	all := b.dbEventIDs(t, j.ID)
	require.Len(t, all, 6)

	path := "/v1/jobs/" + j.ID.String() + "/events"
	var p eventsPage
	b.do(t, "GET", path, client, nil).ok(t, http.StatusOK, &p)
	require.Equal(t, all, ids(p.Events))
	require.Equal(t, all[5], p.NextAfter)
	require.Equal(t, j.ID, p.Events[0].JobID)

	// Paging with after and limit.
	var got []int64
	after := int64(0)
	for {
		b.do(t, "GET", fmt.Sprintf("%s?after=%d&limit=2", path, after), client, nil).ok(t, http.StatusOK, &p)
		if len(p.Events) == 0 {
			require.Equal(t, after, p.NextAfter)
			break
		}
		got = append(got, ids(p.Events)...)
		after = p.NextAfter
	}
	require.Equal(t, all, got)
	require.Contains(t, string(b.do(t, "GET", fmt.Sprintf("%s?after=%d", path, all[5]), client, nil).Body), `"events":[]`)

	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?limit=1001"} {
		b.do(t, "GET", path+q, client, nil).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	}
	// An event of another job is not a position in this one.
	other := b.createJob(t, client, nil)
	b.do(t, "GET", fmt.Sprintf("%s?after=%d", path, b.dbEventIDs(t, other.ID)[0]), client, nil).
		fails(t, http.StatusBadRequest, apperr.InvalidInput)

	otherOwner := b.newUser(t)
	_, stranger := b.client(t, &otherOwner)
	b.do(t, "GET", path, stranger, nil).fails(t, http.StatusNotFound, apperr.NotFound)
	b.do(t, "GET", "/v1/jobs/"+uuid.NewString()+"/events", client, nil).fails(t, http.StatusNotFound, apperr.NotFound)
	b.do(t, "GET", "/v1/jobs/x/events", client, nil).fails(t, http.StatusBadRequest, apperr.InvalidInput)
	b.do(t, "GET", path, worker, nil).fails(t, http.StatusForbidden, apperr.Forbidden)

	// A stream is refused the same way, before it starts.
	for _, c := range []struct {
		token, path string
		status      int
	}{
		{stranger, path, http.StatusNotFound},
		{client, path + "?after=x", http.StatusBadRequest},
		{client, fmt.Sprintf("%s?after=%d", path, b.dbEventIDs(t, other.ID)[0]), http.StatusBadRequest},
	} {
		r := b.do(t, "GET", c.path, c.token, nil, "Accept", "text/event-stream")
		require.Equal(t, c.status, r.Status, "%s", r.Body)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	}
	r := b.do(t, "GET", path, client, nil, "Accept", "text/event-stream", "Last-Event-ID", "nope")
	r.fails(t, http.StatusBadRequest, apperr.InvalidInput)
}

func ids(evs []event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// TestStream follows a job through its life on one stream, then resumes
// a second stream from the middle.
func TestStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.newUser(t)
	_, client := b.client(t, &owner)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	require.Len(t, b.claim(t, worker, "w1", 1), 1)

	s := b.openStream(t, j.ID, client, "")
	// The backlog: created, claimed.
	ev := s.nextEvent(t)
	require.Equal(t, "status", ev.Type)
	require.JSONEq(t, `{"to":"queued"}`, string(ev.Data))
	ev = s.nextEvent(t)
	require.JSONEq(t, `{"from":"queued","to":"processing","attempt":1,"worker_id":"w1"}`, string(ev.Data))

	// Live, as the worker reports.
	for _, pct := range []int{10, 50, 90} {
		b.post(t, worker, j.ID, "progress", map[string]any{"worker_id": "w1", "progress": pct}).ok(t, http.StatusOK, nil)
		ev = s.nextEvent(t)
		require.Equal(t, "progress", ev.Type)
		require.JSONEq(t, fmt.Sprintf(`{"progress":%d}`, pct), string(ev.Data))
	}
	b.post(t, worker, j.ID, "events", map[string]any{"type": "stage.encode", "data": map[string]any{"codec": "h264"}}).
		ok(t, http.StatusCreated, nil)
	ev = s.nextEvent(t)
	require.Equal(t, "stage.encode", ev.Type)
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1", "result_keys": []string{j.ID.String() + "/out.mp4"}}).
		ok(t, http.StatusOK, nil)
	ev = s.nextEvent(t)
	require.Equal(t, "status", ev.Type)
	require.Contains(t, string(ev.Data), `"to":"done"`)
	s.requireEnd(t, "done")
	require.Eventually(t, func() bool { return b.hub.Streams() == 0 }, 30*time.Second, 10*time.Millisecond)

	// Reconnecting after the third event gets exactly the rest, then end.
	all := b.dbEventIDs(t, j.ID)
	require.Len(t, all, 7)
	r := b.openStream(t, j.ID, client, "?after=1", "Last-Event-ID", strconv.FormatInt(all[2], 10))
	for _, want := range all[3:] {
		require.Equal(t, want, r.nextEvent(t).ID)
	}
	r.requireEnd(t, "done")

	// ?after= alone works too; after the last event only end remains.
	r = b.openStream(t, j.ID, client, "?after="+strconv.FormatInt(all[6], 10))
	r.requireEnd(t, "done")
}

// TestStreamResume streams a busy job through a client that drops and
// reconnects with Last-Event-ID, several times: together the streams see
// every event exactly once, in order.
func TestStreamResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	require.Len(t, b.claim(t, worker, "w1", 1), 1)

	// Two writers: the worker's progress (status trigger) and its own
	// events, concurrently.
	const n = 60
	var wg sync.WaitGroup
	statuses := make(chan int, 2*n)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			statuses <- b.send("POST", "/v1/jobs/"+j.ID.String()+"/progress", worker, map[string]any{"worker_id": "w1", "progress": i})
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			statuses <- b.send("POST", "/v1/jobs/"+j.ID.String()+"/events", worker, map[string]any{"type": "log", "data": map[string]any{"i": i}})
		}
	}()

	var seen []int64
	last := ""
	for round := 0; ; round++ {
		var headers []string
		if last != "" {
			headers = []string{"Last-Event-ID", last}
		}
		s := b.openStream(t, j.ID, client, "", headers...)
		ended := false
		for k := 0; k < 15; k++ {
			m := s.next(t)
			if m.Event == "end" {
				ended = true
				break
			}
			id, err := strconv.ParseInt(m.ID, 10, 64)
			require.NoError(t, err)
			seen = append(seen, id)
			last = m.ID
		}
		s.close()
		if ended {
			break
		}
		if round == 3 {
			// Let the writers finish, then finish the job.
			wg.Wait()
			b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1"}).ok(t, http.StatusOK, nil)
		}
		require.Less(t, round, 100)
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		require.Contains(t, []int{http.StatusOK, http.StatusCreated}, st)
	}
	require.Equal(t, b.dbEventIDs(t, j.ID), seen)
	require.Len(t, seen, 2+2*n+1)
}

// TestStreamListenReconnect kills the daemon's LISTEN connection while a
// stream is open and keeps it down while events commit: those events are
// in no notification, and the stream still gets every one of them, woken
// by the Resync that follows the reconnect.
func TestStreamListenReconnect(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.holdReconnect = true })
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	require.Len(t, b.claim(t, worker, "w1", 1), 1)

	s := b.openStream(t, j.ID, client, "")
	s.nextEvent(t)
	s.nextEvent(t)

	next := 1
	for range 3 {
		require.Eventually(t, b.listener.Connected, 30*time.Second, time.Millisecond)
		var killed int
		err := b.pool.QueryRow(context.Background(), `select count(*) from (
			select pg_terminate_backend(pid) from pg_stat_activity
			where application_name = 'clipper-listen' and datname = current_database()) k`).Scan(&killed)
		require.NoError(t, err)
		require.GreaterOrEqual(t, killed, 1)
		var release chan struct{}
		select {
		case release = <-b.listenLost:
		case <-time.After(10 * time.Second):
			t.Fatalf("the listener did not notice its connection was terminated")
		}

		for range 5 {
			b.post(t, worker, j.ID, "progress", map[string]any{"worker_id": "w1", "progress": next}).ok(t, http.StatusOK, nil)
			next++
		}
		// These events are in no notification, and the stream's re-read is
		// an hour away: a wake-up queued before the kill may still pick up
		// some of them, but the rest arrive only through the Resync that
		// follows the reconnect. Either way each arrives once, in order.
		close(release)
		for want := next - 5; want < next; want++ {
			ev := s.nextEvent(t)
			require.Equal(t, "progress", ev.Type)
			require.JSONEq(t, fmt.Sprintf(`{"progress":%d}`, want), string(ev.Data))
		}
	}
	b.post(t, worker, j.ID, "complete", map[string]any{"worker_id": "w1"}).ok(t, http.StatusOK, nil)
	require.Equal(t, "status", s.nextEvent(t).Type)
	s.requireEnd(t, "done")
}

// TestStreamReread: without any notification (LISTEN never connects), the
// periodic re-read still delivers every event.
func TestStreamReread(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) {
		o.noListen = true
		o.stream.Reread = 100 * time.Millisecond
	})
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	s := b.openStream(t, j.ID, client, "")
	require.Equal(t, "status", s.nextEvent(t).Type)
	require.Len(t, b.claim(t, worker, "w1", 1), 1)
	require.Equal(t, "status", s.nextEvent(t).Type)
	b.post(t, worker, j.ID, "fail", map[string]any{"worker_id": "w1", "error_code": "x"}).ok(t, http.StatusOK, nil)
	require.Contains(t, string(s.nextEvent(t).Data), `"to":"failed"`)
	s.requireEnd(t, "failed")
}

// TestStreamOutlivesServerTimeouts runs a stream on a server whose read
// and write timeouts are far shorter than the stream.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) {
		o.serverTimeout = 500 * time.Millisecond
		o.stream.Heartbeat = 100 * time.Millisecond
	})
	_, client := b.client(t, nil)
	_, worker := b.newKey(t, nil, apikeys.ScopeWorker)
	j := b.createJob(t, client, nil)
	s := b.openStream(t, j.ID, client, "")
	require.Equal(t, "status", s.nextEvent(t).Type)

	// Heartbeats keep coming past both timeouts: at least five of them,
	// and for at least three times the timeout, however slowly they come.
	past := time.Now().Add(1500 * time.Millisecond)
	pings := 0
	for pings < 5 || time.Now().Before(past) {
		select {
		case m := <-s.msgs:
			require.Equal(t, "ping", m.Comment)
			pings++
		case <-s.done:
			t.Fatalf("stream closed after %d pings", pings)
		case <-time.After(30 * time.Second):
			t.Fatalf("no heartbeat")
		}
	}

	require.Len(t, b.claim(t, worker, "w1", 1), 1)
	require.Equal(t, "status", s.nextEvent(t).Type)
	b.post(t, client, j.ID, "cancel", nil).ok(t, http.StatusOK, nil)
	require.Equal(t, "status", s.nextEvent(t).Type)
	s.requireEnd(t, "canceled")
}

// TestStreamEnds covers the other ways a stream ends: the daemon shuts
// down (no end event: the client should reconnect), the client leaves,
// and the job is deleted.
func TestStreamEnds(t *testing.T) {
	t.Parallel()

	t.Run("Shutdown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, client := b.client(t, nil)
		j := b.createJob(t, client, nil)
		s := b.openStream(t, j.ID, client, "")
		s.nextEvent(t)
		b.shutdown()
		s.requireClosed(t)
	})

	t.Run("ClientLeaves", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, client := b.client(t, nil)
		j := b.createJob(t, client, nil)
		for range 3 {
			s := b.openStream(t, j.ID, client, "")
			s.nextEvent(t)
			s.close()
		}
		require.Eventually(t, func() bool { return b.hub.Streams() == 0 }, 30*time.Second, 10*time.Millisecond)
	})

	t.Run("JobDeleted", func(t *testing.T) {
		t.Parallel()
		// Deleting a job notifies nothing: the periodic re-read finds it gone.
		b := setup(t, func(o *options) { o.stream.Reread = 100 * time.Millisecond })
		_, client := b.client(t, nil)
		j := b.createJob(t, client, nil)
		s := b.openStream(t, j.ID, client, "")
		s.nextEvent(t)
		_, err := b.pool.Exec(context.Background(), "delete from jobs where id = $1", j.ID)
		require.NoError(t, err)
		m := s.next(t)
		require.Equal(t, "end", m.Event)
		require.JSONEq(t, fmt.Sprintf(`{"job_id":%q,"status":null,"deleted":true}`, j.ID), m.Data)
		s.requireClosed(t)
	})

	t.Run("AlreadyFinal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, client := b.client(t, nil)
		j := b.createJob(t, client, nil)
		b.post(t, client, j.ID, "cancel", nil).ok(t, http.StatusOK, nil)
		s := b.openStream(t, j.ID, client, "")
		require.Equal(t, "status", s.nextEvent(t).Type)
		require.Contains(t, string(s.nextEvent(t).Data), `"to":"canceled"`)
		s.requireEnd(t, "canceled")
	})
}

func TestRegisterChecksDeps(t *testing.T) {
	t.Parallel()
	require.Error(t, jobsapi.Register(nil, jobsapi.Deps{}))
}

// TestStreamLargeBacklog streams a finished job whose events span several
// pages: all of them, in order, then end.
func TestStreamLargeBacklog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, client := b.client(t, nil)
	j := b.createJob(t, client, nil)
	batch := make([]events.NewEvent, 1234)
	for i := range batch {
		batch[i] = events.NewEvent{JobID: j.ID, Type: "log", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	_, err := events.New(b.pool).AppendBatch(context.Background(), batch)
	require.NoError(t, err)
	b.post(t, client, j.ID, "cancel", nil).ok(t, http.StatusOK, nil)

	all := b.dbEventIDs(t, j.ID)
	require.Len(t, all, 1236)
	s := b.openStream(t, j.ID, client, "")
	for _, want := range all {
		require.Equal(t, want, s.nextEvent(t).ID)
	}
	s.requireEnd(t, "canceled")
}

// openRefused opens a stream that the daemon must refuse, and returns
// the refusal (a stream that opens instead is closed at once, body unread).
func (b *testBundle) openRefused(t *testing.T, jobID uuid.UUID, token string) response {
	t.Helper()
	req, err := http.NewRequest("GET", b.url+"/v1/jobs/"+jobID.String()+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return response{Status: resp.StatusCode, Header: resp.Header}
	}
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// metric returns the value of an unlabeled metric from /metrics.
func (b *testBundle) metric(t *testing.T, name string) string {
	t.Helper()
	r := b.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not exported", name)
	return ""
}

// TestStreamLimits: streams are capped per key and per daemon with 429
// rate_limited, and counted in clipper_event_streams.
func TestStreamLimits(t *testing.T) {
	t.Parallel()
	b, _ := setupDaemon(t, func(c *config.Config) { c.StreamsPerKey, c.StreamsMax = 2, 3 })
	ownerA, ownerB := b.newUser(t), b.newUser(t)
	_, clientA := b.client(t, &ownerA)
	_, clientB := b.client(t, &ownerB)
	ja, jb := b.createJob(t, clientA, nil), b.createJob(t, clientB, nil)

	a1 := b.openStream(t, ja.ID, clientA, "")
	b.openStream(t, ja.ID, clientA, "")
	b.openRefused(t, ja.ID, clientA).fails(t, http.StatusTooManyRequests, apperr.RateLimited)
	b.openStream(t, jb.ID, clientB, "")
	require.Equal(t, "3", b.metric(t, "clipper_event_streams"))
	b.openRefused(t, jb.ID, clientB).fails(t, http.StatusTooManyRequests, apperr.RateLimited)

	// A closed stream frees its place.
	a1.close()
	require.Eventually(t, func() bool { return b.metric(t, "clipper_event_streams") == "2" }, 10*time.Second, 20*time.Millisecond)
	b.openStream(t, jb.ID, clientB, "")
	require.Equal(t, "3", b.metric(t, "clipper_event_streams"))
}

// requireKeyEnded checks that the stream's next event says its key is no
// longer valid, and that the stream then closes.
func (s *sseClient) requireKeyEnded(t *testing.T, message string) {
	t.Helper()
	m := s.next(t)
	require.Equal(t, "unauthorized", m.Event, "data: %s", m.Data)
	require.JSONEq(t, `{"ok":false,"code":"unauthorized","message":"`+message+`"}`, m.Data)
	s.requireClosed(t)
}

// TestStreamEndsWithItsKey: a stream ends when its key is revoked, and
// when its key expires (here the old key of a rotation, after the grace
// period).
func TestStreamEndsWithItsKey(t *testing.T) {
	t.Parallel()
	b, _ := setupDaemon(t)
	owner := b.newUser(t)

	revoked, token := b.client(t, &owner)
	j := b.createJob(t, token, nil)
	s := b.openStream(t, j.ID, token, "")
	s.nextEvent(t)
	_, err := b.keys.Revoke(context.Background(), revoked.ID)
	require.NoError(t, err)
	s.requireKeyEnded(t, "api key revoked")

	rotated, token := b.client(t, &owner)
	j = b.createJob(t, token, nil)
	s = b.openStream(t, j.ID, token, "")
	s.nextEvent(t)
	_, _, err = b.keys.Rotate(context.Background(), rotated.ID, time.Second)
	require.NoError(t, err)
	s.requireKeyEnded(t, "api key expired")
	require.Eventually(t, func() bool { return b.metric(t, "clipper_event_streams") == "0" }, 10*time.Second, 20*time.Millisecond)
}
