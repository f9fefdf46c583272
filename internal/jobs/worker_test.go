package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

// dbNowPlus says whether ts is exactly the transaction's now() plus d (a
// test transaction's now() never moves).
func dbNowPlus(t *testing.T, b *testBundle, ts *time.Time, d time.Duration) {
	t.Helper()
	require.NotNil(t, ts)
	var ok bool
	require.NoError(t, b.tx.QueryRow(b.ctx, "select $1::timestamptz = now() + $2::bigint * interval '1 microsecond'",
		*ts, d.Microseconds()).Scan(&ok))
	require.True(t, ok, "%v is not now() + %v", ts, d)
}

func TestClaim(t *testing.T) {
	t.Parallel()

	t.Run("OldestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []uuid.UUID
		for i := range 4 {
			j := createJob(t, b.ctx, b.repo)
			_, err := b.tx.Exec(b.ctx, "update jobs set created_at = created_at - $2::int * interval '1 minute' where id = $1", j.ID, 10-i)
			require.NoError(t, err)
			ids = append(ids, j.ID)
		}
		got, err := b.repo.Claim(b.ctx, "worker-1", 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		for i, j := range got {
			require.Equal(t, ids[i], j.ID)
			require.Equal(t, jobs.StatusProcessing, j.Status)
			require.Equal(t, 1, j.Attempts)
			require.Equal(t, "worker-1", *j.WorkerID)
			require.NotNil(t, j.ClaimedAt)
			require.Equal(t, j.ClaimedAt, j.LastHeartbeatAt)
			require.Equal(t, j.ClaimedAt, j.StartedAt)
			require.Nil(t, j.FinishedAt)
			require.Equal(t, []statusEvent{{To: "queued"}, {From: "queued", To: "processing", Attempt: 1, WorkerID: "worker-1"}},
				statusEvents(t, b.tx, j.ID))
		}
		got, err = b.repo.Claim(b.ctx, "worker-2", 3)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, ids[3], got[0].ID)
		got, err = b.repo.Claim(b.ctx, "worker-2", 3)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("OnlyRunnable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		later := time.Now().Add(time.Hour)
		createJob(t, b.ctx, b.repo, func(p *jobs.CreateParams) { p.RunAt = &later })
		exhausted := createJob(t, b.ctx, b.repo)
		expired := createJob(t, b.ctx, b.repo)
		canceled := createJob(t, b.ctx, b.repo)
		_, err := b.tx.Exec(b.ctx, "update jobs set attempts = max_attempts where id = $1", exhausted.ID)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, "update jobs set expires_at = now() - interval '1 second' where id = $1", expired.ID)
		require.NoError(t, err)
		_, err = b.repo.Cancel(b.ctx, canceled.ID, time.Hour)
		require.NoError(t, err)

		got, err := b.repo.Claim(b.ctx, "w", 10)
		require.NoError(t, err)
		require.Empty(t, got)

		ready := createJob(t, b.ctx, b.repo)
		got, err = b.repo.Claim(b.ctx, "w", 10)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, ready.ID, got[0].ID)
	})

	t.Run("ResetsProgressOnRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		_, err := b.repo.Progress(b.ctx, j.ID, "w1", 60)
		require.NoError(t, err)
		_, err = b.repo.Fail(b.ctx, j.ID, "w1", "network", "reset", true, 0, time.Hour)
		require.NoError(t, err)
		got, err := b.repo.Claim(b.ctx, "w2", 1)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, 2, got[0].Attempts)
		require.Zero(t, got[0].Progress)
		require.Equal(t, "w2", *got[0].WorkerID)
		require.Equal(t, j.StartedAt, got[0].StartedAt, "started_at is the first start")
		require.Equal(t, "network", *got[0].ErrorCode, "the last error stays until the job ends")
	})

	t.Run("SkipsLockedJobs", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pool, _ := pgtest.NewPool(t)
		repo := jobs.New(pool)
		for range 5 {
			createJob(t, ctx, repo)
		}
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		first, err := repo.WithDB(tx).Claim(ctx, "a", 3)
		require.NoError(t, err)
		require.Len(t, first, 3)

		// The open claim's rows are skipped, not waited for.
		second, err := repo.Claim(ctx, "b", 5)
		require.NoError(t, err)
		require.Len(t, second, 2)
		for _, s := range second {
			for _, f := range first {
				require.NotEqual(t, f.ID, s.ID)
			}
		}
		require.NoError(t, tx.Rollback(ctx))
		third, err := repo.Claim(ctx, "b", 5)
		require.NoError(t, err)
		require.Len(t, third, 3)
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createJob(t, b.ctx, b.repo)
		for _, c := range []struct {
			worker string
			n      int
		}{{"", 1}, {strings.Repeat("w", 256), 1}, {"w", 0}, {"w", -1}, {"w", jobs.MaxClaim + 1}, {"\xff", 1}} {
			_, err := b.repo.Claim(b.ctx, c.worker, c.n)
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
		}
		page, err := b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "", 0)
		require.NoError(t, err)
		require.Len(t, page.Jobs, 1)
	})
}

