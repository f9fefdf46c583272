package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/jobs"
)

// requireCheckViolation asserts that the database itself refused a write
// with the named constraint.
func requireCheckViolation(t *testing.T, err error, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a database error, got %v", err)
	require.Equal(t, "23514", pgErr.Code, pgErr.Message)
	require.Equal(t, constraint, pgErr.ConstraintName)
}

// A job's source lies in the folder of the principal it belongs to: the
// owner's, else the ownerless key's. The repository refuses anything else
// with invalid_input, and the database refuses it from any writer.
func TestSourceFolder(t *testing.T) {
	t.Parallel()

	b := setup(t)
	userA, userB := newUser(t, b.tx), newUser(t, b.tx)
	keyA := newAPIKey(t, b.tx, uuid.NullUUID{UUID: userA, Valid: true})
	ownerless, other := newAPIKey(t, b.tx, uuid.NullUUID{}), newAPIKey(t, b.tx, uuid.NullUUID{})
	a := uuid.NullUUID{UUID: userA, Valid: true}
	key := func(id uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: id, Valid: true} }

	require.Equal(t, userA.String()+"/", jobs.SourceFolder(a, key(keyA)))
	require.Equal(t, "keys/"+ownerless.String()+"/", jobs.SourceFolder(uuid.NullUUID{}, key(ownerless)))
	require.Empty(t, jobs.SourceFolder(uuid.NullUUID{}, uuid.NullUUID{}))

	for _, c := range []struct {
		name         string
		owner, key   uuid.NullUUID
		source       string
		allowed      bool
		dbConstraint string // the constraint that refuses it when Go is bypassed
	}{
		{"OwnerInOwnFolder", a, key(keyA), userA.String() + "/in.mp4", true, ""},
		{"OwnerDeeper", a, key(keyA), userA.String() + "/x/y (1).mp4", true, ""},
		{"OwnerOnAnotherUsersUpload", a, key(keyA), userB.String() + "/private.mp4", false, "jobs_source_object_folder_check"},
		{"OwnerEscapesWithDotDot", a, key(keyA), userA.String() + "/../" + userB.String() + "/private.mp4", false, "jobs_source_object_folder_check"},
		{"OwnerInItsKeysFolder", a, key(keyA), "keys/" + keyA.String() + "/in.mp4", false, "jobs_source_object_folder_check"},
		{"OwnerPrefixWithoutSlash", a, key(keyA), userA.String() + "x/in.mp4", false, "jobs_source_object_folder_check"},
		{"KeyInOwnFolder", uuid.NullUUID{}, key(ownerless), "keys/" + ownerless.String() + "/in.mp4", true, ""},
		{"KeyInAnotherKeysFolder", uuid.NullUUID{}, key(ownerless), "keys/" + other.String() + "/in.mp4", false, "jobs_source_object_folder_check"},
		{"KeyInAUsersFolder", uuid.NullUUID{}, key(ownerless), userB.String() + "/private.mp4", false, "jobs_source_object_folder_check"},
		{"OperatorAnywhere", uuid.NullUUID{}, uuid.NullUUID{}, userB.String() + "/private.mp4", true, ""},
		{"OperatorNonASCII", uuid.NullUUID{}, uuid.NullUUID{}, "vidéo.mp4", false, "jobs_source_object_folder_check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Through the repository.
			err := database.InTx(b.ctx, b.tx, func(sp pgx.Tx) error {
				_, _, err := jobs.New(sp).Create(b.ctx, jobs.CreateParams{
					OwnerID: c.owner, APIKeyID: c.key, SourceObject: c.source})
				return err
			})
			if c.allowed {
				require.NoError(t, err)
			} else {
				apperrtest.RequireCode(t, err, apperr.InvalidInput)
			}
			// Past the repository, as plain SQL (the migration owner).
			err = database.InTx(b.ctx, b.tx, func(sp pgx.Tx) error {
				_, err := sp.Exec(b.ctx, `insert into jobs (owner_id, api_key_id, source_type, source_object)
					values ($1, $2, 'upload', $3)`, c.owner, c.key, c.source)
				return err
			})
			if c.allowed {
				require.NoError(t, err)
			} else {
				requireCheckViolation(t, err, c.dbConstraint)
			}
		})
	}

	// The key's foreign key sets api_key_id null when the key goes: its
	// jobs become the operator's, which the rule still admits.
	t.Run("KeyDeletedKeepsItsJobs", func(t *testing.T) {
		gone := newAPIKey(t, b.tx, uuid.NullUUID{})
		j := createJob(t, b.ctx, b.repo, func(p *jobs.CreateParams) {
			p.SourceURL, p.SourceObject, p.APIKeyID = "", "keys/"+gone.String()+"/in.mp4", key(gone)
		})
		_, err := b.tx.Exec(b.ctx, `delete from api_keys where id = $1`, gone)
		require.NoError(t, err)
		got, err := b.repo.Get(b.ctx, j.ID)
		require.NoError(t, err)
		require.False(t, got.APIKeyID.Valid)
	})
}

// Results live under the job's own prefix, "<job id>/".
func TestResultKeysUnderJobPrefix(t *testing.T) {
	t.Parallel()

	for name, keys := range map[string]func(j, other uuid.UUID) []string{
		"BucketRoot":     func(j, _ uuid.UUID) []string { return []string{"clip.mp4"} },
		"AnotherJob":     func(_, o uuid.UUID) []string { return []string{o.String() + "/clip.mp4"} },
		"EscapeWithDots": func(j, o uuid.UUID) []string { return []string{j.String() + "/../" + o.String() + "/clip.mp4"} },
		"OneBadOfTwo":    func(j, _ uuid.UUID) []string { return []string{j.String() + "/a.mp4", "b.mp4"} },
		"NonASCII":       func(j, _ uuid.UUID) []string { return []string{j.String() + "/clip–1.mp4"} },
		"PrefixOnly":     func(j, _ uuid.UUID) []string { return []string{j.String() + "/"} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			j := claimOnly(t, b, "w1")
			bad := keys(j.ID, uuid.New())
			before := stateOf(t, b.tx, j.ID)

			_, err := b.repo.Complete(b.ctx, j.ID, "w1", bad, time.Hour)
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
			_, err = b.repo.CompleteMany(b.ctx, "w1", []jobs.Completion{{ID: j.ID, ResultKeys: bad}}, time.Hour)
			apperrtest.RequireCode(t, err, apperr.InvalidInput)
			require.Equal(t, before, stateOf(t, b.tx, j.ID))

			err = database.InTx(b.ctx, b.tx, func(sp pgx.Tx) error {
				_, err := sp.Exec(b.ctx, `update jobs set status = 'done', result_keys = $2 where id = $1`, j.ID, bad)
				return err
			})
			requireCheckViolation(t, err, "jobs_result_keys_job_check")
		})
	}

	t.Run("UnderPrefix", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		j := claimOnly(t, b, "w1")
		keys := []string{j.ID.String() + "/clip.mp4", j.ID.String() + "/thumbs/0 (1).jpg"}
		got, err := b.repo.Complete(b.ctx, j.ID, "w1", keys, time.Hour)
		require.NoError(t, err)
		require.Equal(t, keys, got.ResultKeys)
	})
}
