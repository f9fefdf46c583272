package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/supabase-community/postgrest-go"
)

// UserConfig configures a User client.
type UserConfig struct {
	// SupabaseURL is the project's URL (https://<ref>.supabase.co, or the
	// CLI's http://127.0.0.1:54321). PostgREST is under /rest/v1 and
	// Storage under /storage/v1 of it.
	SupabaseURL string
	// AnonKey is the project's anon (publishable) key, sent as apikey.
	AnonKey string
	// AccessToken is the signed-in user's access token (a Supabase Auth
	// JWT). Rows come back as row-level security allows that user.
	AccessToken string
	// HTTPClient sends the requests (default: 30 s timeout).
	HTTPClient *http.Client
	// Retry bounds retries of reads and of writes that are safe to repeat.
	Retry RetryPolicy
}

// User reads and writes a Supabase user's own jobs through PostgREST,
// under the database's row-level security, with postgrest-go, and uploads
// sources through Storage with the user's token. Each User has its own
// postgrest-go client, so its token is never shared with another User
// (postgrest-go keeps the Authorization header per client). Safe for
// concurrent use.
type User struct {
	cfg   UserConfig
	rest  *postgrest.Client
	hc    *http.Client
	retry RetryPolicy
	uid   string
}

// NewUser returns a User for one access token. It makes no request.
func NewUser(cfg UserConfig) (*User, error) {
	base, err := url.Parse(strings.TrimRight(cfg.SupabaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, &Error{Code: CodeInvalidInput, Message: "SupabaseURL must be an http(s) URL"}
	}
	if cfg.AnonKey == "" || cfg.AccessToken == "" {
		return nil, &Error{Code: CodeInvalidInput, Message: "AnonKey and AccessToken are required"}
	}
	uid, err := subjectOf(cfg.AccessToken)
	if err != nil {
		return nil, err
	}
	cfg.SupabaseURL = base.String()
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	rest, err := postgrest.NewClientWithError(cfg.SupabaseURL+"/rest/v1", "public", map[string]string{
		"apikey":        cfg.AnonKey,
		"Authorization": "Bearer " + cfg.AccessToken,
	})
	if err != nil {
		return nil, &Error{Code: CodeInvalidInput, Message: "bad PostgREST URL", Err: err}
	}
	// postgrest-go's errors keep only "(code) message": the capturing
	// transport keeps the status and the whole error body for each call.
	rest.Transport.Parent = &capture{next: hc}
	return &User{cfg: cfg, rest: rest, hc: hc, retry: cfg.Retry.withDefaults(), uid: uid}, nil
}

// WithAccessToken returns a User for a refreshed token of the same or
// another user; u is unchanged.
func (u *User) WithAccessToken(token string) (*User, error) {
	cfg := u.cfg
	cfg.AccessToken = token
	return NewUser(cfg)
}

// UserID is the user's id (the token's sub claim, read without checking
// the signature: the servers check it).
func (u *User) UserID() string { return u.uid }

// subjectOf reads the sub claim of a JWT.
func subjectOf(token string) (string, error) {
	parts := strings.Split(token, ".")
	bad := &Error{Code: CodeUnauthorized, Message: "AccessToken is not a JWT with a sub claim"}
	if len(parts) != 3 {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", bad
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Sub == "" {
		return "", bad
	}
	return c.Sub, nil
}

// exchange is what the capturing transport saw of one call.
type exchange struct {
	status int
	header http.Header
	body   []byte // error answers only
	err    error  // transport error
}

type exchangeKey struct{}

// capture is postgrest-go's parent transport: it records the answer's
// status and, for errors, its body into the call's exchange.
type capture struct{ next *http.Client }

func (c *capture) RoundTrip(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	rt := c.next.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	// The client's overall timeout applies to this call as well.
	if c.next.Timeout > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), c.next.Timeout)
		req = req.WithContext(ctx)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			cancel()
		} else {
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		return record(ex, resp, err)
	}
	resp, err := rt.RoundTrip(req)
	return record(ex, resp, err)
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

