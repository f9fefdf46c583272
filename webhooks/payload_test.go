package webhooks_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/webhooks"
)

const (
	objectID = "5b0c7d1e-3f43-4a55-9a38-6f1e2f0b8c11"
	ownerID  = "0d3a4f9e-1c2b-4e5f-8a9b-7c6d5e4f3a2b"
)

// uploadBody is what supabase_functions.http_request sends for an upload.
const uploadBody = `{"type":"INSERT","table":"objects","schema":"storage",
 "record":{"id":"` + objectID + `","bucket_id":"sources","name":"` + ownerID + `/talk.mp4",
  "owner":"` + ownerID + `","owner_id":"` + ownerID + `","version":"v1",
  "metadata":{"size":1048576,"mimetype":"video/mp4","clip":{"start":0}},
  "user_metadata":{"clip":{"start":12.5,"end":30}},
  "path_tokens":["` + ownerID + `","talk.mp4"],"created_at":"2026-11-27T11:00:00+00:00"},
 "old_record":null}`

const jobUpdateBody = `{"type":"UPDATE","table":"jobs","schema":"public",
 "record":{"id":"8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70","status":"canceled","progress":40},
 "old_record":{"id":"8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70","status":"processing","progress":40}}`

const deleteBody = `{"type":"DELETE","table":"notes","schema":"public","record":null,
 "old_record":{"id":17,"text":"gone"}}`

