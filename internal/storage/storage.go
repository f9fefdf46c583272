// Package storage hands out short-lived signed URLs for objects in the
// private buckets, through Supabase Storage or an embedded local backend.
package storage

import (
	"context"
	"time"
)

// The buckets the migrations create.
const (
	BucketSources = "sources"
	BucketResults = "results"
)

// SignedURL is a URL that grants access to one object until ExpiresAt.
// URL is absolute and escaped (a space is %20, a '?' in a name %3F).
// ExpiresAt is the expiry the URL's token carries, which is not always
// the one asked for: Supabase Storage sets the lifetime of upload URLs
// itself. It is nil when the token does not say (unknown).
type SignedURL struct {
	Bucket    string     `json:"bucket"`
	Path      string     `json:"path"`
	URL       string     `json:"url"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Signer signs object URLs. ttl has already been checked against the
// configured maximum by the caller (see TTLPolicy).
type Signer interface {
	// SignDownload returns a URL to GET the object.
	SignDownload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error)
	// SignUpload returns a URL to upload the object (PUT for the local
	// backend, Supabase's signed upload for Supabase).
	SignUpload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error)
	// Deleter removes objects (retention deletes the objects of deleted jobs).
	Deleter
}
