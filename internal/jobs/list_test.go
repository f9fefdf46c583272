package jobs_test

import (
	"bytes"
	"encoding/base64"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/jobs"
)

// collect pages through a listing and returns the ids in order and the
// page sizes.
func collect(t *testing.T, list func(jobs.Cursor) (jobs.Page, error)) ([]uuid.UUID, []int) {
	t.Helper()
	var (
		ids   []uuid.UUID
		sizes []int
		after jobs.Cursor
	)
	for range 100 {
		page, err := list(after)
		require.NoError(t, err)
		sizes = append(sizes, len(page.Jobs))
		for _, j := range page.Jobs {
			ids = append(ids, j.ID)
		}
		if page.Next == "" {
			return ids, sizes
		}
		parsed, err := jobs.ParseCursor(string(page.Next))
		require.NoError(t, err)
		after = parsed
	}
	t.Fatal("listing does not end")
	return nil, nil
}

func TestListByStatus(t *testing.T) {
	t.Parallel()

	// Jobs created in one transaction share created_at; the id breaks the
	// tie, so paging neither repeats nor skips.
	t.Run("PagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var want []uuid.UUID
		for range 23 {
			want = append(want, createJob(t, b.ctx, b.repo).ID)
		}
		// Three more, older by an hour, must come last.
		var older []uuid.UUID
		for range 3 {
			j := createJob(t, b.ctx, b.repo)
			_, err := b.tx.Exec(b.ctx, "update jobs set created_at = created_at - interval '1 hour' where id = $1", j.ID)
			require.NoError(t, err)
			older = append(older, j.ID)
		}
		sortDesc := func(ids []uuid.UUID) {
			slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(b[:], a[:]) })
		}
		sortDesc(want)
		sortDesc(older)
		want = append(want, older...)

		got, sizes := collect(t, func(c jobs.Cursor) (jobs.Page, error) {
			return b.repo.ListByStatus(b.ctx, jobs.StatusQueued, c, 5)
		})
		require.Equal(t, want, got)
		require.Equal(t, []int{5, 5, 5, 5, 5, 1}, sizes)

		// Other statuses are not listed.
		claimed, err := b.repo.Claim(b.ctx, "w", 2)
		require.NoError(t, err)
		page, err := b.repo.ListByStatus(b.ctx, jobs.StatusProcessing, "", 0)
		require.NoError(t, err)
		require.Len(t, page.Jobs, 2)
		require.ElementsMatch(t, []uuid.UUID{claimed[0].ID, claimed[1].ID}, []uuid.UUID{page.Jobs[0].ID, page.Jobs[1].ID})
		require.Empty(t, page.Next)
		got, _ = collect(t, func(c jobs.Cursor) (jobs.Page, error) {
			return b.repo.ListByStatus(b.ctx, jobs.StatusQueued, c, 0)
		})
		require.Len(t, got, 24)
	})

	t.Run("ExactPageHasNoNext", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 4 {
			createJob(t, b.ctx, b.repo)
		}
		page, err := b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "", 4)
		require.NoError(t, err)
		require.Len(t, page.Jobs, 4)
		require.Empty(t, page.Next)
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		page, err := b.repo.ListByStatus(b.ctx, jobs.StatusFailed, "", 10)
		require.NoError(t, err)
		require.Empty(t, page.Jobs)
		require.NotNil(t, page.Jobs)
		require.Empty(t, page.Next)
	})

	t.Run("LimitCapped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tx.Exec(b.ctx, `insert into jobs (source_type, source_url)
			select 'youtube', 'https://youtu.be/x' from generate_series(1, $1::int)`, jobs.MaxListLimit+5)
		require.NoError(t, err)
		page, err := b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "", 100000)
		require.NoError(t, err)
		require.Len(t, page.Jobs, jobs.MaxListLimit)
		require.NotEmpty(t, page.Next)
		page, err = b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "", 0)
		require.NoError(t, err)
		require.Len(t, page.Jobs, jobs.DefaultListLimit)
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.repo.ListByStatus(b.ctx, "running", "", 10)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "", -1)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		_, err = b.repo.ListByStatus(b.ctx, jobs.StatusQueued, "garbage!", 10)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
	})
}

func TestParseCursor(t *testing.T) {
	t.Parallel()
	valid := make([]byte, 25)
	valid[0] = 1
	enc := base64.RawURLEncoding.EncodeToString
	wrongVersion := slices.Clone(valid)
	wrongVersion[0] = 2

	c, err := jobs.ParseCursor(enc(valid))
	require.NoError(t, err)
	require.Equal(t, jobs.Cursor(enc(valid)), c)
	c, err = jobs.ParseCursor("")
	require.NoError(t, err)
	require.Empty(t, c)

	for name, s := range map[string]string{
		"NotBase64":    "garbage!",
		"Short":        enc(valid[:24]),
		"Long":         enc(append(slices.Clone(valid), 0)),
		"WrongVersion": enc(wrongVersion),
		"Padded":       base64.URLEncoding.EncodeToString(valid[:24]),
	} {
		_, err := jobs.ParseCursor(s)
		apperrtest.RequireCode(t, err, apperr.InvalidInput)
		require.Contains(t, apperr.EnvelopeOf(err).Message, "cursor", name)
	}
}

func TestListByOwnerAndAPIKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u1 := uuid.NullUUID{UUID: newUser(t, b.tx), Valid: true}
	u2 := uuid.NullUUID{UUID: newUser(t, b.tx), Valid: true}
	ownerless := uuid.NullUUID{UUID: newAPIKey(t, b.tx, uuid.NullUUID{}), Valid: true}
	owned := uuid.NullUUID{UUID: newAPIKey(t, b.tx, u1), Valid: true}

	mk := func(owner, key uuid.NullUUID) uuid.UUID {
		return createJob(t, b.ctx, b.repo, func(p *jobs.CreateParams) { p.OwnerID, p.APIKeyID = owner, key }).ID
	}
	u1Direct := mk(u1, uuid.NullUUID{})
	u1ByKey := mk(u1, owned)
	u2Job := mk(u2, uuid.NullUUID{})
	byOwnerless := []uuid.UUID{mk(uuid.NullUUID{}, ownerless), mk(uuid.NullUUID{}, ownerless), mk(uuid.NullUUID{}, ownerless)}
	mk(uuid.NullUUID{}, uuid.NullUUID{})

	got, sizes := collect(t, func(c jobs.Cursor) (jobs.Page, error) { return b.repo.ListByOwner(b.ctx, u1.UUID, c, 1) })
	require.ElementsMatch(t, []uuid.UUID{u1Direct, u1ByKey}, got)
	require.Equal(t, []int{1, 1}, sizes)

	got, _ = collect(t, func(c jobs.Cursor) (jobs.Page, error) { return b.repo.ListByOwner(b.ctx, u2.UUID, c, 0) })
	require.Equal(t, []uuid.UUID{u2Job}, got)

	got, sizes = collect(t, func(c jobs.Cursor) (jobs.Page, error) { return b.repo.ListByAPIKey(b.ctx, ownerless.UUID, c, 2) })
	require.ElementsMatch(t, byOwnerless, got)
	require.Equal(t, []int{2, 1}, sizes)

	got, _ = collect(t, func(c jobs.Cursor) (jobs.Page, error) { return b.repo.ListByAPIKey(b.ctx, owned.UUID, c, 0) })
	require.Equal(t, []uuid.UUID{u1ByKey}, got)

	page, err := b.repo.ListByOwner(b.ctx, uuid.New(), "", 0)
	require.NoError(t, err)
	require.Empty(t, page.Jobs)

	_, err = b.repo.ListByOwner(b.ctx, u1.UUID, "%%%", 0)
	apperrtest.RequireCode(t, err, apperr.InvalidInput)
	_, err = b.repo.ListByAPIKey(b.ctx, ownerless.UUID, "", -5)
	apperrtest.RequireCode(t, err, apperr.InvalidInput)
}
