package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/client"
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
)

// The examples run against one real daemon on a real database (and the
// PostgREST emulation for User), started on first use. Example functions
// get no *testing.T, so exampleTB stands in for one; the daemon then lives
// until the test binary exits (pgtest.Main stops the cluster).
var (
	exampleOnce sync.Once
	exampleEnv  *userEnv
)

type exampleTB struct {
	testing.TB
	name string
}

func (e *exampleTB) Helper()                   {}
func (e *exampleTB) Name() string              { return e.name }
func (e *exampleTB) Cleanup(func())            {}
func (e *exampleTB) Logf(string, ...any)       {}
func (e *exampleTB) Errorf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleTB) FailNow()                  { panic("example setup failed") }
func (e *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "clipper-example-")
	if err != nil {
		panic(err)
	}
	exampleDirsMu.Lock()
	exampleDirs = append(exampleDirs, d)
	exampleDirsMu.Unlock()
	return d
}

// exampleDirs are removed after the tests (TestMain).
var (
	exampleDirsMu sync.Mutex
	exampleDirs   []string
)

func removeExampleDirs() {
	exampleDirsMu.Lock()
	defer exampleDirsMu.Unlock()
	for _, d := range exampleDirs {
		_ = os.RemoveAll(d)
	}
}

func examples() *userEnv {
	exampleOnce.Do(func() {
		t := &exampleTB{name: "examples"}
		e := newEnv(t, func(c *config.Config) { c.WebhookSecret = testWebhookSecret })
		rest := newPgrstEmulator(t, e.pool, []byte(testJWTSecret), e.d.Config.StorageDir, e.url+"/webhooks/supabase", testWebhookSecret)
		exampleEnv = &userEnv{env: e, rest: rest}
	})
	return exampleEnv
}

// exampleKeys returns the daemon's URL, a jobs:read+jobs:write key of a
// new user, and a worker key, as `clipper keys create` would print them.
func exampleKeys() (baseURL, apiKey, workerKey string) {
	e := examples()
	t := &exampleTB{name: "keys"}
	owner := e.newUser(t)
	return e.url, e.key(t, &owner, apikeys.ScopeJobsRead, apikeys.ScopeJobsWrite), e.key(t, nil, apikeys.ScopeWorker)
}

