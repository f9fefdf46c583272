package storage

import (
	"log/slog"

	"github.com/clipper/clipper/internal/config"
)

// FromConfig returns the configured backend: *Local for
// CLIPPER_STORAGE_BACKEND=local (register its routes with
// Local.RegisterRoutes), *Supabase for supabase.
func FromConfig(cfg config.Config, log *slog.Logger) (Signer, error) {
	if cfg.StorageBackend == "supabase" {
		s, err := NewSupabase(cfg.SupabaseURL, cfg.SupabaseServiceRoleKey, SupabaseOptions{Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	l, err := NewLocal(cfg.StorageDir, cfg.PublicURL, cfg.StorageSigningSecret, LocalOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// PolicyFromConfig returns the TTL policy of CLIPPER_SIGNED_URL_TTL and
// CLIPPER_SIGNED_URL_MAX_TTL.
func PolicyFromConfig(cfg config.Config) TTLPolicy {
	return TTLPolicy{Default: cfg.SignedURLTTL, Max: cfg.SignedURLMaxTTL}
}
