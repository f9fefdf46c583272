package auth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/batcher"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// BatchLimiter is PGLimiter with group commit: concurrent takes, of one
// key or several, gathered for at most a short window (batcher.Options)
// go to the database as one statement. Each key's row is then locked and
// updated once a batch instead of once a request, so a busy key's
// requests no longer queue on its row lock one commit at a time. Every
// request gets the decision it would get from its own TakeRateLimit at
// the batch's instant, in arrival order: the first ones of a key are
// admitted while its limit allows, the rest refused.
type BatchLimiter struct {
	single *PGLimiter
	q      *dbgen.Queries
	b      *batcher.Batcher[takeCall, Decision]
}

type takeCall struct {
	key       uuid.UUID
	perPeriod int
}

// NewBatchLimiter returns a BatchLimiter over db. Close it after its
// callers have stopped.
func NewBatchLimiter(db database.DB, opts batcher.Options) *BatchLimiter {
	l := &BatchLimiter{single: NewLimiter(db), q: dbgen.New(db)}
	l.b = batcher.New(l.run, opts)
	return l
}

// Take admits one request of key keyID if it fits perPeriod requests per
// RatePeriod, judged by the database clock, through a batch.
func (l *BatchLimiter) Take(ctx context.Context, keyID uuid.UUID, perPeriod int) (Decision, error) {
	if perPeriod < 1 {
		return Decision{}, apperr.New(apperr.Internal, "rate limit must be positive")
	}
	d, err := l.b.Do(ctx, takeCall{key: keyID, perPeriod: perPeriod})
	if errors.Is(err, batcher.ErrClosed) {
		return Decision{}, apperr.Wrap(err, apperr.Unavailable, "the daemon is shutting down")
	}
	if err != nil {
		return Decision{}, apperr.FromDB(err, "rate limit")
	}
	return d, nil
}

// Flush starts a batch of every pending take now.
func (l *BatchLimiter) Flush() { l.b.Flush() }

// Pending returns how many takes wait for a batch.
func (l *BatchLimiter) Pending() int { return l.b.Pending() }

// Close decides every pending take and waits for the batches in flight.
func (l *BatchLimiter) Close() { l.b.Close() }

// takeGroup is a batch's requests of one key, in arrival order.
type takeGroup struct {
	key       uuid.UUID
	perPeriod int
	calls     []*batcher.Call[takeCall, Decision]
}

// run decides a batch: one TakeRateLimits statement for all its keys (a
// key with no GCRA row yet gets one, then the statement runs again for
// it). Requests the statement cannot decide go one by one through
// PGLimiter, which gives them their own outcome: those of a key whose
// limit changed within the batch (after the key's first request), and
// those of a key that does not exist.
func (l *BatchLimiter) run(ctx context.Context, calls []*batcher.Call[takeCall, Decision]) {
	var groups []*takeGroup
	byKey := map[uuid.UUID]*takeGroup{}
	var alone []*batcher.Call[takeCall, Decision]
	for _, c := range calls {
		g := byKey[c.In.key]
		if g == nil {
			g = &takeGroup{key: c.In.key, perPeriod: c.In.perPeriod}
			byKey[c.In.key] = g
			groups = append(groups, g)
		}
		if c.In.perPeriod != g.perPeriod {
			alone = append(alone, c)
			continue
		}
		g.calls = append(g.calls, c)
	}

	undecided, err := l.takeAll(ctx, groups)
	if err == nil && len(undecided) > 0 {
		keys := make([]uuid.UUID, len(undecided))
		for i, g := range undecided {
			keys[i] = g.key
		}
		switch err = l.q.EnsureRateLimitRows(ctx, keys); {
		case err == nil:
			undecided, err = l.takeAll(ctx, undecided)
		case batcher.ItemFault(err):
			// A key deleted since its request was authenticated fails the
			// insert's foreign key: the undecided requests go alone.
			err = nil
		}
	}
	if err != nil {
		for _, g := range undecided {
			for _, c := range g.calls {
				c.Err = err
			}
		}
		undecided = nil
	}
	for _, g := range undecided {
		alone = append(alone, g.calls...)
	}
	for _, c := range alone {
		c.Out, c.Err = l.single.Take(ctx, c.In.key, c.In.perPeriod)
	}
}

// takeAll runs TakeRateLimits for groups (a deadlock or serialization
// failure runs it again) and decides every request of the keys it
// returned. It returns the groups whose key had no row; on an error no
// request is decided and all groups are returned with it.
func (l *BatchLimiter) takeAll(ctx context.Context, groups []*takeGroup) ([]*takeGroup, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	arg := dbgen.TakeRateLimitsParams{
		KeyIds:      make([]uuid.UUID, len(groups)),
		Counts:      make([]int32, len(groups)),
		EmissionsUs: make([]int64, len(groups)),
		Period:      pgtype.Interval{Microseconds: RatePeriod.Microseconds(), Valid: true},
	}
	for i, g := range groups {
		arg.KeyIds[i] = g.key
		arg.Counts[i] = int32(len(g.calls))
		arg.EmissionsUs[i] = emissionOf(g.perPeriod).Microseconds()
	}
	var rows []dbgen.TakeRateLimitsRow
	var err error
	for retry := 0; ; retry++ {
		rows, err = l.q.TakeRateLimits(ctx, arg)
		if err == nil || !batcher.Retryable(err) || retry == batcher.MaxRetries {
			break
		}
	}
	if err != nil {
		return groups, err
	}
	taken := make(map[uuid.UUID]dbgen.TakeRateLimitsRow, len(rows))
	for _, r := range rows {
		taken[r.KeyID] = r
	}
	var undecided []*takeGroup
	for _, g := range groups {
		r, ok := taken[g.key]
		if !ok {
			undecided = append(undecided, g)
			continue
		}
		emission := emissionOf(g.perPeriod)
		for i, c := range g.calls {
			// The i-th request of the key moved its tat one emission
			// further; a refused one sees where the admitted ones left it.
			n := min(i+1, int(r.Admitted))
			c.Out = decide(i < int(r.Admitted), g.perPeriod, r.Start.Add(time.Duration(n)*emission), r.CheckedAt)
		}
	}
	return undecided, nil
}