// A client makes a job and follows it live while a worker runs it.
func Example() {
	ctx := context.Background()
	baseURL, apiKey, workerKey := exampleKeys()

	api, err := client.New(client.Config{BaseURL: baseURL, APIKey: apiKey})
	if err != nil {
		panic(err)
	}
	created, err := api.CreateJob(ctx, client.NewJob{
		SourceURL:      "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
		Params:         map[string]int{"start": 10, "end": 20},
		IdempotencyKey: "order-" + uuid.NewString(), // your own id makes your retries safe
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", created.Job.Status)

	// The worker side, as examples/worker does it.
	go func() {
		wc, _ := client.New(client.Config{BaseURL: baseURL, APIKey: workerKey})
		w := wc.Worker("example-worker")
		jobs, err := w.Claim(ctx, 1)
		if err != nil || len(jobs) != 1 {
			panic(fmt.Sprint("claim: ", jobs, err))
		}
		job := jobs[0]
		h := w.Hold(ctx, job.ID, client.HoldOptions{Interval: 10 * time.Second})
		defer h.Stop()
		_ = h.Progress(h.Context(), 50)
		up, err := w.UploadResult(h.Context(), job.ID, "clip.txt", "text/plain", strings.NewReader("a clip"))
		if err != nil {
			panic(err)
		}
		if _, err := w.Complete(ctx, job.ID, []string{up.Path}); err != nil {
			panic(err)
		}
	}()

	for ev, err := range api.Stream(ctx, created.Job.ID, client.StreamOptions{}) {
		if err != nil {
			panic(err)
		}
		switch ev.Type {
		case "status":
			var d struct{ To client.Status }
			_ = json.Unmarshal(ev.Data, &d)
			fmt.Println("event: status", d.To)
		default:
			fmt.Println("event:", ev.Type, string(ev.Data))
		}
	}
	res, err := api.Results(ctx, created.Job.ID, 300)
	if err != nil {
		panic(err)
	}
	for _, r := range res.Results {
		dl, err := api.Download(ctx, r.URL)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(dl)
		dl.Close()
		mediaType, _, _ := mime.ParseMediaType(dl.ContentType)
		fmt.Printf("result %s (%s): %s\n", path.Base(r.Path), mediaType, body)
	}
	// Output:
	// created: queued
	// event: status queued
	// event: status processing
	// event: progress {"progress":50}
	// event: status done
	// result clip.txt (text/plain): a clip
}

// A Hold keeps a job alive while the worker works, and ends its context
// when the job is lost: here the client cancels it.
func ExampleWorker_Hold() {
	ctx := context.Background()
	baseURL, apiKey, workerKey := exampleKeys()
	api, _ := client.New(client.Config{BaseURL: baseURL, APIKey: apiKey})
	wc, _ := client.New(client.Config{BaseURL: baseURL, APIKey: workerKey})
	w := wc.Worker("example-hold")

	created, _ := api.CreateJob(ctx, client.NewJob{SourceURL: "https://example.com/v.mp4"})
	jobs, _ := w.Claim(ctx, 1)
	h := w.Hold(ctx, jobs[0].ID, client.HoldOptions{Interval: 100 * time.Millisecond})
	defer h.Stop()

	if _, err := api.CancelJob(ctx, created.Job.ID); err != nil {
		panic(err)
	}
	<-h.Context().Done() // the work under h.Context() stops here
	fmt.Println("lost:", client.IsJobLost(h.Err()), client.CodeOf(h.Err()))

	_, err := w.Complete(ctx, jobs[0].ID, nil)
	fmt.Println("complete:", client.IsJobLost(err))
	// Output:
	// lost: true invalid_transition
	// complete: true
}

// Jobs pages through a key's jobs, newest first.
func ExampleClient_Jobs() {
	ctx := context.Background()
	baseURL, apiKey, _ := exampleKeys()
	api, _ := client.New(client.Config{BaseURL: baseURL, APIKey: apiKey})
	for i := range 3 {
		if _, err := api.CreateJob(ctx, client.NewJob{SourceURL: fmt.Sprintf("https://example.com/%d.mp4", i)}); err != nil {
			panic(err)
		}
	}
	for job, err := range api.Jobs(ctx, client.ListOptions{PageSize: 2}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(*job.SourceURL, job.Status)
		if _, err := api.CancelJob(ctx, job.ID); err != nil { // leave the queue empty
			panic(err)
		}
	}
	// Output:
	// https://example.com/2.mp4 queued
	// https://example.com/1.mp4 queued
	// https://example.com/0.mp4 queued
}

// Errors carry the daemon's stable codes; match them with errors.Is.
func ExampleError() {
	ctx := context.Background()
	baseURL, apiKey, _ := exampleKeys()
	api, _ := client.New(client.Config{BaseURL: baseURL, APIKey: apiKey})

	_, err := api.Job(ctx, "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Status, errors.Is(err, client.ErrNotFound))
	}
	// Output:
	// not_found 404 true
}

// A signed-in user reads and writes their own jobs through PostgREST;
// row-level security hides everyone else's.
func ExampleUser() {
	ctx := context.Background()
	e := examples()
	t := &exampleTB{name: "user"}
	alice, bob := e.newUser(t), e.newUser(t)
	// In an app: the user's session.access_token from Supabase Auth.
	aliceToken, bobToken := e.rest.token(alice.String(), "authenticated"), e.rest.token(bob.String(), "authenticated")
	supabaseURL, anonKey := e.rest.url, testAnonKey

	u, err := client.NewUser(client.UserConfig{SupabaseURL: supabaseURL, AnonKey: anonKey, AccessToken: aliceToken})
	if err != nil {
		panic(err)
	}
	job, err := u.CreateJob(ctx, client.UserJob{SourceURL: "https://example.com/a.mp4", Params: map[string]int{"start": 1}})
	if err != nil {
		panic(err)
	}
	for j, err := range u.Jobs(ctx, client.UserListOptions{Statuses: []client.Status{client.StatusQueued}}) {
		if err != nil {
			panic(err)
		}
		fmt.Println("alice's job:", *j.SourceURL, string(j.Params))
	}
	for ev, err := range u.Events(ctx, job.ID, 0) {
		if err != nil {
			panic(err)
		}
		fmt.Println("event:", ev.Type)
	}

	b, _ := client.NewUser(client.UserConfig{SupabaseURL: supabaseURL, AnonKey: anonKey, AccessToken: bobToken})
	_, err = b.Job(ctx, job.ID)
	fmt.Println("bob reads it:", client.CodeOf(err))
	_, err = b.CancelJob(ctx, job.ID)
	fmt.Println("bob cancels it:", client.CodeOf(err))

	canceled, _ := u.CancelJob(ctx, job.ID)
	fmt.Println("alice cancels it:", canceled.Status)
	// Output:
	// alice's job: https://example.com/a.mp4 {"start": 1}
	// event: status
	// bob reads it: not_found
	// bob cancels it: not_found
	// alice cancels it: canceled
}

// A user's upload into sources/<uid>/ becomes a job through the database
// webhook.
func ExampleUser_UploadSource() {
	ctx := context.Background()
	e := examples()
	t := &exampleTB{name: "upload"}
	carol := e.newUser(t)
	u, _ := client.NewUser(client.UserConfig{SupabaseURL: e.rest.url, AnonKey: testAnonKey, AccessToken: e.rest.token(carol.String(), "authenticated")})

	up, err := u.UploadSource(ctx, "holiday.mp4", "video/mp4", strings.NewReader("video bytes"), map[string]int{"start": 3, "end": 8})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.TrimPrefix(up.Path, u.UserID()+"/"))
	var job client.Job
	for range 500 { // the webhook is asynchronous on Supabase
		if job, err = u.JobForSource(ctx, up.Path); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println(job.SourceType, job.Status, string(job.Params))
	_, _ = u.CancelJob(ctx, job.ID)
	// Output:
	// holiday.mp4
	// upload queued {"end": 8, "start": 3}
}
