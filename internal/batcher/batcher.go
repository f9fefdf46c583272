// Package batcher gathers concurrent single calls into batches that one
// function runs together, as a database's group commit gathers commits
// into one WAL flush: a call to an idle batcher starts its batch at once;
// calls that arrive while a batch is in flight wait for it to finish, or
// at most a short window, and then go together.
package batcher

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("batcher is closed")

// Options tune a Batcher. Zero values take the defaults.
type Options struct {
	// Window is the longest a call waits for others while a batch is in
	// flight before it starts a batch of its own (default 1 ms). A call to
	// an idle batcher never waits.
	Window time.Duration
	// MaxBatch bounds one batch (default 128); a full batch starts at once.
	MaxBatch int
	// MaxInFlight bounds the batches running at once (default 4).
	MaxInFlight int
	// Timeout bounds one batch's run (default 10 s). Batches run on their
	// own context: one caller giving up must not cancel the others.
	Timeout time.Duration
	// Manual starts batches only on Flush and Close, so that tests decide
	// exactly which calls share a batch.
	Manual bool
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 128
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
}

// Call is one caller's request and, once its batch has run, its outcome.
type Call[T, R any] struct {
	In  T
	Out R
	Err error

	done chan struct{}
}

// Func runs one batch and sets Out or Err on every call. It returns only
// when every outcome is final (committed or not).
type Func[T, R any] func(ctx context.Context, calls []*Call[T, R])

// Batcher runs calls in batches through one Func.
type Batcher[T, R any] struct {
	run  Func[T, R]
	opts Options

	mu       sync.Mutex
	pending  []*Call[T, R]
	timer    *time.Timer
	due      bool // the window of the oldest pending call has passed
	inFlight int
	closed   bool
	running  sync.WaitGroup
}

// New returns a Batcher that runs batches with run.
func New[T, R any](run Func[T, R], opts Options) *Batcher[T, R] {
	opts.defaults()
	return &Batcher[T, R]{run: run, opts: opts}
}

// Do adds in to a batch and returns its outcome; a result is always one
// that committed. If ctx ends first, Do returns ctx's error at once: a
// call still waiting for a batch leaves it and nothing of it is written;
// a call whose batch is already running may still commit, as a single
// write whose caller gives up during its commit may. The others of the
// batch are not affected either way.
func (b *Batcher[T, R]) Do(ctx context.Context, in T) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	c := &Call[T, R]{In: in, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return zero, ErrClosed
	}
	b.pending = append(b.pending, c)
	b.kickLocked()
	b.mu.Unlock()

	select {
	case <-c.done:
		return c.Out, c.Err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if i := slices.Index(b.pending, c); i >= 0 {
		b.pending = slices.Delete(b.pending, i, i+1)
	}
	b.mu.Unlock()
	return zero, ctx.Err()
}

// Pending returns how many calls wait for a batch (for tests).
func (b *Batcher[T, R]) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Flush starts batches of every pending call now, whatever the window and
// the in-flight bound.
func (b *Batcher[T, R]) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) > 0 {
		b.startLocked()
	}
}

// Close runs every pending call, waits for all batches and refuses new
// calls. Close it after the callers have stopped (the HTTP server has
// drained) and before the database pool closes.
func (b *Batcher[T, R]) Close() {
	b.mu.Lock()
	b.closed = true
	for len(b.pending) > 0 {
		b.startLocked()
	}
	b.mu.Unlock()
	b.running.Wait()
}

// kickLocked starts the batches that are due: at once when none is in
// flight, else when the window of the oldest pending call has passed or a
// batch is full.
func (b *Batcher[T, R]) kickLocked() {
	if b.opts.Manual || b.closed {
		return
	}
	for len(b.pending) > 0 && b.inFlight < b.opts.MaxInFlight {
		if b.inFlight > 0 && !b.due && len(b.pending) < b.opts.MaxBatch {
			if b.timer == nil {
				b.timer = time.AfterFunc(b.opts.Window, b.windowPassed)
			}
			return
		}
		b.startLocked()
	}
}

func (b *Batcher[T, R]) windowPassed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	if len(b.pending) > 0 {
		b.due = true
		b.kickLocked()
	}
}

// startLocked runs the oldest pending calls, up to MaxBatch, as one batch.
func (b *Batcher[T, R]) startLocked() {
	n := min(len(b.pending), b.opts.MaxBatch)
	batch := slices.Clone(b.pending[:n])
	b.pending = slices.Delete(b.pending, 0, n)
	b.due = false
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.inFlight++
	b.running.Add(1)
	go b.exec(batch)
}

func (b *Batcher[T, R]) exec(batch []*Call[T, R]) {
	defer b.running.Done()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	b.run(ctx, batch)
	cancel()
	for _, c := range batch {
		close(c.done)
	}
	b.mu.Lock()
	b.inFlight--
	b.kickLocked()
	b.mu.Unlock()
}
