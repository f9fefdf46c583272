// Package webhooks receives Supabase database webhooks at
// POST /webhooks/supabase: it authenticates each delivery (a bearer secret,
// plus Standard Webhooks signatures when configured), records it durably
// together with its effect in one transaction, and turns uploads to the
// sources bucket into queued jobs. install.sql installs the database
// webhooks on a Supabase project; README.md says how.
package webhooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apperr"
)

// Type is the row operation a database webhook reports.
type Type string

// The operations Supabase database webhooks send.
const (
	Insert Type = "INSERT"
	Update Type = "UPDATE"
	Delete Type = "DELETE"
)

// Limits on a payload. Record ids longer than maxRecordIDLen are kept in
// the payload but not in webhook_deliveries.record_id.
const (
	MaxBodyBytes   = 256 << 10
	maxDepth       = 64
	maxNameLen     = 63 // a PostgreSQL identifier
	maxRecordIDLen = 255
)

// The bucket whose uploads become jobs, and the object name the Supabase
// dashboard writes to make an empty folder exist.
const (
	SourcesBucket     = "sources"
	folderPlaceholder = ".emptyFolderPlaceholder"
)

// Payload is one database-webhook body:
// {"type","table","schema","record","old_record"}.
type Payload struct {
	Type      Type
	Table     string
	Schema    string
	Record    map[string]any // nil when null (DELETE)
	OldRecord map[string]any // nil when null (INSERT)

	// RecordID is the row's "id" (of old_record for a DELETE) as text, or
	// "" when the row has none.
	RecordID string

	// Object is set for an INSERT into storage.objects.
	Object *StorageObject

	canonical []byte
}

// StorageObject is what the receiver reads from a storage.objects row.
type StorageObject struct {
	ID       uuid.UUID
	BucketID string
	Name     string
	// Owner is the row's owner_id, else its owner, when it is a uuid.
	// Whether it names an auth user is checked against the database.
	Owner uuid.NullUUID
	// Clip is user_metadata.clip, else metadata.clip, as JSON; nil when
	// neither is set.
	Clip json.RawMessage
}

// Placeholder reports whether the object only marks an empty folder.
func (o StorageObject) Placeholder() bool {
	return path.Base(o.Name) == folderPlaceholder
}

// Canonical is the payload re-encoded with sorted keys and no
// insignificant space: two bodies describing the same change encode alike.
func (p Payload) Canonical() []byte { return p.canonical }

// Hash is the hex SHA-256 of Canonical.
func (p Payload) Hash() string {
	sum := sha256.Sum256(p.canonical)
	return hex.EncodeToString(sum[:])
}

// ParsePayload reads a webhook body. Every error is invalid_input with a
// message that names the problem, never the body's content.
func ParsePayload(body []byte) (Payload, error) {
	if !utf8.Valid(body) {
		return Payload{}, invalid("webhook body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return Payload{}, invalid("webhook body is empty")
		}
		return Payload{}, invalid("webhook body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Payload{}, invalid("webhook body must hold one JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Payload{}, invalid("webhook body must be a JSON object")
	}
	if err := checkValue(v, 0); err != nil {
		return Payload{}, err
	}

	var p Payload
	var err error
	if p.Type, err = typeField(obj); err != nil {
		return Payload{}, err
	}
	if p.Table, err = nameField(obj, "table"); err != nil {
		return Payload{}, err
	}
	if p.Schema, err = nameField(obj, "schema"); err != nil {
		return Payload{}, err
	}
	if p.Record, err = rowField(obj, "record"); err != nil {
		return Payload{}, err
	}
	if p.OldRecord, err = rowField(obj, "old_record"); err != nil {
		return Payload{}, err
	}
	row := p.Record
	switch p.Type {
	case Insert, Update:
		if row == nil {
			return Payload{}, invalid("an %s payload needs a record object", p.Type)
		}
	case Delete:
		if p.OldRecord == nil {
			return Payload{}, invalid("a DELETE payload needs an old_record object")
		}
		row = p.OldRecord
	}
	p.RecordID = idOf(row)
	if p.Type == Insert && p.Schema == "storage" && p.Table == "objects" {
		o, err := storageObject(row)
		if err != nil {
			return Payload{}, err
		}
		p.Object = &o
		p.RecordID = o.ID.String()
	}
	// Marshal sorts map keys and writes json.Number as read.
	if p.canonical, err = json.Marshal(obj); err != nil {
		return Payload{}, invalid("webhook body cannot be re-encoded")
	}
	return p, nil
}

// checkValue refuses what PostgreSQL's jsonb would: NUL characters (\u0000)
// in strings or keys, and nesting deeper than a database row's needs.
func checkValue(v any, depth int) error {
	if depth > maxDepth {
		return invalid("webhook body nests deeper than %d levels", maxDepth)
	}
	switch t := v.(type) {
	case string:
		if strings.IndexByte(t, 0) >= 0 {
			return invalid("webhook body holds a NUL character")
		}
	case map[string]any:
		for k, e := range t {
			if strings.IndexByte(k, 0) >= 0 {
				return invalid("webhook body holds a NUL character")
			}
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range t {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func typeField(obj map[string]any) (Type, error) {
	s, _ := obj["type"].(string)
	switch t := Type(s); t {
	case Insert, Update, Delete:
		return t, nil
	}
	return "", invalid(`"type" must be INSERT, UPDATE or DELETE`)
}

func nameField(obj map[string]any, key string) (string, error) {
	s, ok := obj[key].(string)
	if !ok || s == "" || len(s) > maxNameLen {
		return "", invalid("%q must be a name of 1 to %d bytes", key, maxNameLen)
	}
	return s, nil
}

// rowField reads record or old_record: an object, or null (or absent).
func rowField(obj map[string]any, key string) (map[string]any, error) {
	switch t := obj[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return t, nil
	}
	return nil, invalid("%q must be an object or null", key)
}

func idOf(row map[string]any) string {
	var s string
	switch t := row["id"].(type) {
	case string:
		s = t
	case json.Number:
		s = t.String()
	}
	if len(s) > maxRecordIDLen {
		return ""
	}
	return s
}

func storageObject(row map[string]any) (StorageObject, error) {
	var o StorageObject
	idText, _ := row["id"].(string)
	id, err := uuid.Parse(idText)
	if err != nil {
		return o, invalid("a storage.objects record needs a uuid id")
	}
	o.ID = id
	var ok bool
	if o.BucketID, ok = row["bucket_id"].(string); !ok || o.BucketID == "" {
		return o, invalid("a storage.objects record needs a bucket_id")
	}
	if o.Name, ok = row["name"].(string); !ok || o.Name == "" {
		return o, invalid("a storage.objects record needs a name")
	}
	for _, key := range []string{"owner_id", "owner"} {
		s, _ := row[key].(string)
		if u, err := uuid.Parse(s); err == nil {
			o.Owner = uuid.NullUUID{UUID: u, Valid: true}
			break
		}
	}
	for _, key := range []string{"user_metadata", "metadata"} {
		meta, _ := row[key].(map[string]any)
		if clip, ok := meta["clip"]; ok && clip != nil {
			// Re-encoding a decoded value cannot fail.
			o.Clip, _ = json.Marshal(clip)
			break
		}
	}
	return o, nil
}

func invalid(format string, args ...any) error {
	return apperr.New(apperr.InvalidInput, format, args...)
}
