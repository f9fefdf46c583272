package daemon

import (
	"context"

	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
)

// groupCommit returns the group commits of single job creates and event
// appends, or nils when CLIPPER_GROUP_COMMIT_WINDOW is 0. They are closed
// (pending batches committed) with the background work: after the HTTP
// server has drained and before the pool closes.
func (f *features) groupCommit() (*jobs.GroupCommit, *events.GroupCommit) {
	w := f.cfg.GroupCommitWindow
	if w <= 0 {
		return nil, nil
	}
	// A batch answers requests: it has their deadline, and takes its
	// connection within the acquire timeout like every request path.
	opts := batcher.Options{Window: w, Timeout: f.cfg.RequestTimeout}
	creates := jobs.NewGroupCommit(f.db, jobs.GroupCommitOptions{Options: opts})
	appends := events.NewGroupCommit(f.db, events.GroupCommitOptions{Options: opts})
	f.background("group commit", func(ctx context.Context) {
		<-ctx.Done()
		creates.Close()
		appends.Close()
	})
	f.log.Info("group commit on", "window", w)
	return creates, appends
}

// rateLimiter returns the rate limiter, on the rate-limit pool: with group
// commit on, concurrent takes share one statement (auth.BatchLimiter), so a
// busy key's row is locked and updated once a batch, not once a request.
func (f *features) rateLimiter() auth.Limiter {
	w := f.cfg.GroupCommitWindow
	if w <= 0 {
		return auth.NewLimiter(f.limitDB)
	}
	l := auth.NewBatchLimiter(f.limitDB, batcher.Options{Window: w, Timeout: f.cfg.RequestTimeout})
	f.background("rate limit group commit", func(ctx context.Context) {
		<-ctx.Done()
		l.Close()
	})
	return l
}
