package storage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/clipper/clipper/internal/apperr"
)

// MaxDeleteNames is the most names Supabase Storage deletes in one call
// (MAX_OBJECTS_PER_REQUEST in supabase/storage's src/storage/limits.ts);
// Delete splits longer lists.
const MaxDeleteNames = 1000

// Deleter deletes objects. Names that do not exist are not an error, so
// a delete can be repeated until it is known to have happened.
type Deleter interface {
	// Delete removes the named objects of bucket and reports how many it
	// removed; the others were already gone. On error, some may have been
	// removed: call it again with the same names.
	Delete(ctx context.Context, bucket string, names []string) (deleted int, err error)
}

var _ Deleter = (*Local)(nil)

// Delete removes the objects' files. A name that no object can have (see
// checkPath) or that is a folder is counted as already gone. Folders
// emptied by the delete stay: an upload in flight may be about to link
// its object into one of them.
func (l *Local) Delete(ctx context.Context, bucket string, names []string) (int, error) {
	if err := checkBucket(bucket); err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return 0, apperr.Wrap(err, apperr.Internal, "cannot open the storage folder")
	}
	defer root.Close()
	deleted := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return deleted, apperr.Wrap(err, apperr.Unavailable, "delete canceled")
		}
		if checkPath(name) != nil {
			continue
		}
		file := filepath.FromSlash(objectKey(bucket, name))
		info, err := root.Lstat(file)
		switch {
		case isGone(err) || err == nil && info.IsDir():
			continue
		case err != nil:
			return deleted, apperr.Wrap(err, apperr.Internal, "cannot read the storage folder")
		}
		if err := root.Remove(file); err != nil {
			if isGone(err) {
				continue
			}
			return deleted, apperr.Wrap(err, apperr.Internal, "cannot delete object %s", objectKey(bucket, name))
		}
		deleted++
	}
	return deleted, nil
}

// isGone reports a missing object: the file, or a parent that is a file.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
