// Package client is the Go SDK of the clipper: typed clients for the
// programs around a clipper deployment.
//
//   - Client, with an API key, calls the daemon's jobs API: CreateJob
//     (always idempotent), Job, Jobs and JobsPage (newest first, keyset
//     pages), CancelJob, Events and EventsPage, Stream (live events that
//     survive reconnects), Results (signed download URLs) and Download,
//     UploadSource and SourceUploadURL (a source into the key's own
//     folder, to create an upload job with); with a keys:admin key,
//     CreateKey, Keys, Key, RotateKey and RevokeKey.
//   - Worker, from Client.Worker and a key with the worker scope, runs the
//     worker contract: Claim (a batch), Hold (heartbeats in the
//     background), Progress, Event, DownloadSource, UploadURLs and
//     UploadResult (streamed to a signed URL), Complete and Fail.
//   - User, with a Supabase user's access token, reads and writes that
//     user's own jobs through PostgREST under row-level security (with
//     postgrest-go), and uploads sources through Supabase Storage, which
//     makes jobs through the database webhook.
//
// # Workers
//
// A worker claims jobs, holds each while it works, and reports back:
//
//	c, _ := client.New(client.Config{BaseURL: "http://127.0.0.1:8080", APIKey: os.Getenv("CLIPPER_WORKER_KEY")})
//	w := c.Worker("host-3/pid-812")
//	jobs, err := w.Claim(ctx, 4)
//	for _, job := range jobs {
//		h := w.Hold(ctx, job.ID, client.HoldOptions{})  // heartbeats every 30 s
//		src, err := w.DownloadSource(h.Context(), job.ID) // upload jobs; or fetch job.SourceURL
//		... make the clip under h.Context() ...
//		up, err := w.UploadResult(h.Context(), job.ID, "clip.mp4", "video/mp4", file)
//		_, err = w.Complete(ctx, job.ID, []string{up.Path})
//		h.Stop()
//	}
//
// When a job is canceled, taken back after missed heartbeats, or deleted,
// the next report fails with an error for which IsJobLost is true, and
// the Hold's context ends with that error as its cause: stop and drop the
// job, never retry it. examples/worker is a complete worker.
//
// # Errors and retries
//
// Every failure is an *Error with a stable Code, the same strings the
// daemon answers with (not_found, invalid_transition, rate_limited, ...):
// match with errors.Is(err, client.ErrNotFound), CodeOf or IsJobLost.
// Calls are retried with exponential backoff and jitter, a bounded number
// of times (RetryPolicy), and only when repeating them is safe: every call
// on 429 (after its Retry-After), 503 and on a connection that could not
// be made; calls that are safe to repeat also on 500, 502, 504 and a
// connection lost mid-call. Creates are safe to repeat because CreateJob
// always sends an Idempotency-Key (its own, when the caller gives none).
// Claim and Fail are never repeated after a lost answer. A caller's own
// context ending is returned as context.Cause(ctx): context.Canceled or
// DeadlineExceeded, or, for work under a Hold's context, the lost-job
// error.
//
// # Event streams
//
// Stream follows a job's events as Server-Sent Events. When the
// connection drops (a restart of the daemon, a network fault) it
// reconnects with Last-Event-ID, so the caller sees every event once, in
// order, and the iteration ends after the job's final status.
//
// # Users, PostgREST and postgrest-go
//
// User reads through PostgREST as a signed-in Supabase user, so the
// database's row-level security decides what comes back: a user sees and
// cancels only their own jobs and their events. It is built on
// github.com/supabase-community/postgrest-go v0.0.12 and wraps its gaps:
//
//   - postgrest-go's errors are only "(code) message", without the HTTP
//     status or PostgREST's details and hint. User installs a transport
//     under postgrest-go that keeps the status and body of each call, and
//     returns an *Error with the status, the whole PostgREST body
//     (Error.PostgREST) and a mapped Code: PGRST116 with 0 rows is
//     not_found, 42501 forbidden (unauthorized for anon), 23505 conflict,
//     23514/23502/23503/22xxx invalid_input, PGRST301-303 unauthorized,
//     connection errors unavailable, and the project's own trigger codes
//     CL001 invalid_transition and CL002 forbidden.
//   - postgrest-go keeps one set of headers per client, and SetAuthToken
//     changes them for every caller of that client. Each User owns its own
//     postgrest-go client with its token; WithAccessToken makes a new User
//     for a refreshed token instead of changing a shared one.
//   - ExecuteWithContext is used for every call, so contexts cancel.
//   - postgrest-go never closes the body of an error answer, and sends
//     its requests through http.DefaultTransport; the same transport
//     closes those bodies and sends through UserConfig.HTTPClient's.
//   - Single() adds Accept: application/vnd.pgrst.object+json before the
//     client's default application/json; PostgREST reads the first Accept
//     header, so Job gets PGRST116 (not_found) for a row RLS hides.
//
// supabase-community/supabase-go is not used: its latest tag, v0.0.4,
// requires postgrest-go v0.0.11 (and its go.mod replaces that with a
// fork, roja/postgrest-go) and storage-go v0.7.0; its calls take no
// context; and one Client holds one session, whose token
// UpdateAuthSession changes for every caller. Storage through storage-go
// also takes no context and loses error statuses (see
// internal/storage/README.md). The two things User would take from it, an
// apikey header and Storage's upload endpoint, are a few lines here.
//
// The User client is tested against an emulation of PostgREST and
// Storage (postgrest_emulator_test.go) that runs each request on the real
// database as PostgREST does (role switch and request.jwt.claims), since
// no PostgREST server can be installed where the tests run; docs/clients.md
// says what it covers.
//
// # Where objects live
//
// The server decides object paths. Name results in Complete by the Path
// of the SignedURL that UploadURLs returned, never by the key asked for;
// uploaded sources are named sources/<user id>/..., returned by
// UploadSource.
package client