// heldCases are the ways a worker-held operation can find its job not
// held by the worker. Each returns the job id, the worker to use and the
// wanted code; nothing may change.
func heldCases() map[string]func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
	return map[string]func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code){
		"NoSuchJob": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			return uuid.New(), "w1", apperr.NotFound
		},
		"Queued": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			return createJob(t, b.ctx, b.repo).ID, "w1", apperr.InvalidTransition
		},
		"OtherWorker": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			return claimOnly(t, b, "w2").ID, "w1", apperr.InvalidTransition
		},
		"Done": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			j := claimOnly(t, b, "w1")
			_, err := b.repo.Complete(b.ctx, j.ID, "w1", nil, time.Hour)
			require.NoError(t, err)
			return j.ID, "w1", apperr.InvalidTransition
		},
		"Failed": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			j := claimOnly(t, b, "w1")
			_, err := b.repo.Fail(b.ctx, j.ID, "w1", "bad_input", "", false, 0, time.Hour)
			require.NoError(t, err)
			return j.ID, "w1", apperr.InvalidTransition
		},
		"Canceled": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			j := claimOnly(t, b, "w1")
			_, err := b.repo.Cancel(b.ctx, j.ID, time.Hour)
			require.NoError(t, err)
			return j.ID, "w1", apperr.InvalidTransition
		},
		"Requeued": func(t *testing.T, b *testBundle) (uuid.UUID, string, apperr.Code) {
			j := claimOnly(t, b, "w1")
			_, err := b.repo.Fail(b.ctx, j.ID, "w1", "network", "", true, time.Hour, time.Hour)
			require.NoError(t, err)
			return j.ID, "w1", apperr.InvalidTransition
		},
	}
}

func TestHeldOperationsRefused(t *testing.T) {
	t.Parallel()
	ops := map[string]func(b *testBundle, id uuid.UUID, worker string) error{
		"Heartbeat": func(b *testBundle, id uuid.UUID, w string) error {
			_, err := b.repo.Heartbeat(b.ctx, id, w)
			return err
		},
		"Progress": func(b *testBundle, id uuid.UUID, w string) error {
			_, err := b.repo.Progress(b.ctx, id, w, 50)
			return err
		},
		"Complete": func(b *testBundle, id uuid.UUID, w string) error {
			_, err := b.repo.Complete(b.ctx, id, w, []string{id.String() + "/r.mp4"}, time.Hour)
			return err
		},
		"FailRetryable": func(b *testBundle, id uuid.UUID, w string) error {
			_, err := b.repo.Fail(b.ctx, id, w, "x", "y", true, 0, time.Hour)
			return err
		},
		"FailFinal": func(b *testBundle, id uuid.UUID, w string) error {
			_, err := b.repo.Fail(b.ctx, id, w, "x", "y", false, 0, time.Hour)
			return err
		},
	}
	for opName, op := range ops {
		for caseName, mk := range heldCases() {
			t.Run(opName+"/"+caseName, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				id, worker, code := mk(t, b)
				var before rowState
				if code != apperr.NotFound {
					before = stateOf(t, b.tx, id)
				}
				apperrtest.RequireCode(t, op(b, id, worker), code)
				if code != apperr.NotFound {
					require.Equal(t, before, stateOf(t, b.tx, id))
				}
			})
		}
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := claimOnly(t, b, "w1")
	_, err := b.tx.Exec(b.ctx, "update jobs set last_heartbeat_at = now() - interval '5 minutes' where id = $1", j.ID)
	require.NoError(t, err)
	events := stateOf(t, b.tx, j.ID).Events

	got, err := b.repo.Heartbeat(b.ctx, j.ID, "w1")
	require.NoError(t, err)
	require.Equal(t, jobs.StatusProcessing, got.Status)
	dbNowPlus(t, b, got.LastHeartbeatAt, 0)
	require.Equal(t, events, stateOf(t, b.tx, j.ID).Events, "a heartbeat writes no event")

	_, err = b.repo.Heartbeat(b.ctx, j.ID, "")
	apperrtest.RequireCode(t, err, apperr.InvalidInput)
}

