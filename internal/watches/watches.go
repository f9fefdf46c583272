// Package watches tells the database which jobs this daemon streams, so
// that only their events are notified on clipper_job_events.
//
// A transaction that sends NOTIFY takes a database-wide lock at commit,
// held through its WAL flush. The events trigger therefore notifies a
// job's events only while some daemon holds an unexpired lease on the job
// in clipper_internal.job_watches (migration
// 20261202160000_notify_watched_jobs.sql). A Registry keeps this
// process's rows there: Watch writes one before a stream's first read, Run
// renews the leases of open streams, drops those of closed ones and sweeps
// expired ones (daemons that died), and removes this process's rows when
// it stops.
package watches

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// DefaultLease is how long a watch counts without renewal. A crashed
// daemon's watches cause notifications nobody hears for at most this long.
const DefaultLease = time.Minute

// Registry is one daemon process's watches.
type Registry struct {
	q     *dbgen.Queries
	id    uuid.UUID
	lease time.Duration
	log   *slog.Logger

	// sync is held for writing while Run replaces the rows with the open
	// set, and for reading while Watch adds to the set and writes its row:
	// a renewal never drops a watch whose stream has just opened.
	sync sync.RWMutex
	mu   sync.Mutex
	open map[uuid.UUID]int // streams per job
}

// Options tune a Registry. Zero values take the defaults.
type Options struct {
	// Lease is how long a watch counts without renewal (default
	// DefaultLease); Run renews every third of it.
	Lease  time.Duration
	Logger *slog.Logger
}

// New returns a registry with a fresh process id, writing through db.
func New(db database.DB, opts Options) *Registry {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		q: dbgen.New(db), id: uuid.New(), lease: opts.Lease, log: opts.Logger,
		open: map[uuid.UUID]int{},
	}
}

// ID is this process's daemon_id in clipper_internal.job_watches.
func (r *Registry) ID() uuid.UUID { return r.id }

// Watch records that a stream of job id is open and returns once every
// event of the job committed from now on will be notified: a writer of
// the job's events already under way has committed by then (so the
// stream's first read, made after Watch, sees its events), and every later
// one notifies. Call release when the stream closes; its row goes at the
// next renewal. A job that does not exist is no error: there is nothing
// to notify.
func (r *Registry) Watch(ctx context.Context, id uuid.UUID) (release func(), err error) {
	r.sync.RLock()
	defer r.sync.RUnlock()
	r.mu.Lock()
	r.open[id]++
	r.mu.Unlock()
	release = sync.OnceFunc(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.open[id]--; r.open[id] <= 0 {
			delete(r.open, id)
		}
	})
	err = r.q.WatchJob(ctx, dbgen.WatchJobParams{JobID: id, DaemonID: r.id, LeaseSeconds: r.lease.Seconds()})
	if err != nil {
		release()
		return nil, apperr.FromDB(err, "job")
	}
	return release, nil
}

// Watching returns the jobs with open streams.
func (r *Registry) Watching() []uuid.UUID {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(r.open))
	for id := range r.open {
		ids = append(ids, id)
	}
	return ids
}

// Renew leases the open streams' watches anew and drops this process's
// other watches and every expired one. Run calls it every third of the
// lease; it is exported for tests and for callers with their own loop.
func (r *Registry) Renew(ctx context.Context) error {
	r.sync.Lock()
	defer r.sync.Unlock()
	ids := r.Watching()
	if len(ids) > 0 {
		if err := r.q.RenewJobWatches(ctx, dbgen.RenewJobWatchesParams{
			JobIds: ids, DaemonID: r.id, LeaseSeconds: r.lease.Seconds(),
		}); err != nil {
			return apperr.FromDB(err, "job watches")
		}
	}
	if _, err := r.q.DropJobWatches(ctx, dbgen.DropJobWatchesParams{DaemonID: r.id, JobIds: ids}); err != nil {
		return apperr.FromDB(err, "job watches")
	}
	return nil
}

// Run renews until ctx is done, then drops this process's watches (within
// a few seconds: shutdown must not hang on a stuck database). A failed
// renewal is logged and retried at the next tick; meanwhile streams still
// re-read on their own timer.
func (r *Registry) Run(ctx context.Context) {
	every := r.lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			clear(r.open)
			r.mu.Unlock()
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.Renew(dctx); err != nil {
				r.log.Warn("could not drop this daemon's job watches; they expire by themselves", "in", r.lease, "error", err)
			}
			cancel()
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every)
			if err := r.Renew(rctx); err != nil && ctx.Err() == nil {
				r.log.Warn("could not renew job watches; streams fall back to re-reading", "error", err)
			}
			cancel()
		}
	}
}
