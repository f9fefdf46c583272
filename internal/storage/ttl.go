package storage

import (
	"time"

	"github.com/clipper/clipper/internal/apperr"
)

// The lifetimes used when a TTLPolicy leaves them unset: short, like
// Supabase's own examples (60 s), and capped well below a day.
const (
	DefaultTTL    = 60 * time.Second
	DefaultMaxTTL = time.Hour
)

// TTLPolicy decides how long a signed URL lives. Supabase Storage accepts
// any expiry, so the daemon enforces its own default and cap.
type TTLPolicy struct {
	Default time.Duration // used when the caller asks for none; DefaultTTL if zero
	Max     time.Duration // the longest a caller may ask for; DefaultMaxTTL if zero
}

// Resolve returns the lifetime for a request: the default for 0, else the
// requested one truncated to whole seconds (Supabase signs in seconds). A
// lifetime under one second or above the maximum is invalid_input naming
// the limit.
func (p TTLPolicy) Resolve(requested time.Duration) (time.Duration, error) {
	def, maxTTL := p.Default, p.Max
	if def <= 0 {
		def = DefaultTTL
	}
	if maxTTL <= 0 {
		maxTTL = DefaultMaxTTL
	}
	if requested == 0 {
		requested = min(def, maxTTL)
	}
	switch {
	case requested < time.Second:
		return 0, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is below the minimum of 1s", requested)
	case requested > maxTTL:
		return 0, apperr.New(apperr.InvalidInput, "signed URL lifetime %s is above the maximum of %s", requested, maxTTL)
	}
	return requested.Truncate(time.Second), nil
}