func TestProgress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j := claimOnly(t, b, "w1")
	_, err := b.tx.Exec(b.ctx, "update jobs set last_heartbeat_at = now() - interval '5 minutes' where id = $1", j.ID)
	require.NoError(t, err)

	got, err := b.repo.Progress(b.ctx, j.ID, "w1", 40)
	require.NoError(t, err)
	require.Equal(t, 40, got.Progress)
	dbNowPlus(t, b, got.LastHeartbeatAt, 0)
	_, err = b.repo.Progress(b.ctx, j.ID, "w1", 40)
	require.NoError(t, err)
	_, err = b.repo.Progress(b.ctx, j.ID, "w1", 100)
	require.NoError(t, err)
	// An unchanged value writes no event.
	require.Equal(t, []string{"status", "status", "progress", "progress"}, eventTypes(t, b.tx, j.ID))
	var data []string
	rows, err := b.tx.Query(b.ctx, "select data::text from job_events where job_id = $1 and type = 'progress' order by ts, id", j.ID)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		data = append(data, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{`{"progress": 40}`, `{"progress": 100}`}, data)

	before := stateOf(t, b.tx, j.ID)
	for _, pct := range []int{-1, 101} {
		_, err = b.repo.Progress(b.ctx, j.ID, "w1", pct)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	}
	_, err = b.repo.Progress(b.ctx, j.ID, "", 5)
	apperrtest.RequireCode(t, err, apperr.InvalidInput)
	require.Equal(t, before, stateOf(t, b.tx, j.ID))
}

