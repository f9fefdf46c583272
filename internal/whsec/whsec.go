// Package whsec reads Standard Webhooks signing secrets, "whsec_<base64
// key>", optionally prefixed "v1," as Supabase writes them: the one parser
// that configuration (to check the key's length) and the webhook verifier
// (to use the key) share.
package whsec

import (
	"encoding/base64"
	"errors"
	"strings"
)

var (
	// ErrPrefix: the secret does not start with whsec_.
	ErrPrefix = errors.New("must start with whsec_")
	// ErrEncoding: what follows whsec_ is not base64.
	ErrEncoding = errors.New("must be whsec_ followed by base64")
)

// Key returns the signing key a secret holds. Errors never repeat it.
func Key(secret string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(secret), "v1,")
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, ErrPrefix
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, ErrEncoding
	}
	return key, nil
}
