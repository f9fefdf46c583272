package config

import (
	"errors"
	"fmt"

	"github.com/clipper/clipper/internal/whsec"
)

// MinSecretBytes is the shortest webhook or storage-signing secret
// accepted: 256 bits, the size of the HMAC-SHA256 key they become, and
// what Supabase generates for its own webhook secrets (whsec_ followed
// by 32 bytes in base64).
const MinSecretBytes = 32

// checkSecretLengths refuses secrets too short to resist guessing. The
// messages name the variable and the rule, never the value.
func checkSecretLengths(c Config) []error {
	var errs []error
	short := func(name string) {
		errs = append(errs, fmt.Errorf("%s: must be at least %d bytes (e.g. openssl rand -base64 %d)", name, MinSecretBytes, MinSecretBytes))
	}
	if s := c.WebhookSecret; s != "" && len(s) < MinSecretBytes {
		short("CLIPPER_WEBHOOK_SECRET")
	}
	if s := c.StorageSigningSecret; s != "" && len(s) < MinSecretBytes {
		short("CLIPPER_STORAGE_SIGNING_SECRET")
	}
	if s := c.WebhookSigningSecret; s != "" {
		key, err := whsec.Key(s)
		switch {
		case errors.Is(err, whsec.ErrPrefix):
			// Reported by Load: must start with whsec_.
		case err != nil:
			errs = append(errs, errors.New("CLIPPER_WEBHOOK_SIGNING_SECRET: must be whsec_ followed by base64"))
		case len(key) < MinSecretBytes:
			errs = append(errs, fmt.Errorf("CLIPPER_WEBHOOK_SIGNING_SECRET: the key after whsec_ must be at least %d bytes", MinSecretBytes))
		}
	}
	return errs
}

// DatabaseURL returns DATABASE_URL, or the contents of the file named by
// DATABASE_URL_FILE, exactly as Load reads it for the daemon: every
// command that needs only the database uses it, so none can miss the
// file form. "" when neither is set.
func DatabaseURL() (string, error) {
	var errs []error
	u := reader{errs: &errs}.secret("DATABASE_URL", "")
	if len(errs) > 0 {
		return "", errs[0]
	}
	return u, nil
}
