//go:build linux || darwin

package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// contentTypeAttr is the extended attribute that keeps an object's
// content type on the local backend: it lives and dies with the file, is
// written before the file is linked into place, and needs no second file.
const contentTypeAttr = "user.clipper.content_type"

// saveContentType stores ct on the open file f. Best effort: a file
// system without user extended attributes keeps the bytes only, and the
// download then guesses the type from the name or the content.
func saveContentType(f *os.File, ct string) {
	_ = unix.Fsetxattr(int(f.Fd()), contentTypeAttr, []byte(ct), 0)
}

// loadContentType returns the content type stored on f, "" if none.
func loadContentType(f *os.File) string {
	buf := make([]byte, maxContentTypeBytes)
	n, err := unix.Fgetxattr(int(f.Fd()), contentTypeAttr, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}
