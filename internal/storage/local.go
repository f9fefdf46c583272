package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clipper/clipper/internal/apperr"
)

// URL path prefixes of the local backend: the same shapes as Supabase
// Storage's under SUPABASE_URL, so clients treat both backends alike.
const (
	downloadPrefix = "/storage/v1/object/sign/"
	uploadPrefix   = "/storage/v1/object/upload/sign/"
)

// DefaultMaxUploadBytes caps one upload to the local backend (5 GiB, the
// largest single upload Supabase Storage accepts without resumable uploads).
const DefaultMaxUploadBytes int64 = 5 << 30

// tmpDir holds uploads in progress, beside the buckets so that moving a
// finished upload into place stays on one filesystem.
const tmpDir = ".tmp"

// staleTmpAge is when a leftover upload (from a crash) is deleted at start.
const staleTmpAge = 24 * time.Hour

// LocalOptions tune the local backend.
type LocalOptions struct {
	// MaxUploadBytes caps one upload; DefaultMaxUploadBytes if zero.
	MaxUploadBytes int64
	// Logger receives the warning about a generated signing secret.
	Logger *slog.Logger
	// Now is the clock for signing and verifying; time.Now if nil.
	Now func() time.Time
}

// Local keeps objects as files under dir/<bucket>/<path> and serves them
// through the daemon at Supabase-shaped signed URLs (see RegisterRoutes),
// so that everything runs without Supabase.
type Local struct {
	dir       string
	publicURL string
	secret    []byte
	maxUpload int64
	now       func() time.Time
}

var _ Signer = (*Local)(nil)

// NewLocal returns the local backend. dir is created if missing;
// publicURL is the daemon's base URL as clients reach it. Tokens are
// HS256 JWTs signed with secret; an empty secret is replaced by a random
// one, and a warning says that URLs then die with the process and do not
// work across replicas.
func NewLocal(dir, publicURL, secret string, opts LocalOptions) (*Local, error) {
	if dir == "" {
		return nil, errors.New("storage: the local backend needs a folder (CLIPPER_STORAGE_DIR)")
	}
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("storage: public URL %q must be an absolute http(s) URL (CLIPPER_PUBLIC_URL)", publicURL)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: folder %s: %w", dir, err)
	}
	for _, sub := range []string{BucketSources, BucketResults, tmpDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o750); err != nil {
			return nil, fmt.Errorf("storage: create %s: %w", filepath.Join(abs, sub), err)
		}
	}
	l := &Local{
		dir:       abs,
		publicURL: strings.TrimRight(publicURL, "/"),
		secret:    []byte(secret),
		maxUpload: opts.MaxUploadBytes,
		now:       opts.Now,
	}
	if l.maxUpload <= 0 {
		l.maxUpload = DefaultMaxUploadBytes
	}
	if l.now == nil {
		l.now = time.Now
	}
	if secret == "" {
		l.secret = make([]byte, 32)
		_, _ = rand.Read(l.secret)
		if opts.Logger != nil {
			opts.Logger.Warn("CLIPPER_STORAGE_SIGNING_SECRET is not set: signing local storage URLs with a random secret; " +
				"they stop working when this process restarts and are refused by other replicas")
		}
	}
	l.removeStaleUploads()
	return l, nil
}

// Dir returns the absolute folder that holds the buckets.
func (l *Local) Dir() string { return l.dir }

// MaxUploadBytes returns the upload cap.
func (l *Local) MaxUploadBytes() int64 { return l.maxUpload }

// SignDownload returns a URL to GET (or HEAD) an existing object.
func (l *Local) SignDownload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	return l.sign(ctx, bucket, path, ttl, purposeDownload)
}

// SignUpload returns a URL to PUT a new object, the raw bytes as the body.
// As on Supabase without upsert, an upload never replaces an object.
func (l *Local) SignUpload(ctx context.Context, bucket, path string, ttl time.Duration) (SignedURL, error) {
	return l.sign(ctx, bucket, path, ttl, purposeUpload)
}

func (l *Local) sign(ctx context.Context, bucket, path string, ttl time.Duration, purpose string) (SignedURL, error) {
	if err := ctx.Err(); err != nil {
		return SignedURL{}, apperr.Wrap(err, apperr.Unavailable, "request canceled")
	}
	if err := checkObject(bucket, path); err != nil {
		return SignedURL{}, err
	}
	if ttl < time.Second {
		return SignedURL{}, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is below the minimum of 1s", ttl)
	}
	// Like Supabase Storage: no download URL for a missing object, no
	// upload URL for an existing one.
	info, err := l.stat(bucket, path)
	switch {
	case purpose == purposeDownload && (errors.Is(err, fs.ErrNotExist) || err == nil && info.IsDir()):
		return SignedURL{}, apperr.New(apperr.NotFound, "object %s not found", objectKey(bucket, path))
	case purpose == purposeUpload && err == nil:
		return SignedURL{}, apperr.New(apperr.Conflict, "object %s already exists", objectKey(bucket, path))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return SignedURL{}, apperr.Wrap(err, apperr.Internal, "cannot read the storage folder")
	}
	token, exp, err := signToken(l.secret, objectKey(bucket, path), purpose, l.now(), ttl)
	if err != nil {
		return SignedURL{}, err
	}
	prefix := downloadPrefix
	if purpose == purposeUpload {
		prefix = uploadPrefix
	}
	return SignedURL{
		Bucket:    bucket,
		Path:      path,
		URL:       l.publicURL + prefix + objectURLPath(bucket, path) + "?token=" + token,
		ExpiresAt: &exp,
	}, nil
}

// stat returns the object's file info. A parent that is a file reads as
// not existing.
func (l *Local) stat(bucket, path string) (fs.FileInfo, error) {
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	info, err := root.Stat(filepath.FromSlash(objectKey(bucket, path)))
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, fs.ErrNotExist
	}
	return info, err
}

// removeStaleUploads deletes uploads left behind by a crash. Only old
// ones: another replica sharing the folder may be writing fresh ones.
func (l *Local) removeStaleUploads() {
	dir := filepath.Join(l.dir, tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && l.now().Sub(info.ModTime()) > staleTmpAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func randomName() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// parentOf returns the folder of a slash-separated key, "" for none.
func parentOf(key string) string {
	if d := pathpkg.Dir(key); d != "." {
		return d
	}
	return ""
}
