package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/whsec"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Tolerance is how far webhook-timestamp may be from the receiver's clock,
// either way; it bounds how long a captured delivery can be replayed
// before the delivery key (webhook-id) alone has to stop it.
const Tolerance = 5 * time.Minute

// minSigningKeyLen is the shortest signing key accepted (128 bits).
const minSigningKeyLen = 16

// bearer checks Authorization headers against one secret.
type bearer struct{ sum [sha256.Size]byte }

func newBearer(secret string) bearer { return bearer{sum: sha256.Sum256([]byte(secret))} }

// check reports whether header is "Bearer <secret>". Both sides are
// hashed first, so the comparison takes the same time whatever the
// presented token's length or content.
func (b bearer) check(header string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], b.sum[:]) == 1 && ok
}

// Verifier checks Standard Webhooks signatures: webhook-signature holds
// space-separated "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
type Verifier struct{ key []byte }

// NewVerifier parses a signing secret "whsec_<base64 key>", optionally
// prefixed "v1," as Supabase writes it. Errors never repeat the secret.
func NewVerifier(secret string) (*Verifier, error) {
	key, err := whsec.Key(secret)
	switch {
	case errors.Is(err, whsec.ErrPrefix):
		return nil, apperr.New(apperr.InvalidInput, "webhook signing secret must start with whsec_")
	case err != nil:
		return nil, apperr.New(apperr.InvalidInput, "webhook signing secret is not whsec_ followed by base64")
	}
	if len(key) < minSigningKeyLen {
		return nil, apperr.New(apperr.InvalidInput, "webhook signing secret must hold at least %d bytes", minSigningKeyLen)
	}
	return &Verifier{key: key}, nil
}

// Sign returns the webhook-signature value for one delivery.
func (v *Verifier) Sign(id, timestamp string, body []byte) string {
	return "v1," + v.signature(id, timestamp, body)
}

func (v *Verifier) signature(id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, v.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks one delivery's headers against its exact body at time
// now. Errors are unauthorized, with a message that names the failed
// check and never a header's value.
func (v *Verifier) Verify(id, timestamp, signatures string, body []byte, now time.Time) error {
	if id == "" || timestamp == "" || signatures == "" {
		return unauthorized("missing %s, %s or %s header", HeaderID, HeaderTimestamp, HeaderSignature)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return unauthorized("%s is not a Unix time in seconds", HeaderTimestamp)
	}
	if !within(ts, now.Unix(), int64(Tolerance/time.Second)) {
		return unauthorized("%s is more than %s away from the server's clock", HeaderTimestamp, Tolerance)
	}
	want := []byte(v.signature(id, timestamp, body))
	for _, sig := range strings.Fields(signatures) {
		version, value, ok := strings.Cut(sig, ",")
		if ok && version == "v1" && hmac.Equal([]byte(value), want) {
			return nil
		}
	}
	return unauthorized("no valid signature in %s", HeaderSignature)
}

// within reports |a-b| <= tol without overflowing for any int64 a and b.
func within(a, b, tol int64) bool {
	if a < b {
		a, b = b, a
	}
	return uint64(a)-uint64(b) <= uint64(tol)
}

func unauthorized(format string, args ...any) error {
	return apperr.New(apperr.Unauthorized, format, args...)
}