func TestComplete(t *testing.T) {
	t.Parallel()

	t.Run("Done", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		keys := []string{j.ID.String() + "/clips/a.mp4", j.ID.String() + "/clips/b.mp4"}
		got, err := b.repo.Complete(b.ctx, j.ID, "w1", keys, 24*time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusDone, got.Status)
		require.Equal(t, keys, got.ResultKeys)
		require.Equal(t, 100, got.Progress)
		require.NotNil(t, got.FinishedAt)
		dbNowPlus(t, b, got.ExpiresAt, 24*time.Hour)
		require.Equal(t, []statusEvent{
			{To: "queued"},
			{From: "queued", To: "processing", Attempt: 1, WorkerID: "w1"},
			{From: "processing", To: "done", Attempt: 1, WorkerID: "w1", Results: keys},
		}, statusEvents(t, b.tx, j.ID))
		// The forced progress of 100 rides on the status event alone.
		require.Equal(t, []string{"status", "status", "status"}, eventTypes(t, b.tx, j.ID))
	})

	t.Run("NoResults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		got, err := b.repo.Complete(b.ctx, j.ID, "w1", nil, 0)
		require.NoError(t, err)
		require.Equal(t, []string{}, got.ResultKeys)
		dbNowPlus(t, b, got.ExpiresAt, 0)
	})

	// A job that failed an attempt and then succeeds ends without error
	// fields (jobs_done_check); the error stays in its events.
	t.Run("AfterRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		_, err := b.repo.Fail(b.ctx, j.ID, "w1", "network", "timeout", true, 0, time.Hour)
		require.NoError(t, err)
		_, err = b.repo.Claim(b.ctx, "w2", 1)
		require.NoError(t, err)
		got, err := b.repo.Complete(b.ctx, j.ID, "w2", []string{j.ID.String() + "/r"}, time.Hour)
		require.NoError(t, err)
		require.Nil(t, got.ErrorCode)
		require.Nil(t, got.ErrorMessage)
		require.Equal(t, 2, got.Attempts)
		ev := statusEvents(t, b.tx, j.ID)
		require.Equal(t, statusEvent{From: "processing", To: "queued", Attempt: 1, WorkerID: "w1", ErrorCode: "network", ErrorMsg: "timeout"}, ev[2])
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		before := stateOf(t, b.tx, j.ID)
		tooMany := make([]string, jobs.MaxResultKeys+1)
		for i := range tooMany {
			tooMany[i] = "k"
		}
		for name, keys := range map[string][]string{
			"TooMany": tooMany, "Empty": {""}, "TooLong": {strings.Repeat("k", 1025)}, "NotUTF8": {"\xff"},
		} {
			_, err := b.repo.Complete(b.ctx, j.ID, "w1", keys, time.Hour)
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
			require.Equal(t, before, stateOf(t, b.tx, j.ID), name)
		}
		_, err := b.repo.Complete(b.ctx, j.ID, "w1", nil, -time.Second)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = b.repo.Complete(b.ctx, j.ID, "", nil, time.Hour)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		require.Equal(t, before, stateOf(t, b.tx, j.ID))
	})
}

