package rls_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/rls"
)

// A job's source lies in its owner's folder, whoever writes it: the same
// insert the daemon refuses is refused from PostgREST and from plain SQL.
func TestJobSourceIsolation(t *testing.T) {
	t.Parallel()

	insertAs := func(b *bundle, claims, source string) error {
		return b.write(rls.Authenticated, claims, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_object) values ('upload', $1)`, source)
			return err
		})
	}

	t.Run("OwnFolder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, insertAs(b, b.claimsA, b.userA+"/in.mp4"))
		require.NoError(t, insertAs(b, b.claimsA, b.userA+"/x/it's (1).mp4"))
	})

	// The reported attack: A makes a job on B's private upload.
	t.Run("AnotherUsersUpload", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, source := range []string{
			b.userB + "/private.mp4",
			b.userA + "/../" + b.userB + "/private.mp4",
			"keys/" + b.keyB + "/in.mp4",
			"in.mp4",
			b.userA + "x/in.mp4",
			b.userA + "/vidéo.mp4",
			b.userA + "//in.mp4",
			b.userA + "/./in.mp4",
		} {
			requireSQLState(t, insertAs(b, b.claimsA, source), checkViolation)
		}
	})

	t.Run("PostgRESTShapedInsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := b.write(rls.Authenticated, b.claimsA, "POST", "/jobs", func(tx pgx.Tx) error {
			var body string
			return tx.QueryRow(b.ctx, postgrestInsertJobs,
				`{"source_type":"upload","source_object":"`+b.userB+`/private.mp4"}`).Scan(&body)
		})
		pgErr := requireSQLState(t, err, checkViolation)
		require.Equal(t, "jobs_source_object_folder_check", pgErr.ConstraintName)
	})

	// service_role bypasses RLS, and the migration owner is what the
	// daemon and plain SQL use: the constraint binds them all.
	t.Run("EveryWriter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sql := `insert into jobs (owner_id, api_key_id, source_type, source_object) values ($1, $2, 'upload', $3)`
		err := b.write(rls.ServiceRole, rls.ServiceClaims(), "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, sql, b.userA, nil, b.userB+"/private.mp4")
			return err
		})
		requireSQLState(t, err, checkViolation)
		for _, c := range []struct {
			owner, key any
			source     string
		}{
			{b.userA, b.keyA, b.userB + "/private.mp4"},
			{nil, b.keyA, b.userA + "/in.mp4"},
			{nil, b.keyA, "keys/" + b.keyB + "/in.mp4"},
		} {
			err := b.write(rls.ServiceRole, rls.ServiceClaims(), "POST", "/jobs", func(tx pgx.Tx) error {
				_, err := b.exec(tx, sql, c.owner, c.key, c.source)
				return err
			})
			requireSQLState(t, err, checkViolation)
		}
		_, err = b.tx.Exec(b.ctx, `savepoint s`)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, sql, b.userA, nil, b.userB+"/private.mp4")
		requireSQLState(t, err, checkViolation)
		_, err = b.tx.Exec(b.ctx, `rollback to savepoint s`)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, sql, nil, b.keyA, "keys/"+b.keyA+"/in.mp4")
		require.NoError(t, err)
	})
}

// Result keys lie under the job's own prefix, whoever writes them.
func TestResultKeysBoundToJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	job := b.jobAProcessing
	for _, keys := range [][]string{
		{"clip.mp4"},
		{b.jobB + "/clip.mp4"},
		{job + "/../" + b.jobB + "/clip.mp4"},
		{job + "/ok.mp4", "clip.mp4"},
		{job + "/vidéo.mp4"},
		{job + "/"},
	} {
		err := b.write(rls.ServiceRole, rls.ServiceClaims(), "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `update jobs set status = 'done', result_keys = $2 where id = $1`, job, keys)
			return err
		})
		pgErr := requireSQLState(t, err, checkViolation)
		require.Equal(t, "jobs_result_keys_job_check", pgErr.ConstraintName)
	}
	_, err := b.tx.Exec(b.ctx, `update jobs set status = 'done', result_keys = $2 where id = $1`,
		job, []string{job + "/clip.mp4", job + "/thumbs/0.jpg"})
	require.NoError(t, err)
}

// The sources insert policy checks the whole name, not its first segment.
func TestSourcesPolicyNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	insert := func(name string) error {
		return b.write(rls.Authenticated, b.claimsA, "POST", "/object/sources/"+name, func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into storage.objects (bucket_id, name, owner_id, metadata)
				values ('sources', $1, auth.uid()::text, '{"size": 1}')`, name)
			return err
		})
	}
	for _, name := range []string{
		b.userA + "/../" + b.userB + "/x.mp4",
		b.userA + "/./x.mp4",
		b.userA + "//x.mp4",
		b.userA + "/",
		b.userA + "/vidéo.mp4",
		b.userA + `/a\b.mp4`,
	} {
		requireSQLState(t, insert(name), insufficientPrivilege)
	}
	require.NoError(t, insert(b.userA+"/my clip (1).mp4"))
}