func TestParsePayload(t *testing.T) {
	t.Parallel()

	t.Run("Upload", func(t *testing.T) {
		t.Parallel()
		p, err := webhooks.ParsePayload([]byte(uploadBody))
		require.NoError(t, err)
		require.Equal(t, webhooks.Insert, p.Type)
		require.Equal(t, "storage", p.Schema)
		require.Equal(t, "objects", p.Table)
		require.Nil(t, p.OldRecord)
		require.Equal(t, objectID, p.RecordID)
		require.NotNil(t, p.Object)
		require.Equal(t, webhooks.StorageObject{
			ID:       uuid.MustParse(objectID),
			BucketID: "sources",
			Name:     ownerID + "/talk.mp4",
			Owner:    uuid.NullUUID{UUID: uuid.MustParse(ownerID), Valid: true},
			Clip:     json.RawMessage(`{"end":30,"start":12.5}`),
		}, *p.Object, "user_metadata.clip wins over metadata.clip")
		require.False(t, p.Object.Placeholder())
	})

	t.Run("UploadMetadataClipAndOwnerFallback", func(t *testing.T) {
		t.Parallel()
		p, err := webhooks.ParsePayload([]byte(`{"type":"INSERT","table":"objects","schema":"storage","old_record":null,
			"record":{"id":"` + strings.ToUpper(objectID) + `","bucket_id":"sources","name":"a/.emptyFolderPlaceholder",
			"owner":"` + ownerID + `","owner_id":"service","metadata":{"clip":{"end":3}},"user_metadata":null}}`))
		require.NoError(t, err)
		require.Equal(t, objectID, p.RecordID, "record id of an object is its canonical uuid")
		require.Equal(t, ownerID, p.Object.Owner.UUID.String())
		require.JSONEq(t, `{"end":3}`, string(p.Object.Clip))
		require.True(t, p.Object.Placeholder())
	})

	t.Run("UploadWithoutOwnerOrClip", func(t *testing.T) {
		t.Parallel()
		p, err := webhooks.ParsePayload([]byte(`{"type":"INSERT","table":"objects","schema":"storage","old_record":null,
			"record":{"id":"` + objectID + `","bucket_id":"results","name":"x.mp4","owner":null,"owner_id":null,"metadata":null}}`))
		require.NoError(t, err)
		require.False(t, p.Object.Owner.Valid)
		require.Nil(t, p.Object.Clip)
	})

	t.Run("UpdateAndDelete", func(t *testing.T) {
		t.Parallel()
		p, err := webhooks.ParsePayload([]byte(jobUpdateBody))
		require.NoError(t, err)
		require.Equal(t, webhooks.Update, p.Type)
		require.Equal(t, "8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70", p.RecordID)
		require.Nil(t, p.Object)
		require.Equal(t, "canceled", p.Record["status"])

		p, err = webhooks.ParsePayload([]byte(deleteBody))
		require.NoError(t, err)
		require.Equal(t, "17", p.RecordID, "a DELETE's id comes from old_record; numbers keep their text")
		require.Nil(t, p.Record)
	})

	t.Run("CanonicalFormIgnoresKeyOrderAndSpace", func(t *testing.T) {
		t.Parallel()
		a, err := webhooks.ParsePayload([]byte(jobUpdateBody))
		require.NoError(t, err)
		b, err := webhooks.ParsePayload([]byte(`{"old_record":{"progress":40,"status":"processing","id":"8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70"},
			"schema":"public","record":{"status":"canceled","id":"8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70","progress":40},
			"table":"jobs","type":"UPDATE"}`))
		require.NoError(t, err)
		require.Equal(t, a.Hash(), b.Hash())
		require.Equal(t, string(a.Canonical()), string(b.Canonical()))
		require.Len(t, a.Hash(), 64)

		c, err := webhooks.ParsePayload([]byte(strings.Replace(jobUpdateBody, `"progress":40}`, `"progress":41}`, 1)))
		require.NoError(t, err)
		require.NotEqual(t, a.Hash(), c.Hash())
	})

	t.Run("BigNumbersKeepTheirDigits", func(t *testing.T) {
		t.Parallel()
		p, err := webhooks.ParsePayload([]byte(`{"type":"INSERT","table":"t","schema":"s","record":{"id":12345678901234567890123,"x":1.10}}`))
		require.NoError(t, err)
		require.Equal(t, "12345678901234567890123", p.RecordID)
		require.Contains(t, string(p.Canonical()), `"x":1.10`)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		deep := strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70)
		for name, body := range map[string]string{
			"Empty":             ``,
			"Space":             "  \n",
			"NotJSON":           `type=INSERT`,
			"Truncated":         uploadBody[:len(uploadBody)/2],
			"TwoValues":         `{"type":"INSERT","table":"t","schema":"s","record":{}} {}`,
			"Array":             `[{"type":"INSERT"}]`,
			"String":            `"INSERT"`,
			"Null":              `null`,
			"NoType":            `{"table":"t","schema":"s","record":{}}`,
			"LowercaseType":     `{"type":"insert","table":"t","schema":"s","record":{}}`,
			"TruncateType":      `{"type":"TRUNCATE","table":"t","schema":"s","record":null}`,
			"NumberType":        `{"type":1,"table":"t","schema":"s","record":{}}`,
			"NoTable":           `{"type":"INSERT","schema":"s","record":{}}`,
			"EmptySchema":       `{"type":"INSERT","table":"t","schema":"","record":{}}`,
			"LongTable":         `{"type":"INSERT","table":"` + strings.Repeat("t", 64) + `","schema":"s","record":{}}`,
			"RecordArray":       `{"type":"INSERT","table":"t","schema":"s","record":[]}`,
			"InsertNullRecord":  `{"type":"INSERT","table":"t","schema":"s","record":null}`,
			"UpdateNoRecord":    `{"type":"UPDATE","table":"t","schema":"s","old_record":{}}`,
			"DeleteNoOld":       `{"type":"DELETE","table":"t","schema":"s","record":{},"old_record":null}`,
			"OldRecordString":   `{"type":"INSERT","table":"t","schema":"s","record":{},"old_record":"x"}`,
			"NULInString":       `{"type":"INSERT","table":"t","schema":"s","record":{"a":"x\u0000y"}}`,
			"NULInKey":          `{"type":"INSERT","table":"t","schema":"s","record":{"a\u0000":1}}`,
			"TooDeep":           `{"type":"INSERT","table":"t","schema":"s","record":` + deep + `}`,
			"InvalidUTF8":       "{\"type\":\"INSERT\",\"table\":\"t\",\"schema\":\"s\",\"record\":{\"a\":\"\xff\"}}",
			"ObjectIDNotUUID":   strings.Replace(uploadBody, objectID, "42", 1),
			"ObjectIDNumber":    strings.Replace(uploadBody, `"`+objectID+`"`, "42", 1),
			"ObjectNoBucket":    strings.Replace(uploadBody, `"bucket_id":"sources",`, ``, 1),
			"ObjectEmptyName":   strings.Replace(uploadBody, `"name":"`+ownerID+`/talk.mp4"`, `"name":""`, 1),
			"ObjectNameNumber":  strings.Replace(uploadBody, `"name":"`+ownerID+`/talk.mp4"`, `"name":7`, 1),
			"ObjectBucketFalse": strings.Replace(uploadBody, `"bucket_id":"sources"`, `"bucket_id":false`, 1),
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				_, err := webhooks.ParsePayload([]byte(body))
				require.Error(t, err)
				require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), "%v", err)
				require.NotEmpty(t, apperr.EnvelopeOf(err).Message)
			})
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		uploadBody,
		jobUpdateBody,
		deleteBody,
		`{"type":"INSERT","table":"jobs","schema":"public","record":{"id":"8f9c0b8e-2a33-4bd4-9e64-0d4c1f4a6c70","params":{"start":1}},"old_record":null}`,
		`{"type":"INSERT","table":"objects","schema":"storage","record":{"id":"` + objectID + `","bucket_id":"sources","name":"a/.emptyFolderPlaceholder","owner_id":"x"},"old_record":null}`,
		`{"type":"INSERT","table":"t","schema":"s","record":{"id":1e400,"n":-0.0e-7,"u":"\u00e9\ud83d\ude00<&>"}}`,
		`{"type":"INSERT","type":"UPDATE","table":"t","schema":"s","record":{}}`,
		`{"type":"INSERT","table":"t","schema":"s","record":{"a":"x\u0000"}}`,
		`{"type":"INSERT","table":"t","schema":"s","record":` + strings.Repeat(`[`, 80) + strings.Repeat(`]`, 80) + `}`,
		`{"type":"INSERT","table":"t","schema":"s","record":{}} trailing`,
		`[]`, `null`, `{}`, ``, "\xff", `{"type":"DELETE"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := webhooks.ParsePayload(body)
		if err != nil {
			require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), "%v", err)
			require.NotEmpty(t, apperr.EnvelopeOf(err).Message)
			return
		}
		require.Contains(t, []webhooks.Type{webhooks.Insert, webhooks.Update, webhooks.Delete}, p.Type)
		require.NotEmpty(t, p.Table)
		require.NotEmpty(t, p.Schema)
		require.LessOrEqual(t, len(p.RecordID), 255)
		require.Equal(t, p.Type == webhooks.Insert && p.Schema == "storage" && p.Table == "objects", p.Object != nil)
		require.True(t, json.Valid(p.Canonical()))

		// The canonical form is a fixed point: it parses to the same
		// payload and the same delivery hash.
		again, err := webhooks.ParsePayload(p.Canonical())
		require.NoError(t, err)
		require.Equal(t, string(p.Canonical()), string(again.Canonical()))
		require.Equal(t, p.Hash(), again.Hash())
		require.Equal(t, p.RecordID, again.RecordID)
	})
}
