package storage

import (
	"net/url"
	"strings"
	"unicode/utf8"

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

// checkPath refuses object paths that could leave the bucket's folder or
// mean different objects to different readers: empty, absolute, "." and
// ".." segments, empty segments ("a//b", "a/"), backslashes, NUL and other
// control characters, invalid UTF-8, and more than 1024 bytes.
func checkPath(path string) error {
	switch {
	case path == "":
		return apperr.New(apperr.InvalidInput, "object path is empty")
	case len(path) > maxPathBytes:
		return apperr.New(apperr.InvalidInput, "object path is longer than %d bytes", maxPathBytes)
	case !utf8.ValidString(path):
		return apperr.New(apperr.InvalidInput, "object path is not valid UTF-8")
	case strings.HasPrefix(path, "/"):
		return apperr.New(apperr.InvalidInput, "object path must be relative to its bucket")
	case strings.ContainsRune(path, '\\'):
		return apperr.New(apperr.InvalidInput, "object path must not contain backslashes")
	}
	for _, r := range path {
		if r < 0x20 || r == 0x7f {
			return apperr.New(apperr.InvalidInput, "object path must not contain control characters")
		}
	}
	for seg := range strings.SplitSeq(path, "/") {
		switch seg {
		case "":
			return apperr.New(apperr.InvalidInput, "object path must not contain empty segments")
		case ".", "..":
			return apperr.New(apperr.InvalidInput, "object path must not contain %q segments", seg)
		}
	}
	return nil
}

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