func record(ex *exchange, resp *http.Response, err error) (*http.Response, error) {
	if ex == nil {
		return resp, err
	}
	if err != nil {
		ex.err = err
		return resp, err
	}
	ex.status, ex.header = resp.StatusCode, resp.Header
	if resp.StatusCode >= 400 {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if rerr != nil {
			ex.err = rerr
		}
		ex.body = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return resp, err
}

// exec runs one postgrest-go request built by build (a fresh builder per
// attempt), retrying as s allows, and decodes the JSON answer into out.
func (u *User) exec(ctx context.Context, s safety, build func() *postgrest.FilterBuilder, out any) error {
	for attempt := 1; ; attempt++ {
		ex := &exchange{}
		body, _, err := build().ExecuteWithContext(context.WithValue(ctx, exchangeKey{}, ex))
		if err == nil {
			if out == nil {
				return nil
			}
			if derr := json.Unmarshal(body, out); derr != nil {
				return &Error{Code: CodeInternal, Status: ex.status, Message: "cannot decode PostgREST's answer", Err: derr}
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctxErr(ctx)
		}
		e := postgrestError(ex, err)
		e.Attempts = attempt
		if attempt >= u.retry.MaxAttempts || !retryable(s, ex.status, ex.err) {
			return e
		}
		wait := u.retry.backoff(attempt)
		if e.RetryAfter > 0 {
			if e.RetryAfter > u.retry.MaxRetryAfter {
				return e
			}
			wait = max(wait, e.RetryAfter)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// postgrestError maps a failed PostgREST call onto an *Error. The
// SQLSTATEs and PGRST codes are PostgREST's (its Error.hs); CL001 and
// CL002 are this project's own triggers (illegal status change,
// append-only events).
func postgrestError(ex *exchange, err error) *Error {
	if ex.status == 0 {
		return &Error{Code: CodeUnavailable, Message: "PostgREST could not be reached", Err: redact(err)}
	}
	e := &Error{Status: ex.status, RetryAfter: retryAfter(ex.header, time.Now())}
	var pe PostgRESTError
	if json.Unmarshal(ex.body, &pe) == nil && (pe.Code != "" || pe.Message != "") {
		e.PostgREST = &pe
		e.Message = pe.Message
	} else {
		// Not PostgREST's own body (a gateway's, e.g. Kong's
		// {"message": "..."} for a missing apikey).
		var m struct {
			Message string `json:"message"`
			Msg     string `json:"msg"`
		}
		_ = json.Unmarshal(ex.body, &m)
		e.Message = m.Message + m.Msg
	}
	e.Code = codeForPostgREST(pe.Code, ex.status, pe.Details)
	return e
}

func codeForPostgREST(code string, status int, details string) Code {
	switch {
	case code == "PGRST116":
		// Asked for one object: details say how many rows there were.
		if strings.Contains(details, " 0 rows") {
			return CodeNotFound
		}
		return CodeConflict
	case code == "CL001":
		return CodeInvalidTransition
	case code == "CL002":
		return CodeForbidden
	case code == "42501":
		if status == http.StatusUnauthorized {
			return CodeUnauthorized
		}
		return CodeForbidden
	case code == "23505":
		return CodeConflict
	case code == "23503", code == "23514", code == "23502", strings.HasPrefix(code, "22"), code == "P0001":
		return CodeInvalidInput
	case code == "40001", code == "40P01", code == "55P03":
		return CodeConflict
	case strings.HasPrefix(code, "PGRST30"):
		return CodeUnauthorized
	case strings.HasPrefix(code, "PGRST0"), strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"),
		code == "57P01", code == "57014":
		return CodeUnavailable
	case code == "PGRST205", code == "42P01":
		return CodeNotFound
	case strings.HasPrefix(code, "PGRST1"), strings.HasPrefix(code, "PGRST2"):
		return CodeInvalidInput
	}
	return codeForStatus(status)
}

// UserListOptions select and page the user's jobs.
type UserListOptions struct {
	// Statuses keeps jobs in any of these statuses (none: all).
	Statuses []Status
	// PageSize is the rows per request (default 50, at most 1000).
	PageSize int
	// After continues after this position (a UserPage's Next).
	After *UserCursor
}

// UserCursor is a keyset position: the last job of a page.
type UserCursor struct {
	CreatedAt time.Time
	ID        string
}

// UserPage is one page of the user's jobs, newest first.
type UserPage struct {
	Jobs []Job
	Next *UserCursor // nil on the last page
}

const pgTime = "2006-01-02T15:04:05.999999Z07:00"

// JobsPage reads one page of the user's jobs, newest first:
//
//	GET /rest/v1/jobs?select=*&status=in.(...)&or=(created_at.lt."T",and(created_at.eq."T",id.lt.ID))
//	    &order=created_at.desc.nullslast,id.desc.nullslast&limit=N
//
// RLS keeps only the user's own jobs. Pages are keyset pages: each starts
// strictly after the previous page's last job, so a job created meanwhile
// neither shifts nor repeats rows.
func (u *User) JobsPage(ctx context.Context, o UserListOptions) (UserPage, error) {
	n := o.PageSize
	if n <= 0 {
		n = 50
	}
	n = min(n, 1000)
	statuses := make([]string, 0, len(o.Statuses))
	for _, s := range o.Statuses {
		statuses = append(statuses, string(s))
	}
	var jobs []Job
	err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
		f := u.rest.From("jobs").Select("*", "", false)
		if len(statuses) == 1 {
			f = f.Eq("status", statuses[0])
		} else if len(statuses) > 1 {
			f = f.In("status", statuses)
		}
		if a := o.After; a != nil {
			// Timestamps hold PostgREST's reserved characters (. and :), so
			// they go in double quotes (PostgREST docs, URL Grammar,
			// "Reserved characters").
			t := strconv.Quote(a.CreatedAt.UTC().Format(pgTime))
			f = f.Or(fmt.Sprintf("created_at.lt.%s,and(created_at.eq.%s,id.lt.%s)", t, t, a.ID), "")
		}
		return f.Order("created_at", &postgrest.OrderOpts{}).Order("id", &postgrest.OrderOpts{}).Limit(n, "")
	}, &jobs)
	if err != nil {
		return UserPage{}, err
	}
	p := UserPage{Jobs: jobs}
	if len(jobs) == n {
		last := jobs[len(jobs)-1]
		p.Next = &UserCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return p, nil
}

// Jobs iterates over the user's jobs, newest first, a page per request.
// On an error it yields it once and stops.
func (u *User) Jobs(ctx context.Context, o UserListOptions) iter.Seq2[Job, error] {
	return func(yield func(Job, error) bool) {
		for {
			p, err := u.JobsPage(ctx, o)
			if err != nil {
				yield(Job{}, err)
				return
			}
			for _, j := range p.Jobs {
				if !yield(j, nil) {
					return
				}
			}
			if p.Next == nil {
				return
			}
			o.After = p.Next
		}
	}
}

// Job reads one of the user's jobs (GET /rest/v1/jobs?select=*&id=eq.ID
// with Accept: application/vnd.pgrst.object+json). Another user's job is
// ErrNotFound, exactly like a missing one: RLS hides it.
func (u *User) Job(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	var j Job
	err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
		return u.rest.From("jobs").Select("*", "", false).Eq("id", id).Single()
	}, &j)
	return j, err
}

// JobForSource finds the job that an uploaded source made (the database
// webhook creates it shortly after the upload): ErrNotFound until then.
func (u *User) JobForSource(ctx context.Context, objectPath string) (Job, error) {
	var js []Job
	err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
		return u.rest.From("jobs").Select("*", "", false).Eq("source_object", objectPath).
			Order("created_at", &postgrest.OrderOpts{}).Limit(1, "")
	}, &js)
	if err != nil {
		return Job{}, err
	}
	if len(js) == 0 {
		return Job{}, &Error{Code: CodeNotFound, Message: "no job for " + objectPath + " yet"}
	}
	return js[0], nil
}

