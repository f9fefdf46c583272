// Command worker is an example clip worker built on the Go SDK
// (github.com/clipper/clipper/client). It claims jobs from the clipper
// daemon, keeps each alive with background heartbeats, fetches its
// source (the signed source URL of an uploaded video, or the job's
// source_url over HTTP), makes the clip, uploads the results through
// signed upload URLs and completes the job; a failure is reported as
// retryable or not, and a job that was canceled or taken back is dropped.
//
// Making the clip: with -command (default: ffmpeg, when it is on the
// PATH) it runs that program, with {in}, {out}, {start} and {end}
// replaced in its arguments (start and end come from the job's params,
// in seconds); the source is also its standard input and, without {out},
// its standard output is the clip. Without a command it makes a trivial
// result: the clip is the source as is, plus info.json with its size and
// SHA-256.
//
//	export CLIPPER_URL=http://127.0.0.1:8080
//	export CLIPPER_WORKER_KEY=$(clipper keys create --name worker --scopes worker | ...)
//	go run ./examples/worker -once
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clipper/clipper/client"
)

const defaultCommand = "ffmpeg -hide_banner -loglevel error -y -ss {start} -to {end} -i {in} -c copy {out}"

// Config is the worker's settings.
type Config struct {
	URL       string // the daemon
	Key       string // an API key with the worker scope
	WorkerID  string
	Batch     int           // jobs claimed at once, worked concurrently
	Command   string        // "" for the trivial transform
	OutExt    string        // the clip's extension (its Content-Type follows)
	Once      bool          // exit when the queue is empty
	Idle      time.Duration // wait between empty claims (jittered)
	Heartbeat time.Duration
	Log       *slog.Logger
}

func main() {
	host, _ := os.Hostname()
	cfg := Config{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	flag.StringVar(&cfg.URL, "url", envOr("CLIPPER_URL", "http://127.0.0.1:8080"), "daemon URL (CLIPPER_URL)")
	flag.StringVar(&cfg.WorkerID, "worker-id", fmt.Sprintf("%s/pid-%d", host, os.Getpid()), "this worker's stable id")
	flag.IntVar(&cfg.Batch, "batch", 2, "jobs claimed at once and worked concurrently (1 to 1000)")
	flag.StringVar(&cfg.Command, "command", defaultCommand, `clip command; "" for the trivial transform (the default needs ffmpeg on the PATH, else the trivial transform runs)`)
	flag.StringVar(&cfg.OutExt, "out-ext", ".mp4", "the clip's file extension")
	flag.BoolVar(&cfg.Once, "once", false, "exit when no job is left")
	flag.DurationVar(&cfg.Idle, "idle", 2*time.Second, "wait between claims that found nothing")
	flag.DurationVar(&cfg.Heartbeat, "heartbeat", 30*time.Second, "heartbeat interval")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), "Usage: go run ./examples/worker [flags]\n\n"+
			"Claims clip jobs from the clipper daemon, makes the clips, uploads the results\n"+
			"and completes the jobs. The API key (scope worker) is CLIPPER_WORKER_KEY.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.Key = os.Getenv("CLIPPER_WORKER_KEY")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		cfg.Log.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Run claims and works jobs until ctx ends (or, with Once, the queue is
// empty).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Key == "" {
		return errors.New("CLIPPER_WORKER_KEY is not set (an API key with the worker scope)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Batch = max(cfg.Batch, 1)
	if cfg.Idle <= 0 {
		cfg.Idle = 2 * time.Second
	}
	if cfg.Command != "" {
		if _, err := exec.LookPath(strings.Fields(cfg.Command)[0]); err != nil {
			cfg.Log.Info("clip command not found; making trivial results", "command", strings.Fields(cfg.Command)[0])
			cfg.Command = ""
		}
	}
	c, err := client.New(client.Config{BaseURL: cfg.URL, APIKey: cfg.Key})
	if err != nil {
		return err
	}
	w := c.Worker(cfg.WorkerID)
	for {
		jobs, err := w.Claim(ctx, cfg.Batch)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
			return err // a wrong key will not get better
		case err != nil:
			cfg.Log.Warn("claim failed; trying again", "error", err)
		case len(jobs) == 0 && cfg.Once:
			return nil
		}
		if len(jobs) == 0 {
			// A claim never waits: sleep 1 to 2 idle periods, jittered.
			if sleepCtx(ctx, cfg.Idle+rand.N(cfg.Idle)) != nil {
				return ctx.Err()
			}
			continue
		}
		var wg sync.WaitGroup
		for _, job := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				work(ctx, cfg, c, w, job)
			}()
		}
		wg.Wait()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jobError is a failure with its code and whether a retry may help.
type jobError struct {
	code      string
	retryable bool
	err       error
}

