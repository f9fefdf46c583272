package batcher_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/batcher"
)

// hang guards a wait that must end; never an assertion about speed.
const hang = 10 * time.Second

// recorder runs batches by doubling each input, records every batch, and
// can hold a batch until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // if set, each batch waits on it
	started chan int      // if set, gets each batch's size as it starts
}

func (r *recorder) run(_ context.Context, calls []*batcher.Call[int, int]) {
	ins := make([]int, len(calls))
	for i, c := range calls {
		ins[i] = c.In
	}
	if r.started != nil {
		r.started <- len(calls)
	}
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	r.batches = append(r.batches, ins)
	r.mu.Unlock()
	for _, c := range calls {
		c.Out = 2 * c.In
	}
}

func (r *recorder) got() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.batches...)
}

type result struct {
	in, out int
	err     error
}

func doAsync(ctx context.Context, b *batcher.Batcher[int, int], in int, res chan<- result) {
	go func() {
		out, err := b.Do(ctx, in)
		res <- result{in, out, err}
	}()
}

func waitPending(t *testing.T, b *batcher.Batcher[int, int], n int) {
	t.Helper()
	require.Eventually(t, func() bool { return b.Pending() == n }, hang, time.Millisecond)
}

func TestIdleCallGoesAtOnce(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	// A window of an hour: the call can only finish if an idle batcher
	// does not wait for it.
	b := batcher.New(r.run, batcher.Options{Window: time.Hour})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	out, err := b.Do(ctx, 21)
	require.NoError(t, err)
	require.Equal(t, 42, out)
	require.Equal(t, [][]int{{21}}, r.got())
}

func TestCallsWaitingForABatchInFlightGoTogether(t *testing.T) {
	t.Parallel()
	r := &recorder{hold: make(chan struct{}), started: make(chan int, 10)}
	b := batcher.New(r.run, batcher.Options{Window: time.Hour, MaxInFlight: 1})
	defer b.Close()
	ctx := context.Background()
	res := make(chan result, 10)
	doAsync(ctx, b, 1, res)
	require.Equal(t, 1, <-r.started)
	for i := 2; i <= 4; i++ {
		doAsync(ctx, b, i, res)
		waitPending(t, b, i-1)
	}
	close(r.hold) // the first batch ends; the three waiting start at once
	outs := map[int]int{}
	for range 4 {
		x := <-res
		require.NoError(t, x.err)
		outs[x.in] = x.out
	}
	require.Equal(t, map[int]int{1: 2, 2: 4, 3: 6, 4: 8}, outs)
	require.Equal(t, [][]int{{1}, {2, 3, 4}}, r.got())
}

func TestMaxBatchSplits(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := batcher.New(r.run, batcher.Options{Manual: true, MaxBatch: 2})
	ctx := context.Background()
	res := make(chan result, 10)
	for i := 1; i <= 5; i++ {
		doAsync(ctx, b, i, res)
		waitPending(t, b, i)
	}
	b.Flush()
	for range 5 {
		require.NoError(t, (<-res).err)
	}
	b.Close()
	require.ElementsMatch(t, [][]int{{1, 2}, {3, 4}, {5}}, r.got())
}

func TestCanceledWhilePendingLeavesTheBatch(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := batcher.New(r.run, batcher.Options{Manual: true})
	res := make(chan result, 10)
	doAsync(context.Background(), b, 1, res)
	waitPending(t, b, 1)
	ctx, cancel := context.WithCancel(context.Background())
	doAsync(ctx, b, 2, res)
	waitPending(t, b, 2)
	cancel()
	x := <-res
	require.Equal(t, 2, x.in)
	require.ErrorIs(t, x.err, context.Canceled)
	waitPending(t, b, 1)
	b.Flush()
	x = <-res
	require.NoError(t, x.err)
	b.Close()
	require.Equal(t, [][]int{{1}}, r.got(), "the canceled call never ran")
}

func TestCanceledWhileRunningReturnsAtOnce(t *testing.T) {
	t.Parallel()
	r := &recorder{hold: make(chan struct{}), started: make(chan int, 1)}
	b := batcher.New(r.run, batcher.Options{Manual: true})
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan result, 1)
	doAsync(ctx, b, 5, res)
	waitPending(t, b, 1)
	b.Flush()
	<-r.started
	cancel()
	x := <-res
	require.ErrorIs(t, x.err, context.Canceled, "a caller that gives up is not held by its batch")
	require.Zero(t, x.out)
	close(r.hold)
	b.Close()
	require.Equal(t, [][]int{{5}}, r.got(), "the batch itself ran to its end")
}

func TestCloseRunsPendingAndRefusesNew(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := batcher.New(r.run, batcher.Options{Manual: true})
	res := make(chan result, 10)
	for i := 1; i <= 3; i++ {
		doAsync(context.Background(), b, i, res)
		waitPending(t, b, i)
	}
	b.Close()
	for range 3 {
		require.NoError(t, (<-res).err)
	}
	require.Equal(t, [][]int{{1, 2, 3}}, r.got())
	_, err := b.Do(context.Background(), 4)
	require.ErrorIs(t, err, batcher.ErrClosed)
}
