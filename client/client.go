package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the daemon's URL, e.g. http://127.0.0.1:8080.
	BaseURL string
	// APIKey is the key (clp_...) sent as a bearer token. Its scopes
	// decide which methods work: jobs:read, jobs:write, worker, keys:admin.
	APIKey string
	// HTTPClient sends the requests (default: a client with a 30 s
	// timeout per request; event streams use it without the timeout).
	HTTPClient *http.Client
	// Retry bounds retries (see RetryPolicy).
	Retry RetryPolicy
	// UserAgent is sent with every request (default "clipper-go").
	UserAgent string
}

// Client talks to the clipper daemon with one API key: jobs (create, get,
// list, cancel, events, live streams, results) and, through Worker, the
// worker contract. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	key    string
	hc     *http.Client
	stream *http.Client // hc without its overall timeout
	retry  RetryPolicy
	ua     string
}

// New returns a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Code: CodeInvalidInput, Message: "BaseURL must be an http(s) URL"}
	}
	if cfg.APIKey == "" {
		return nil, &Error{Code: CodeInvalidInput, Message: "APIKey is required"}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	sc := *hc
	sc.Timeout = 0
	ua := cfg.UserAgent
	if ua == "" {
		ua = "clipper-go"
	}
	return &Client{base: u, key: cfg.APIKey, hc: hc, stream: &sc, retry: cfg.Retry.withDefaults(), ua: ua}, nil
}

// envelope is the daemon's answer: {"ok":true,"data":...} or
// {"ok":false,"code","message"}.
type envelope struct {
	OK      bool            `json:"ok"`
	Data    json.RawMessage `json:"data"`
	Code    Code            `json:"code"`
	Message string          `json:"message"`
}

// call is one API request.
type call struct {
	method string
	path   string     // under the base URL, already escaped
	query  url.Values // optional
	body   any        // JSON-encoded when not nil
	header http.Header
	safety safety
}

// result is a successful answer.
type result struct {
	status   int
	header   http.Header
	attempts int
}

// do sends c, retrying as its safety allows, and decodes the answer's data
// into out (when not nil).
func (cl *Client) do(ctx context.Context, c call, out any) (result, error) {
	var body []byte
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			return result{}, &Error{Code: CodeInvalidInput, Message: "cannot encode the request body", Err: err}
		}
		body = b
	}
	target := cl.base.String() + c.path
	if len(c.query) > 0 {
		target += "?" + c.query.Encode()
	}
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return result{}, ctxErr(ctx)
		}
		req, err := http.NewRequestWithContext(ctx, c.method, target, bytes.NewReader(body))
		if err != nil {
			return result{}, &Error{Code: CodeInvalidInput, Message: "cannot build the request", Err: err}
		}
		if body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+cl.key)
		req.Header.Set("User-Agent", cl.ua)
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		resp, err := cl.hc.Do(req)
		var status int
		var e *Error
		if err != nil {
			if ctx.Err() != nil {
				return result{}, ctxErr(ctx)
			}
			e = &Error{Code: CodeUnavailable, Message: "the daemon could not be reached", Err: redact(err)}
		} else {
			status = resp.StatusCode
			var env envelope
			raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				if ctx.Err() != nil {
					return result{}, ctxErr(ctx)
				}
				status, err = 0, rerr
				e = &Error{Code: CodeUnavailable, Message: "the answer was cut off", Err: rerr}
			case json.Unmarshal(raw, &env) != nil:
				e = &Error{Code: codeForStatus(resp.StatusCode), Message: fmt.Sprintf("unexpected answer (%s)", http.StatusText(resp.StatusCode))}
			case env.OK && resp.StatusCode < 300:
				if out != nil {
					if err := json.Unmarshal(env.Data, out); err != nil {
						return result{}, &Error{Code: CodeInternal, Status: status, Message: "cannot decode the answer", Err: err}
					}
				}
				return result{status: status, header: resp.Header, attempts: attempt}, nil
			default:
				code := env.Code
				if code == "" {
					code = codeForStatus(resp.StatusCode)
				}
				e = &Error{Code: code, Message: env.Message}
			}
			if e != nil && status != 0 {
				e.Status = status
				e.RequestID = resp.Header.Get("X-Request-Id")
				e.RetryAfter = retryAfter(resp.Header, time.Now())
			}
		}
		e.Attempts = attempt
		last = e
		if attempt >= cl.retry.MaxAttempts || !retryable(c.safety, status, err) {
			return result{}, last
		}
		wait := cl.retry.backoff(attempt)
		if e.RetryAfter > 0 {
			if e.RetryAfter > cl.retry.MaxRetryAfter {
				return result{}, last
			}
			wait = max(wait, e.RetryAfter)
		}
		if err := sleep(ctx, wait); err != nil {
			return result{}, err
		}
	}
}

// jobPath is /v1/jobs/{id}[/suffix] with the id escaped.
func jobPath(id, suffix string) string {
	p := "/v1/jobs/" + url.PathEscape(id)
	if suffix != "" {
		p += "/" + suffix
	}
	return p
}

var errEmptyID = &Error{Code: CodeInvalidInput, Message: "job id is required"}

func checkID(id string) error {
	if id == "" {
		return errEmptyID
	}
	return nil
}

// isCtx reports whether err is the caller's own context ending.
func isCtx(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func jsonInto(raw []byte, v any) bool { return json.Unmarshal(raw, v) == nil }
