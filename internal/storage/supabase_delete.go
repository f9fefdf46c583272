package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/clipper/clipper/internal/apperr"
)

var _ Deleter = (*Supabase)(nil)

// Delete removes objects with Storage's bulk delete, at most
// MaxDeleteNames a call:
//
//	DELETE {SUPABASE_URL}/storage/v1/object/{bucket}  {"prefixes": [names]}
//
// (supabase/storage src/http/routes/object/deleteObjects.ts). Despite the
// field's name, each entry is an exact object name: Storage runs
// "DELETE FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2)
// RETURNING *", removes the bytes of the rows it deleted, and answers 200
// with those rows (src/storage/object.ts deleteObjects,
// src/storage/database/pg.ts). Names that do not exist are simply not in
// the answer, so a repeated delete succeeds and removes nothing.
func (s *Supabase) Delete(ctx context.Context, bucket string, names []string) (int, error) {
	if err := checkBucket(bucket); err != nil {
		return 0, err
	}
	want := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" { // Storage's schema refuses an empty list, and "" names nothing
			want = append(want, n)
		}
	}
	deleted := 0
	for len(want) > 0 {
		chunk := want[:min(len(want), MaxDeleteNames)]
		want = want[len(chunk):]
		n, err := s.deleteChunk(ctx, bucket, chunk)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

func (s *Supabase) deleteChunk(ctx context.Context, bucket string, names []string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	body, err := json.Marshal(map[string][]string{"prefixes": names})
	if err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "cannot encode the Storage request")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.base+"/object/"+url.PathEscape(bucket), bytes.NewReader(body))
	if err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "cannot build the Storage request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	s.authenticate(req.Header)

	resp, err := s.client.Do(req)
	if err != nil {
		return 0, s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, s.transportError(ctx, err)
	}
	// Success is a JSON array of the deleted rows; an error is an object.
	var rows []struct {
		Name string `json:"name"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(data, &rows) == nil {
		if s.refused.CompareAndSwap(true, false) {
			s.log.Info("Supabase Storage accepts the service key again")
		}
		return len(rows), nil
	}
	var e storageErrorBody
	_ = json.Unmarshal(data, &e)
	e.Code = strings.ReplaceAll(e.Code, s.key, "[redacted]")
	e.Error = strings.ReplaceAll(e.Error, s.key, "[redacted]")
	e.Message = strings.ReplaceAll(e.Message, s.key, "[redacted]")
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 && !e.isError() {
		return 0, apperr.New(apperr.Unavailable, "Supabase Storage answered a delete with something other than the deleted objects")
	}
	if keyRefused(resp.StatusCode, e) {
		return 0, s.keyRefused(resp.StatusCode, e)
	}
	return 0, storageError(resp.StatusCode, e, bucket)
}