func (e *jobError) Error() string { return e.code + ": " + e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

// work runs one held job to its end.
func work(ctx context.Context, cfg Config, c *client.Client, w *client.Worker, job client.Job) {
	log := cfg.Log.With("job_id", job.ID, "attempt", job.Attempts)
	h := w.Hold(ctx, job.ID, client.HoldOptions{Interval: cfg.Heartbeat, OnError: func(err error) {
		log.Warn("heartbeat failed; will retry", "error", err)
	}})
	defer h.Stop()

	paths, err := process(h.Context(), cfg, c, w, h, job)
	if err == nil {
		_, err = w.Complete(ctx, job.ID, paths)
		if err == nil {
			log.Info("job done", "results", paths)
			return
		}
	}
	if client.IsJobLost(err) || client.IsJobLost(h.Err()) {
		// Canceled, timed out and given to another worker, or deleted:
		// nothing to report, drop it.
		log.Info("job lost; dropping it", "error", err)
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the job goes back to the queue after its heartbeat
		// timeout; say so at once instead.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = w.Fail(fctx, job.ID, client.Failure{Code: "worker_shutdown", Retryable: true})
		return
	}
	f := client.Failure{Code: "internal", Message: err.Error(), Retryable: true}
	var je *jobError
	if errors.As(err, &je) {
		f.Code, f.Retryable = je.code, je.retryable
	}
	// Exponential in the attempts so far: 10 s, 40 s, 90 s, ...
	f.RetryDelay = time.Duration(job.Attempts*job.Attempts) * 10 * time.Second
	if _, ferr := w.Fail(ctx, job.ID, f); ferr != nil && !client.IsJobLost(ferr) {
		log.Error("could not report the failure", "error", ferr)
	}
	log.Warn("job failed", "code", f.Code, "retryable", f.Retryable, "error", err)
}

// process fetches the source, makes the results and uploads them; it
// returns the result paths for Complete.
func process(ctx context.Context, cfg Config, c *client.Client, w *client.Worker, h *client.Hold, job client.Job) ([]string, error) {
	dir, err := os.MkdirTemp("", "clip-"+job.ID+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	in := filepath.Join(dir, "source")
	srcType, err := fetch(ctx, c, w, job, in)
	if err != nil {
		return nil, err
	}
	if err := h.Progress(ctx, 30); err != nil {
		return nil, err
	}

	var params struct {
		Start *float64 `json:"start"`
		End   *float64 `json:"end"`
	}
	if len(job.Params) > 0 && json.Unmarshal(job.Params, &params) != nil {
		return nil, &jobError{code: "bad_params", err: errors.New("params are not a clip's {start, end}")}
	}
	clipName, clipType := "clip"+cfg.OutExt, mime.TypeByExtension(cfg.OutExt)
	out := filepath.Join(dir, clipName)
	if cfg.Command != "" {
		if err := runCommand(ctx, cfg.Command, in, out, params.Start, params.End); err != nil {
			return nil, err
		}
	} else {
		// The trivial transform: the clip is the source as it came.
		if err := os.Link(in, out); err != nil {
			return nil, err
		}
		clipType = srcType
	}
	if err := h.Progress(ctx, 70); err != nil {
		return nil, err
	}

	info, err := describe(in, out, job.Params)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, r := range []struct{ name, typ, file string }{{clipName, clipType, out}, {"info.json", "application/json", info}} {
		f, err := os.Open(r.file)
		if err != nil {
			return nil, err
		}
		// An *os.File can be rewound, so the SDK may retry the upload.
		u, err := w.UploadResult(ctx, job.ID, r.name, r.typ, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		paths = append(paths, u.Path) // the server's path, not the name asked for
	}
	return paths, h.Progress(ctx, 100)
}

// fetch writes the job's source to path and returns its Content-Type.
func fetch(ctx context.Context, c *client.Client, w *client.Worker, job client.Job, path string) (string, error) {
	var dl *client.Download
	var err error
	switch {
	case job.SourceObject != nil:
		dl, err = w.DownloadSource(ctx, job.ID)
	case job.SourceURL != nil:
		// A direct link to a file. A YouTube page needs a downloader
		// (e.g. yt-dlp) instead: put it in -command's place or here.
		dl, err = c.Download(ctx, *job.SourceURL)
	default:
		return "", &jobError{code: "no_source", err: errors.New("job has no source")}
	}
	if err != nil {
		if client.IsJobLost(err) {
			return "", err
		}
		// A 4xx from the source's server will not get better.
		var ce *client.Error
		retry := !(errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500)
		return "", &jobError{code: "download_failed", retryable: retry, err: err}
	}
	defer dl.Close()
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, dl); err != nil {
		return "", &jobError{code: "download_failed", retryable: true, err: err}
	}
	ct := dl.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return ct, f.Close()
}

// runCommand runs the clip command without a shell: each argument has its
// placeholders replaced; the source is its stdin and, without {out}, its
// stdout is the clip.
func runCommand(ctx context.Context, command, in, out string, start, end *float64) error {
	num := func(f *float64, def string) string {
		if f == nil {
			return def
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	r := strings.NewReplacer("{in}", in, "{out}", out, "{start}", num(start, "0"), "{end}", num(end, "86400"))
	args := strings.Fields(command)
	usesOut := strings.Contains(command, "{out}")
	for i, a := range args {
		args[i] = r.Replace(a)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	stdin, err := os.Open(in)
	if err != nil {
		return err
	}
	defer stdin.Close()
	cmd.Stdin = stdin
	var stdout *os.File
	if !usesOut {
		if stdout, err = os.Create(out); err != nil {
			return err
		}
		defer stdout.Close()
		cmd.Stdout = stdout
	}
	var stderr strings.Builder
	cmd.Stderr = &limitWriter{w: &stderr, n: 4000}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &jobError{code: "clip_failed", err: fmt.Errorf("%s: %v: %s", args[0], err, stderr.String())}
	}
	if stdout != nil {
		return stdout.Close()
	}
	return nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}

// describe writes info.json: sizes and SHA-256 of the source and clip.
func describe(in, out string, params json.RawMessage) (string, error) {
	sum := func(p string) (int64, string, error) {
		f, err := os.Open(p)
		if err != nil {
			return 0, "", err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		return n, hex.EncodeToString(h.Sum(nil)), err
	}
	inN, inSum, err := sum(in)
	if err != nil {
		return "", err
	}
	outN, outSum, err := sum(out)
	if err != nil {
		return "", err
	}
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	b, err := json.MarshalIndent(map[string]any{
		"source": map[string]any{"bytes": inN, "sha256": inSum},
		"clip":   map[string]any{"bytes": outN, "sha256": outSum},
		"params": params,
	}, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(out), "info.json")
	return p, os.WriteFile(p, b, 0o600)
}
