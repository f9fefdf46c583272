package storage

import (
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// objectURLPath returns bucket/path escaped for a URL path: every byte
// that is not a path character (RFC 3986 pchar: unreserved, sub-delims,
// ':' and '@') is percent-encoded, '/' separates segments. Of the names
// Supabase Storage accepts ([A-Za-z0-9_/!.*'() &$=@;:+,?-]), only the
// space and '?' are escaped: what Storage signs for a download is
// decodeURI of the path it was called with (supabase/storage
// src/storage/object.ts signObjectUrl), and decodeURI keeps the escapes
// of reserved characters such as "%2C" and "%3B", so escaping more than
// needed would sign a name that is not the object's. Both backends hand
// out URLs built with it, as supabase-js hands out encodeURI of
// Storage's answer (storage-js src/packages/StorageFileApi.ts
// createSignedUrl), so curl, Python and browsers accept them.
func objectURLPath(bucket, path string) string {
	key := objectKey(bucket, path)
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '/' || isPathChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

// isPathChar reports whether c may stand unescaped in a path segment
// (RFC 3986 section 3.3, pchar).
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}

// encodeURIComponent is JavaScript's encodeURIComponent: everything but
// A-Z a-z 0-9 - _ . ! ~ * ' ( ) is percent-encoded as UTF-8. Storage
// builds the download file name of Content-Disposition with it.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// contentDisposition is the header Supabase Storage sends for a download
// with ?download= (supabase/storage src/storage/renderer/renderer.ts
// handleDownload): "attachment;" for an empty value, else the name
// through encodeURIComponent, twice.
func contentDisposition(download string) string {
	if download == "" {
		return "attachment;"
	}
	name := encodeURIComponent(download)
	return "attachment; filename=" + name + "; filename*=UTF-8''" + name
}

// tokenOfSignedURL returns the token of a signed URL as Supabase Storage
// answers it. The object path in that URL is not escaped (a '?' in a
// name stays a '?'), so the token is read from the query after the LAST
// '?': a JWT never contains one.
func tokenOfSignedURL(raw string) string {
	i := strings.LastIndexByte(raw, '?')
	if i < 0 {
		return ""
	}
	q, err := url.ParseQuery(raw[i+1:])
	if err != nil {
		return ""
	}
	return q.Get("token")
}

// tokenExpiry returns the exp claim of a signed-URL token, unverified (the
// daemon does not hold Storage's signing key), or nil if it has none.
func tokenExpiry(token string) *time.Time {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		return nil
	}
	t := c.ExpiresAt.UTC()
	return &t
}
