package jobs_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/jobs"
	"github.com/clipper/clipper/internal/pgtest"
)

func TestCreate(t *testing.T) {
	t.Parallel()

	t.Run("YouTube", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		owner := newUser(t, b.tx)
		j, created, err := b.repo.Create(b.ctx, jobs.CreateParams{
			OwnerID:   uuid.NullUUID{UUID: owner, Valid: true},
			SourceURL: videoURL,
			Params:    json.RawMessage(` {"start": 10, "end": 20}`),
		})
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, jobs.StatusQueued, j.Status)
		require.Equal(t, jobs.SourceYouTube, j.SourceType)
		require.Equal(t, videoURL, *j.SourceURL)
		require.Nil(t, j.SourceObject)
		require.Equal(t, owner, j.OwnerID.UUID)
		require.False(t, j.APIKeyID.Valid)
		require.JSONEq(t, `{"start":10,"end":20}`, string(j.Params))
		require.Equal(t, jobs.DefaultMaxAttempts, j.MaxAttempts)
		require.Zero(t, j.Attempts)
		require.Empty(t, j.ResultKeys)
		require.Nil(t, j.ExpiresAt)
		require.WithinDuration(t, j.CreatedAt, j.RunAt, time.Second)

		got, err := b.repo.Get(b.ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, j, got)
		require.Equal(t, []statusEvent{{To: "queued"}}, statusEvents(t, b.tx, j.ID))
	})

	t.Run("Upload", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := newAPIKey(t, b.tx, uuid.NullUUID{})
		runAt := time.Now().Add(time.Hour).Truncate(time.Microsecond)
		expires := runAt.Add(time.Hour)
		j := createJob(t, b.ctx, b.repo, func(p *jobs.CreateParams) {
			p.SourceURL = ""
			p.SourceObject = "keys/" + key.String() + "/video.mp4"
			p.APIKeyID = uuid.NullUUID{UUID: key, Valid: true}
			p.Params = nil
			p.MaxAttempts = 7
			p.RunAt = &runAt
			p.ExpiresAt = &expires
		})
		require.Equal(t, jobs.SourceUpload, j.SourceType)
		require.Equal(t, "keys/"+key.String()+"/video.mp4", *j.SourceObject)
		require.Nil(t, j.SourceURL)
		require.Equal(t, key, j.APIKeyID.UUID)
		require.JSONEq(t, `{}`, string(j.Params))
		require.Equal(t, 7, j.MaxAttempts)
		require.True(t, runAt.Equal(j.RunAt))
		require.True(t, expires.Equal(*j.ExpiresAt))
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := createJob(t, b.ctx, b.repo)
		out, err := json.Marshal(j)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(out, &m))
		require.Equal(t, "queued", m["status"])
		require.Equal(t, j.ID.String(), m["id"])
		require.Nil(t, m["owner_id"])
		require.Equal(t, map[string]any{"start": float64(1), "end": float64(5)}, m["params"])
		require.Equal(t, []any{}, m["result_keys"])
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		owner := uuid.NullUUID{UUID: uuid.New(), Valid: true}
		now := time.Now()
		for name, p := range map[string]jobs.CreateParams{
			"NoSource":          {},
			"BothSources":       {SourceURL: videoURL, SourceObject: "a.mp4"},
			"FTPScheme":         {SourceURL: "ftp://example.com/a.mp4"},
			"UpperCaseScheme":   {SourceURL: "HTTPS://www.youtube.com/watch?v=x"},
			"NoScheme":          {SourceURL: "www.youtube.com/watch?v=x"},
			"JavaScript":        {SourceURL: "javascript:alert(1)"},
			"NoHost":            {SourceURL: "https:///watch"},
			"Credentials":       {SourceURL: "https://user:pw@youtube.com/watch?v=x"},
			"Space":             {SourceURL: "https://youtube.com/watch?v=a b"},
			"LongURL":           {SourceURL: "https://youtube.com/" + strings.Repeat("a", 2048)},
			"AbsoluteObject":    {SourceObject: "/etc/passwd"},
			"DotDotObject":      {SourceObject: "a/../b.mp4"},
			"EmptySegment":      {SourceObject: "a//b.mp4"},
			"ControlObject":     {SourceObject: "a\nb.mp4"},
			"LongObject":        {SourceObject: strings.Repeat("a", 1025)},
			"ParamsArray":       {SourceURL: videoURL, Params: json.RawMessage(`[1,2]`)},
			"ParamsString":      {SourceURL: videoURL, Params: json.RawMessage(`"x"`)},
			"ParamsNull":        {SourceURL: videoURL, Params: json.RawMessage(`null`)},
			"ParamsBroken":      {SourceURL: videoURL, Params: json.RawMessage(`{"a":`)},
			"ParamsTooLarge":    {SourceURL: videoURL, Params: json.RawMessage(`{"a":"` + strings.Repeat("x", 64<<10) + `"}`)},
			"MaxAttemptsLow":    {SourceURL: videoURL, MaxAttempts: -1},
			"MaxAttemptsHigh":   {SourceURL: videoURL, MaxAttempts: 101},
			"KeyWithoutScope":   {SourceURL: videoURL, IdempotencyKey: "k1"},
			"KeyTooLong":        {SourceURL: videoURL, OwnerID: owner, IdempotencyKey: strings.Repeat("k", 256)},
			"ExpiresBeforeRun":  {SourceURL: videoURL, RunAt: &now, ExpiresAt: &now},
			"KeyNotUTF8":        {SourceURL: videoURL, OwnerID: owner, IdempotencyKey: "\xff"},
			"ObjectNotUTF8":     {SourceObject: "a\xff.mp4"},
			"ObjectTrailingDir": {SourceObject: "a/"},
			"ObjectDotSegment":  {SourceObject: "a/./b.mp4"},
			"ObjectNonASCII":    {SourceObject: "vidéo.mp4"},
			"ObjectBackslash":   {SourceObject: `a\b.mp4`},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				_, _, err := b.repo.Create(b.ctx, p)
				apperrtest.RequireCode(t, err, apperr.InvalidInput)
				var n int
				require.NoError(t, b.tx.QueryRow(b.ctx, "select count(*) from jobs").Scan(&n))
				require.Zero(t, n)
			})
		}
	})

	// Input that passes the Go checks but not the database's: the error
	// still comes back coded.
	t.Run("DatabaseRefuses", func(t *testing.T) {
		t.Parallel()
		for name, p := range map[string]jobs.CreateParams{
			"UnknownOwner":  {SourceURL: videoURL, OwnerID: uuid.NullUUID{UUID: uuid.New(), Valid: true}},
			"UnknownAPIKey": {SourceURL: videoURL, APIKeyID: uuid.NullUUID{UUID: uuid.New(), Valid: true}},
			"NULInParams":   {SourceURL: videoURL, Params: json.RawMessage(`{"a":"\u0000"}`)},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				_, _, err := b.repo.Create(b.ctx, p)
				apperrtest.RequireCode(t, err, apperr.InvalidInput)
			})
		}
	})

	t.Run("IdempotentReplay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		owner := uuid.NullUUID{UUID: newUser(t, b.tx), Valid: true}
		p := jobs.CreateParams{OwnerID: owner, SourceURL: videoURL, IdempotencyKey: "req-1"}
		first, created, err := b.repo.Create(b.ctx, p)
		require.NoError(t, err)
		require.True(t, created)

		again, created, err := b.repo.Create(b.ctx, p)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, first, again)

		// The key names the first job even when the replay differs.
		p.SourceURL = videoURL + "&t=1"
		again, created, err = b.repo.Create(b.ctx, p)
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, first.ID, again.ID)

		// A replay writes no event.
		require.Len(t, statusEvents(t, b.tx, first.ID), 1)
		var n int
		require.NoError(t, b.tx.QueryRow(b.ctx, "select count(*) from jobs").Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("IdempotencyScopes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		u1 := uuid.NullUUID{UUID: newUser(t, b.tx), Valid: true}
		u2 := uuid.NullUUID{UUID: newUser(t, b.tx), Valid: true}
		k1 := uuid.NullUUID{UUID: newAPIKey(t, b.tx, uuid.NullUUID{}), Valid: true}
		k2 := uuid.NullUUID{UUID: newAPIKey(t, b.tx, uuid.NullUUID{}), Valid: true}
		k3 := uuid.NullUUID{UUID: newAPIKey(t, b.tx, u1), Valid: true}
		create := func(owner, key uuid.NullUUID) (uuid.UUID, bool) {
			j, created, err := b.repo.Create(b.ctx, jobs.CreateParams{
				OwnerID: owner, APIKeyID: key, SourceURL: videoURL, IdempotencyKey: "same",
			})
			require.NoError(t, err)
			return j.ID, created
		}
		a, created := create(u1, uuid.NullUUID{})
		require.True(t, created)
		_, created = create(u2, uuid.NullUUID{})
		require.True(t, created, "another owner's scope")
		_, created = create(uuid.NullUUID{}, k1)
		require.True(t, created, "an ownerless key is its own scope")
		_, created = create(uuid.NullUUID{}, k2)
		require.True(t, created)
		// A key with an owner shares the owner's scope.
		c, created := create(u1, k3)
		require.False(t, created)
		require.Equal(t, a, c)
	})

	t.Run("ConcurrentReplays", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		repo := jobs.New(pool)
		owner := uuid.NullUUID{UUID: newUser(t, pool), Valid: true}

		const n = 20
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			ids     = make([]uuid.UUID, n)
			created = make([]bool, n)
			errs    = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				j, c, err := repo.Create(ctx, jobs.CreateParams{
					OwnerID: owner, SourceURL: videoURL, IdempotencyKey: "concurrent",
				})
				ids[i], created[i], errs[i] = j.ID, c, err
			})
		}
		close(start)
		wg.Wait()
		var nCreated int
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
			if created[i] {
				nCreated++
			}
		}
		require.Equal(t, 1, nCreated)
		var rows, events int
		require.NoError(t, pool.QueryRow(ctx, "select count(*) from jobs").Scan(&rows))
		require.NoError(t, pool.QueryRow(ctx, "select count(*) from job_events").Scan(&events))
		require.Equal(t, 1, rows)
		require.Equal(t, 1, events)
	})

	// Under repeatable read, a replay whose snapshot predates the first
	// job cannot see it: a coded conflict, never a duplicate.
	t.Run("ReplayInOldSnapshot", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool, _ := pgtest.NewPool(t)
		owner := uuid.NullUUID{UUID: newUser(t, pool), Valid: true}
		p := jobs.CreateParams{OwnerID: owner, SourceURL: videoURL, IdempotencyKey: "rr"}

		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "set transaction isolation level repeatable read")
		require.NoError(t, err)
		var one int
		require.NoError(t, tx.QueryRow(ctx, "select 1").Scan(&one)) // takes the snapshot

		_, created, err := jobs.New(pool).Create(ctx, p)
		require.NoError(t, err)
		require.True(t, created)

		_, _, err = jobs.New(tx).Create(ctx, p)
		apperrtest.RequireCode(t, err, apperr.Conflict)
	})
}

func TestGet(t *testing.T) {
	t.Parallel()

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.repo.Get(b.ctx, uuid.New())
		apperrtest.RequireCode(t, err, apperr.NotFound)
	})
}