// Events iterates over a job's events in stream order (ts, then id),
// pageSize rows per request (0: 500):
//
//	GET /rest/v1/job_events?select=*&job_id=eq.ID&or=(ts.gt."T",and(ts.eq."T",id.gt.N))
//	    &order=ts.asc.nullslast,id.asc.nullslast&limit=N
//
// Another user's job has no events the user can see: the iteration is
// empty, as RLS decides.
func (u *User) Events(ctx context.Context, jobID string, pageSize int) iter.Seq2[Event, error] {
	if pageSize <= 0 {
		pageSize = 500
	}
	return func(yield func(Event, error) bool) {
		if err := checkID(jobID); err != nil {
			yield(Event{}, err)
			return
		}
		var last *Event
		for {
			var evs []Event
			err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
				f := u.rest.From("job_events").Select("*", "", false).Eq("job_id", jobID)
				if last != nil {
					t := strconv.Quote(last.TS.UTC().Format(pgTime))
					f = f.Or(fmt.Sprintf("ts.gt.%s,and(ts.eq.%s,id.gt.%d)", t, t, last.ID), "")
				}
				asc := &postgrest.OrderOpts{Ascending: true}
				return f.Order("ts", asc).Order("id", asc).Limit(pageSize, "")
			}, &evs)
			if err != nil {
				yield(Event{}, err)
				return
			}
			for i := range evs {
				if !yield(evs[i], nil) {
					return
				}
			}
			if len(evs) < pageSize {
				return
			}
			last = &evs[len(evs)-1]
		}
	}
}