// A signed-in owner may read (and so, with supabase-js, sign URLs for) the
// result objects of their own jobs, and nothing else in the results bucket.
func TestResultsReadPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	jobA, jobB := b.jobAProcessing, b.jobB
	_, err := b.tx.Exec(b.ctx, `update jobs set status = 'processing', attempts = 1, worker_id = 'w',
		claimed_at = now(), last_heartbeat_at = now() where id = $1`, jobB)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, `update jobs set status = 'done', result_keys = array[id || '/clip.mp4']
		where id in ($1, $2)`, jobA, jobB)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, `insert into storage.objects (bucket_id, name) values
		('results', $1 || '/clip.mp4'), ('results', $1 || '/not-a-result.mp4'),
		('results', $2 || '/clip.mp4'), ('results', 'stray.mp4'), ('results', 'not-a-uuid/clip.mp4'),
		('sources', $1 || '/clip.mp4')`, jobA, jobB)
	require.NoError(t, err)

	list := func(role, claims string) []string {
		var names []string
		err := b.get(role, claims, "/object/list/results", func(tx pgx.Tx) error {
			var err error
			names, err = b.strings(tx, `select name from storage.objects where bucket_id = 'results'`)
			return err
		})
		require.NoError(t, err)
		return names
	}
	require.Equal(t, []string{jobA + "/clip.mp4"}, list(rls.Authenticated, b.claimsA))
	require.Equal(t, []string{jobB + "/clip.mp4"}, list(rls.Authenticated, b.claimsB))
	require.Empty(t, list(rls.Authenticated, rls.UserClaims(uuid.NewString())))
	require.Empty(t, list(rls.Anon, rls.AnonClaims()))

	// What Storage runs for createSignedUrl: the object, read as the
	// caller (signObjectUrl's findObject, supabase/storage
	// src/storage/object.ts).
	sign := func(claims, name string) bool {
		var found []string
		err := b.get(rls.Authenticated, claims, "/object/sign/results/"+name, func(tx pgx.Tx) error {
			var err error
			found, err = b.strings(tx, `select id::text from storage.objects where bucket_id = 'results' and name = $1`, name)
			return err
		})
		require.NoError(t, err)
		return len(found) == 1
	}
	require.True(t, sign(b.claimsA, jobA+"/clip.mp4"))
	require.False(t, sign(b.claimsA, jobB+"/clip.mp4"))
	require.False(t, sign(b.claimsA, jobA+"/not-a-result.mp4"))
	require.True(t, sign(b.claimsB, jobB+"/clip.mp4"))
}

// Anonymous sign-ins create no jobs and upload no sources, unless
// clipper_internal.settings allows them.
func TestAnonymousSignIns(t *testing.T) {
	t.Parallel()

	try := func(b *bundle, claims, sub string) (jobErr, uploadErr error) {
		jobErr = b.write(rls.Authenticated, claims, "POST", "/jobs", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into jobs (source_type, source_url) values ('youtube', 'https://youtu.be/x')`)
			return err
		})
		uploadErr = b.write(rls.Authenticated, claims, "POST", "/object/sources", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into storage.objects (bucket_id, name, owner_id)
				values ('sources', $1, auth.uid()::text)`, sub+"/in.mp4")
			return err
		})
		return jobErr, uploadErr
	}
	anonUser := func(b *bundle) (string, string) {
		sub := uuid.NewString()
		_, err := b.tx.Exec(b.ctx, `insert into auth.users (id) values ($1)`, sub)
		require.NoError(t, err)
		return sub, rls.AnonymousUserClaims(sub)
	}

	t.Run("RefusedByDefault", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sub, claims := anonUser(b)
		jobErr, uploadErr := try(b, claims, sub)
		requireSQLState(t, jobErr, insufficientPrivilege)
		requireSQLState(t, uploadErr, insufficientPrivilege)
		// Permanent users, and tokens without the claim (third-party
		// auth), are not anonymous.
		jobErr, uploadErr = try(b, b.claimsA, b.userA)
		require.NoError(t, jobErr)
		require.NoError(t, uploadErr)
		noClaim := `{"sub":"` + b.userB + `","role":"authenticated"}`
		jobErr, uploadErr = try(b, noClaim, b.userB)
		require.NoError(t, jobErr)
		require.NoError(t, uploadErr)
	})

	t.Run("OtherBucketsUntouched", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sub, claims := anonUser(b)
		_, err := b.tx.Exec(b.ctx, `insert into storage.buckets (id, name) values ('avatars', 'avatars')`)
		require.NoError(t, err)
		_, err = b.tx.Exec(b.ctx, `create policy avatars_insert on storage.objects for insert to authenticated
			with check (bucket_id = 'avatars')`)
		require.NoError(t, err)
		err = b.write(rls.Authenticated, claims, "POST", "/object/avatars", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `insert into storage.objects (bucket_id, name) values ('avatars', $1)`, sub+".png")
			return err
		})
		require.NoError(t, err)
	})

	t.Run("AllowedBySetting", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sub, claims := anonUser(b)
		_, err := b.tx.Exec(b.ctx, `update clipper_internal.settings set allow_anonymous_jobs = true`)
		require.NoError(t, err)
		jobErr, uploadErr := try(b, claims, sub)
		require.NoError(t, jobErr)
		require.NoError(t, uploadErr)
	})

	// The setting is out of the API roles' reach.
	t.Run("SettingIsNotTheirs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, claims := anonUser(b)
		err := b.write(rls.Authenticated, claims, "PATCH", "/", func(tx pgx.Tx) error {
			_, err := b.exec(tx, `update clipper_internal.settings set allow_anonymous_jobs = true`)
			return err
		})
		requireSQLState(t, err, insufficientPrivilege)
	})
}
