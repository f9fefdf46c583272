package jobsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/jobs"
)

const (
	// eventEnd is the stream's last event: the job is final (or gone) and
	// every event up to its final status has been sent.
	eventEnd = "end"
	// eventError ends a stream whose key stopped being valid; its data is
	// the error envelope. Not "error": EventSource fires that name for
	// its own connection errors.
	eventError = "unauthorized"
	// streamPage is how many events a stream reads per query.
	streamPage = 500
	// streamRetry is the reconnect delay a stream suggests to EventSource.
	streamRetry = 2 * time.Second
)

type eventsResponse struct {
	Events []events.Event `json:"events"`
	// NextAfter is the after= of the next page: the last event's id, or
	// the given after when the page is empty.
	NextAfter int64 `json:"next_after"`
}

// listEvents returns a page of the job's events, or with Accept:
// text/event-stream streams them (see stream).
func (a *api) listEvents(c echo.Context) error {
	job, err := a.visibleJob(c)
	if err != nil {
		return err
	}
	stream := wantsStream(c.Request())
	after, err := parseAfter(c, stream)
	if err != nil {
		return err
	}
	if stream {
		return a.stream(c, job, after)
	}
	limit := 0
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > events.MaxListLimit {
			return apperr.New(apperr.InvalidInput, "limit must be a whole number from 1 to %d", events.MaxListLimit)
		}
		limit = n
	}
	evs, err := a.events.ListByJob(c.Request().Context(), job.ID, after, limit)
	if err != nil {
		return err
	}
	resp := eventsResponse{Events: evs, NextAfter: after}
	if len(evs) > 0 {
		resp.NextAfter = evs[len(evs)-1].ID
	}
	return httpapi.OK(c, http.StatusOK, resp)
}

func wantsStream(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get(echo.HeaderAccept), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// parseAfter reads the position to continue after: for a stream the
// Last-Event-ID header that EventSource sends on reconnect wins over
// ?after=.
func parseAfter(c echo.Context, stream bool) (int64, error) {
	s, what := c.QueryParam("after"), "after"
	if h := c.Request().Header.Get("Last-Event-ID"); stream && h != "" {
		s, what = h, "Last-Event-ID"
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, apperr.New(apperr.InvalidInput, "%s must be an event id", what)
	}
	return n, nil
}

// stream sends the job's events after the given one as Server-Sent
// Events, then every new one as it commits, until the job is final and
// its events are sent (then "event: end"), the client leaves, or the
// daemon shuts down (no end: the client should reconnect).
//
// The stream never trusts a notification's content: a wake-up, a Resync
// or the periodic re-read all do the same thing, read the job's events
// after the last one sent. Events of a job are committed in stream order
// (see internal/events), so this read has no gap and sends nothing twice.
// The stream registers with the hub, then has the database notify its
// job's events (Watches), before its first read, so an event committed
// after that read always wakes it.
//
// A stream outlives the request deadline, so each of its reads has a
// deadline of its own. It ends, after an error event, when its key stops
// being valid (revoked, expired, deleted: see Hub).
func (a *api) stream(c echo.Context, job jobs.Job, after int64) error {
	key, err := a.key(c)
	if err != nil {
		return err
	}
	w, stop, err := a.Hub.watch(job.ID, key)
	if err != nil {
		return err
	}
	defer stop()
	// From here on the database notifies the job's events; anything
	// committed before is in the first read. Like the stream's reads, the
	// statement is not canceled by a client leaving (see drain), only by
	// its deadline.
	actx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), a.Hub.opts.ReadTimeout)
	unannounce, err := a.Hub.announce(actx, job.ID)
	cancel()
	if err != nil {
		return err
	}
	defer unannounce()

	// The first read comes before the response starts, so that a bad
	// position is still an ordinary error response. It runs within the
	// request deadline; from here on, each read gets its own.
	first, err := a.events.ListByJob(c.Request().Context(), job.ID, after, streamPage)
	if err != nil {
		return err
	}
	ctx := httpapi.WithoutDeadline(c.Request().Context())

	s := &sseStream{
		api: a, c: c, rc: http.NewResponseController(c.Response()),
		jobID: job.ID, last: after, log: a.Logger.With("request_id", httpapi.RequestID(c), "job_id", job.ID),
	}
	if job.Status.Final() {
		s.final = job.Status
	}
	// The server's WriteTimeout suits ordinary requests; a stream lives
	// longer, so each write sets its own deadline (see write). net/http
	// already clears the read deadline of a request without a body once
	// the handler runs.
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Response().WriteHeader(http.StatusOK)
	if s.write(fmt.Sprintf("retry: %d\n\n", streamRetry.Milliseconds())) != nil {
		return nil
	}

	if err := s.send(first); err != nil {
		return nil
	}
	caughtUp := len(first) < streamPage
	heartbeat := time.NewTicker(a.Stream.Heartbeat)
	defer heartbeat.Stop()
	reread := time.NewTicker(a.Stream.Reread)
	defer reread.Stop()
	for {
		if !caughtUp {
			var stop bool
			if caughtUp, stop = s.drain(ctx); stop {
				return nil
			}
		}
		// End only once every event up to the final status is sent; after
		// a failed read the next wake-up or re-read tries again.
		if caughtUp && s.final != "" {
			_ = s.end(s.final)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.Shutdown.Done():
			return nil
		case <-w.gone:
			_ = s.fail(w.why)
			return nil
		case <-w.wake:
			caughtUp = false
		case <-reread.C:
			caughtUp = false
		case <-heartbeat.C:
			if s.write(": ping\n\n") != nil {
				return nil
			}
		}
	}
}

