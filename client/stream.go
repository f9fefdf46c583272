package client

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StreamOptions tune Stream.
type StreamOptions struct {
	// After starts the stream after this event id (0: from the first).
	After int64
	// ReconnectFor is how long Stream keeps trying to reconnect before it
	// gives up (default 2 min). A connection that delivers events or stays
	// open for 10 s starts the budget again.
	ReconnectFor time.Duration
}

// Stream follows a job's events live (Server-Sent Events, scope
// jobs:read): every event recorded after opts.After, then each new one as
// it commits, until the job is final and all its events have been yielded
// (or the job is deleted); then the iteration ends.
//
// When the connection drops (a network fault, a daemon restart, the
// daemon shutting down), Stream reconnects with Last-Event-ID set to the
// last event it yielded, after a jittered backoff, so the caller sees
// every event exactly once and in order, across any number of
// reconnects. It yields an error and stops when the server refuses the
// stream (not found, unauthorized, ...), when it cannot reconnect within
// ReconnectFor, or when ctx ends.
func (c *Client) Stream(ctx context.Context, id string, opts StreamOptions) iter.Seq2[Event, error] {
	budget := opts.ReconnectFor
	if budget <= 0 {
		budget = 2 * time.Minute
	}
	return func(yield func(Event, error) bool) {
		if err := checkID(id); err != nil {
			yield(Event{}, err)
			return
		}
		last := opts.After
		failures := 0
		var failingSince time.Time
		minDelay := time.Duration(0)
		for {
			if ctx.Err() != nil {
				yield(Event{}, ctxErr(ctx))
				return
			}
			s, err := c.openStream(ctx, id, last)
			if err == nil {
				opened, before := time.Now(), last
				var done, stop bool
				last, done, stop, minDelay = s.run(last, minDelay, yield)
				s.body.Close()
				if done || stop {
					return
				}
				// A connection that delivered events, or lived a while,
				// starts the reconnect budget again; one that keeps closing
				// at once does not, so a flapping server ends the stream.
				if last > before || time.Since(opened) > 10*time.Second {
					failures, failingSince = 0, time.Time{}
				}
				err = &Error{Code: CodeUnavailable, Message: "event stream ended early"}
			}
			if ctx.Err() != nil {
				yield(Event{}, ctxErr(ctx))
				return
			}
			e, _ := err.(*Error)
			if e != nil && !retryable(idempotent, e.Status, e.Err) && e.Status != 0 {
				yield(Event{}, err)
				return
			}
			failures++
			if failingSince.IsZero() {
				failingSince = time.Now()
			} else if time.Since(failingSince) > budget {
				yield(Event{}, err)
				return
			}
			wait := max(c.retry.backoff(failures), minDelay)
			if e != nil && e.RetryAfter > 0 {
				wait = max(wait, e.RetryAfter)
			}
			if sleep(ctx, wait) != nil {
				yield(Event{}, ctxErr(ctx))
				return
			}
		}
	}
}

type sseConn struct {
	body io.ReadCloser
}

// openStream connects, resuming after last.
func (c *Client) openStream(ctx context.Context, id string, last int64) (*sseConn, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+jobPath(id, "events"), nil)
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Message: "cannot build the request", Err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Cache-Control", "no-cache")
	if last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "the daemon could not be reached", Err: redact(err)}
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(ct, "text/event-stream") {
		return &sseConn{body: resp.Body}, nil
	}
	defer resp.Body.Close()
	var env envelope
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: retryAfter(resp.Header, time.Now())}
	if json.Unmarshal(raw, &env) == nil && env.Code != "" {
		e.Code, e.Message = env.Code, env.Message
	} else {
		e.Code, e.Message = codeForStatus(resp.StatusCode), "unexpected answer to an event stream"
	}
	return nil, e
}

// run reads one connection's events and yields those after last. done
// reports the end event; stop that the caller stopped iterating.
func (s *sseConn) run(last int64, minDelay time.Duration, yield func(Event, error) bool) (newLast int64, done, stop bool, delay time.Duration) {
	r := bufio.NewReaderSize(s.body, 64<<10)
	var typ, data string
	var hasData bool
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return last, false, false, minDelay
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			// Dispatch.
			if hasData {
				switch typ {
				case "end":
					return last, true, false, minDelay
				default:
					var ev Event
					if json.Unmarshal([]byte(data), &ev) == nil && ev.ID > last {
						if !yield(ev, nil) {
							return ev.ID, false, true, minDelay
						}
						last = ev.ID
					}
				}
			}
			typ, data, hasData = "", "", false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if hasData {
				data += "\n"
			}
			data += value
			hasData = true
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				minDelay = time.Duration(ms) * time.Millisecond
			}
		}
	}
}