func TestFail(t *testing.T) {
	t.Parallel()

	t.Run("RetryableWithAttemptsLeft", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		got, err := b.repo.Fail(b.ctx, j.ID, "w1", "network", "connection reset", true, 30*time.Second, time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, got.Status)
		require.Nil(t, got.WorkerID)
		require.Nil(t, got.FinishedAt)
		require.Nil(t, got.ExpiresAt)
		require.Equal(t, 1, got.Attempts)
		require.Equal(t, "network", *got.ErrorCode)
		require.Equal(t, "connection reset", *got.ErrorMessage)
		dbNowPlus(t, b, &got.RunAt, 30*time.Second)
		require.Equal(t, statusEvent{From: "processing", To: "queued", Attempt: 1, WorkerID: "w1", ErrorCode: "network", ErrorMsg: "connection reset"},
			statusEvents(t, b.tx, j.ID)[2])

		// Not runnable before the delay.
		claimed, err := b.repo.Claim(b.ctx, "w2", 1)
		require.NoError(t, err)
		require.Empty(t, claimed)
	})

	t.Run("RetryableExhausted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1", func(p *jobs.CreateParams) { p.MaxAttempts = 2 })
		for attempt := 1; attempt <= 2; attempt++ {
			if attempt > 1 {
				c, err := b.repo.Claim(b.ctx, "w1", 1)
				require.NoError(t, err)
				require.Len(t, c, 1)
			}
			got, err := b.repo.Fail(b.ctx, j.ID, "w1", "network", "", true, 0, time.Hour)
			require.NoError(t, err)
			require.Equal(t, attempt, got.Attempts)
			if attempt < 2 {
				require.Equal(t, jobs.StatusQueued, got.Status)
				continue
			}
			require.Equal(t, jobs.StatusFailed, got.Status)
			require.Equal(t, "w1", *got.WorkerID)
			require.Nil(t, got.ErrorMessage)
			require.NotNil(t, got.FinishedAt)
			dbNowPlus(t, b, got.ExpiresAt, time.Hour)
		}
		c, err := b.repo.Claim(b.ctx, "w1", 1)
		require.NoError(t, err)
		require.Empty(t, c)
	})

	t.Run("NotRetryable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1", func(p *jobs.CreateParams) { p.MaxAttempts = 5 })
		got, err := b.repo.Fail(b.ctx, j.ID, "w1", "video_unavailable", "private video", false, time.Minute, 2*time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusFailed, got.Status)
		dbNowPlus(t, b, got.ExpiresAt, 2*time.Hour)
		require.Equal(t, statusEvent{From: "processing", To: "failed", Attempt: 1, WorkerID: "w1",
			ErrorCode: "video_unavailable", ErrorMsg: "private video"}, statusEvents(t, b.tx, j.ID)[2])
	})

	// A worker must always be able to report: a long or malformed message
	// is stored cut and cleaned, not refused.
	t.Run("MessageMadeStorable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		msg := "a\x00b\xffc" + strings.Repeat("é", 5000)
		got, err := b.repo.Fail(b.ctx, j.ID, "w1", "crash", msg, false, 0, time.Hour)
		require.NoError(t, err)
		want := []rune("ab\uFFFDc" + strings.Repeat("é", 5000))[:jobs.MaxErrorMessageLen]
		require.Equal(t, string(want), *got.ErrorMessage)
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		before := stateOf(t, b.tx, j.ID)
		for name, f := range map[string]func() error{
			"NoCode": func() error {
				_, err := b.repo.Fail(b.ctx, j.ID, "w1", "", "m", true, 0, time.Hour)
				return err
			},
			"LongCode": func() error {
				_, err := b.repo.Fail(b.ctx, j.ID, "w1", strings.Repeat("c", 101), "m", true, 0, time.Hour)
				return err
			},
			"NegativeDelay": func() error {
				_, err := b.repo.Fail(b.ctx, j.ID, "w1", "c", "m", true, -time.Second, time.Hour)
				return err
			},
			"NegativeRetention": func() error {
				_, err := b.repo.Fail(b.ctx, j.ID, "w1", "c", "m", false, 0, -time.Hour)
				return err
			},
			"NoWorker": func() error {
				_, err := b.repo.Fail(b.ctx, j.ID, "", "c", "m", false, 0, time.Hour)
				return err
			},
		} {
			apperrtest.RequireCode(t, f(), apperr.InvalidInput)
			require.Equal(t, before, stateOf(t, b.tx, j.ID), name)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()

	t.Run("Queued", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := createJob(t, b.ctx, b.repo)
		got, err := b.repo.Cancel(b.ctx, j.ID, time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusCanceled, got.Status)
		require.NotNil(t, got.FinishedAt)
		dbNowPlus(t, b, got.ExpiresAt, time.Hour)
		require.Equal(t, statusEvent{From: "queued", To: "canceled"}, statusEvents(t, b.tx, j.ID)[1])
	})

	t.Run("Processing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		got, err := b.repo.Cancel(b.ctx, j.ID, time.Hour)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusCanceled, got.Status)
		require.Equal(t, "w1", *got.WorkerID)
		// The worker learns at its next heartbeat.
		_, err = b.repo.Heartbeat(b.ctx, j.ID, "w1")
		apperrtest.RequireCode(t, err, apperr.InvalidTransition)
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		for name, mk := range heldCases() {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				id, _, code := mk(t, b)
				status := jobs.Status("")
				if code != apperr.NotFound {
					j, err := b.repo.Get(b.ctx, id)
					require.NoError(t, err)
					status = j.Status
				}
				if !status.Final() && code != apperr.NotFound {
					return // queued and processing can be canceled
				}
				var before rowState
				if code != apperr.NotFound {
					before = stateOf(t, b.tx, id)
				}
				_, err := b.repo.Cancel(b.ctx, id, time.Hour)
				apperrtest.RequireCode(t, err, code)
				if code != apperr.NotFound {
					require.Equal(t, before, stateOf(t, b.tx, id))
				}
			})
		}
	})

	t.Run("NegativeRetention", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := createJob(t, b.ctx, b.repo)
		_, err := b.repo.Cancel(b.ctx, j.ID, -time.Second)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	})

	// A job another transaction is changing, with lock_timeout set: a
	// coded conflict, and nothing changes.
	t.Run("LockedConflict", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		repo := jobs.New(pool)
		j := createJob(t, ctx, repo)

		holder, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer holder.Rollback(ctx) //nolint:errcheck
		_, err = holder.Exec(ctx, "select 1 from jobs where id = $1 for update", j.ID)
		require.NoError(t, err)

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "set local lock_timeout = '100ms'")
		require.NoError(t, err)
		_, err = repo.WithDB(tx).Cancel(ctx, j.ID, time.Hour)
		apperrtest.RequireCode(t, err, apperr.Conflict)
		require.NoError(t, tx.Rollback(ctx))
		require.NoError(t, holder.Rollback(ctx))

		got, err := repo.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, jobs.StatusQueued, got.Status)
	})
}