// UserJob asks for a job through PostgREST.
type UserJob struct {
	// SourceURL is the video's http(s) URL.
	SourceURL string
	// Params are the clip's instructions (a JSON object; nil: {}).
	Params any
	// IdempotencyKey makes the create safe to repeat: when a job with it
	// exists, CreateJob returns that job. Empty: a random key per call,
	// so that CreateJob's own retries never make two jobs.
	IdempotencyKey string
}

// CreateJob inserts a job for the user (POST /rest/v1/jobs, Prefer:
// return=representation). RLS admits only jobs owned by the user
// (owner_id defaults to auth.uid()) and created queued.
func (u *User) CreateJob(ctx context.Context, j UserJob) (Job, error) {
	key := j.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	row := map[string]any{"source_type": "youtube", "source_url": j.SourceURL, "idempotency_key": key}
	if j.Params != nil {
		p, err := rawJSON(j.Params)
		if err != nil {
			return Job{}, &Error{Code: CodeInvalidInput, Message: "params are not JSON", Err: err}
		}
		row["params"] = p
	}
	var out []Job
	err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
		return u.rest.From("jobs").Insert(row, false, "", "representation", "")
	}, &out)
	if CodeOf(err) == CodeConflict {
		// The key was used: by a retry of this call whose answer was lost,
		// or by the caller's earlier create. Either way that job is the
		// answer, if it asked for the same thing.
		var same []Job
		if gerr := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
			return u.rest.From("jobs").Select("*", "", false).Eq("idempotency_key", key).Limit(1, "")
		}, &same); gerr == nil && len(same) == 1 && same[0].SourceURL != nil && *same[0].SourceURL == j.SourceURL &&
			sameJSON(same[0].Params, row["params"]) {
			return same[0], nil
		}
		return Job{}, err
	}
	if err != nil {
		return Job{}, err
	}
	if len(out) != 1 {
		return Job{}, &Error{Code: CodeInternal, Message: fmt.Sprintf("PostgREST returned %d rows for one insert", len(out))}
	}
	return out[0], nil
}

// CancelJob cancels one of the user's queued or processing jobs
// (PATCH /rest/v1/jobs?id=eq.ID with {"status":"canceled"}). A job the
// user cannot see is ErrNotFound; a finished one ErrInvalidTransition.
// Repeating it is harmless (an already canceled job stays canceled).
func (u *User) CancelJob(ctx context.Context, id string) (Job, error) {
	if err := checkID(id); err != nil {
		return Job{}, err
	}
	var out []Job
	err := u.exec(ctx, idempotent, func() *postgrest.FilterBuilder {
		return u.rest.From("jobs").Update(map[string]string{"status": "canceled"}, "representation", "").Eq("id", id)
	}, &out)
	if err != nil {
		return Job{}, err
	}
	if len(out) == 0 {
		return Job{}, &Error{Code: CodeNotFound, Message: "job not found"}
	}
	return out[0], nil
}

// sameJSON reports whether the stored params equal the ones asked for
// (nil: {}), as JSON values: the database normalizes spacing and key order.
func sameJSON(stored json.RawMessage, asked any) bool {
	want := json.RawMessage("{}")
	if r, ok := asked.(json.RawMessage); ok && len(r) > 0 {
		want = r
	}
	var a, b any
	if json.Unmarshal(stored, &a) != nil || json.Unmarshal(want, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}