type sseStream struct {
	api   *api
	c     echo.Context
	rc    *http.ResponseController
	log   *slog.Logger
	jobID uuid.UUID
	last  int64       // id of the last event sent (0: none)
	final jobs.Status // set once the job is known to be final
}

// drain sends every event after the last one sent. caughtUp reports that
// it read to the end; stop that the stream is over (the client cannot be
// written to, or the job is gone and end was sent).
func (s *sseStream) drain(ctx context.Context) (caughtUp, stop bool) {
	for {
		// A client that leaves does not cancel a read under way: it is
		// short (bounded by ReadTimeout), and a statement canceled
		// mid-flight can leave pgx a pooled connection whose next use by
		// another request fails.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.api.Hub.opts.ReadTimeout)
		evs, err := s.api.events.ListByJob(rctx, s.jobID, s.last, streamPage)
		cancel()
		if ctx.Err() != nil {
			return false, true
		}
		switch {
		case apperr.Is(err, apperr.NotFound):
			// Cleanup deleted the job: nothing more will come.
			_ = s.end("")
			return false, true
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("event stream could not read events; retrying", "error", err)
			}
			return false, false
		}
		if err := s.send(evs); err != nil {
			return false, true
		}
		if len(evs) < streamPage {
			return true, false
		}
	}
}

func (s *sseStream) send(evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var b strings.Builder
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		// Types match ^[a-z][a-z0-9_.]*$ and JSON has no raw newlines, so
		// neither can break the framing.
		fmt.Fprintf(&b, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data)
		if st := finalStatusOf(ev); st != "" {
			s.final = st
		}
	}
	if err := s.write(b.String()); err != nil {
		return err
	}
	s.last = evs[len(evs)-1].ID
	return nil
}

// endData is the end event's data: the job's final status, or deleted
// when cleanup removed the job while it was streamed.
type endData struct {
	JobID   uuid.UUID    `json:"job_id"`
	Status  *jobs.Status `json:"status"`
	Deleted bool         `json:"deleted,omitempty"`
}

// end sends the end event; status is empty when the job no longer exists.
func (s *sseStream) end(status jobs.Status) error {
	d := endData{JobID: s.jobID, Deleted: status == ""}
	if status != "" {
		d.Status = &status
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.write(fmt.Sprintf("event: %s\ndata: %s\n\n", eventEnd, data))
}

// fail sends an error event carrying err's envelope, the stream's last:
// EventSource reconnects, and the new request is refused with the same
// code.
func (s *sseStream) fail(err error) error {
	data, jerr := json.Marshal(apperr.EnvelopeOf(err))
	if jerr != nil {
		return jerr
	}
	return s.write(fmt.Sprintf("event: %s\ndata: %s\n\n", eventError, data))
}

// write sends text and flushes it. Each write gets its own deadline, which
// both lifts the server's WriteTimeout for the stream and drops a client
// that stopped reading.
func (s *sseStream) write(text string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.api.Stream.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.c.Response().Write([]byte(text)); err != nil {
		return err
	}
	return s.rc.Flush()
}

// finalStatusOf returns the status a status event moved the job to, if
// final.
func finalStatusOf(ev events.Event) jobs.Status {
	if ev.Type != events.TypeStatus {
		return ""
	}
	var d struct {
		To jobs.Status `json:"to"`
	}
	if json.Unmarshal(ev.Data, &d) != nil || !d.To.Final() {
		return ""
	}
	return d.To
}
