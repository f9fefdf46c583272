package storage

import (
	"net/url"
	"strings"

	"github.com/clipper/clipper/internal/apperr"
)

// maxPathBytes bounds object paths (Supabase Storage keys are limited to
// 1024 bytes as well).
const maxPathBytes = 1024

// checkBucket refuses any bucket but the two the migrations create.
func checkBucket(bucket string) error {
	switch bucket {
	case BucketSources, BucketResults:
		return nil
	}
	return apperr.New(apperr.NotFound, "bucket %q does not exist", bucket)
}

// ValidateObjectName refuses object names that Supabase Storage would
// refuse or that could mean another folder. Storage accepts only the
// characters [A-Za-z0-9_/!.*'() &$=@;:+,?-] (isValidKey in
// supabase/storage's src/storage/limits.ts; anything else, non-ASCII
// included, is signed but its upload refused with InvalidKey); on top of
// that it refuses empty names, names over 1024 bytes, a leading "/", empty
// segments ("a//b", "a/") and "." or ".." segments. It is the same rule as
// the database's clipper_internal.valid_object_name, which the storage
// policies and the jobs constraints use (rls/objectname_test.go runs both
// on one table of names). The error is invalid_input.
func ValidateObjectName(name string) error {
	switch {
	case name == "":
		return apperr.New(apperr.InvalidInput, "object name is empty")
	case len(name) > maxPathBytes:
		return apperr.New(apperr.InvalidInput, "object name is longer than %d bytes", maxPathBytes)
	case strings.HasPrefix(name, "/"):
		return apperr.New(apperr.InvalidInput, "object name must be relative to its bucket (no leading /)")
	}
	for i := 0; i < len(name); i++ {
		if !objectNameByte[name[i]] {
			return apperr.New(apperr.InvalidInput,
				"object name may hold only letters, digits and _/!.*'() &$=@;:+,?- (as Supabase Storage)")
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return apperr.New(apperr.InvalidInput, "object name must not contain empty segments")
		case ".", "..":
			return apperr.New(apperr.InvalidInput, "object name must not contain %q segments", seg)
		}
	}
	return nil
}

// objectNameByte marks the bytes Supabase Storage accepts in a key.
var objectNameByte = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_/!.*'() &$=@;:+,?-" {
		t[c] = true
	}
	return t
}()

// checkPath is ValidateObjectName: every backend signs only names that
// Storage accepts and that stay in their folder.
func checkPath(path string) error { return ValidateObjectName(path) }

// checkObject validates a bucket and path together.
func checkObject(bucket, path string) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	return checkPath(path)
}

// objectKey is the "bucket/path" form that signed tokens carry in their
// url claim, as Supabase Storage does.
func objectKey(bucket, path string) string { return bucket + "/" + path }

// escapeKey escapes each segment of bucket/path for use in a URL path.
func escapeKey(bucket, path string) string {
	segs := strings.Split(objectKey(bucket, path), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