func TestRequeueStale(t *testing.T) {
	t.Parallel()

	t.Run("RequeuesOrFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		left := createJob(t, b.ctx, b.repo)
		last := createJob(t, b.ctx, b.repo, func(p *jobs.CreateParams) { p.MaxAttempts = 1 })
		fresh := createJob(t, b.ctx, b.repo)
		claimed, err := b.repo.Claim(b.ctx, "w1", 10)
		require.NoError(t, err)
		require.Len(t, claimed, 3)
		_, err = b.tx.Exec(b.ctx, "update jobs set last_heartbeat_at = now() - interval '10 minutes' where id = any($1)",
			[]uuid.UUID{left.ID, last.ID})
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, "update jobs set last_heartbeat_at = now() - interval '4 minutes' where id = $1", fresh.ID)
		require.NoError(t, err)
		freshBefore := stateOf(t, b.tx, fresh.ID)

		got, err := b.repo.RequeueStale(b.ctx, 5*time.Minute, 10, time.Hour)
		require.NoError(t, err)
		require.Len(t, got, 2)
		byID := map[uuid.UUID]jobs.Job{got[0].ID: got[0], got[1].ID: got[1]}

		q := byID[left.ID]
		require.Equal(t, jobs.StatusQueued, q.Status)
		require.Nil(t, q.WorkerID)
		require.Equal(t, "heartbeat_timeout", *q.ErrorCode)
		require.Nil(t, q.ExpiresAt)
		dbNowPlus(t, b, &q.RunAt, 0)
		require.Equal(t, statusEvent{From: "processing", To: "queued", Attempt: 1, WorkerID: "w1", ErrorCode: "heartbeat_timeout",
			ErrorMsg: "the worker stopped sending heartbeats"}, statusEvents(t, b.tx, left.ID)[2])

		f := byID[last.ID]
		require.Equal(t, jobs.StatusFailed, f.Status)
		require.Equal(t, "heartbeat_timeout", *f.ErrorCode)
		dbNowPlus(t, b, f.ExpiresAt, time.Hour)

		require.Equal(t, freshBefore, stateOf(t, b.tx, fresh.ID))

		// The silent worker can no longer finish the requeued job.
		_, err = b.repo.Complete(b.ctx, left.ID, "w1", nil, time.Hour)
		apperrtest.RequireCode(t, err, apperr.InvalidTransition)
		again, err := b.repo.Claim(b.ctx, "w2", 10)
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Equal(t, left.ID, again[0].ID)
		require.Equal(t, 2, again[0].Attempts)
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			createJob(t, b.ctx, b.repo)
		}
		_, err := b.repo.Claim(b.ctx, "w1", 10)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, "update jobs set last_heartbeat_at = now() - interval '1 hour'")
		require.NoError(t, err)
		got, err := b.repo.RequeueStale(b.ctx, time.Minute, 2, time.Hour)
		require.NoError(t, err)
		require.Len(t, got, 2)
		got, err = b.repo.RequeueStale(b.ctx, time.Minute, 10, time.Hour)
		require.NoError(t, err)
		require.Len(t, got, 3)
		got, err = b.repo.RequeueStale(b.ctx, time.Minute, 10, time.Hour)
		require.NoError(t, err)
		require.Empty(t, got)
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, c := range []struct {
			older, retention time.Duration
			limit            int
		}{{0, time.Hour, 1}, {time.Minute, -1, 1}, {time.Minute, time.Hour, 0}, {time.Minute, time.Hour, jobs.MaxClaim + 1}} {
			_, err := b.repo.RequeueStale(b.ctx, c.older, c.limit, c.retention)
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
		}
	})
}
