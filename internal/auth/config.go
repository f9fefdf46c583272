package auth

import (
	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
)

// HashParams returns the argon2id parameters for new keys from cfg
// (CLIPPER_ARGON2_*), with the default salt and hash lengths.
func HashParams(cfg config.Config) apikeys.Params {
	p := apikeys.DefaultParams
	p.MemoryKiB = cfg.Argon2MemoryKiB
	p.Iterations = cfg.Argon2Iterations
	p.Parallelism = cfg.Argon2Parallelism
	return p
}

// ConfigOptions returns Options carrying cfg's cache, throttle,
// rate-limit and last-use settings; the caller adds Keys, Limiter and the rest.
func ConfigOptions(cfg config.Config) Options {
	return Options{
		CacheTTL:                cfg.KeyCacheTTL,
		DisconnectedTTL:         cfg.KeyDisconnectedTTL,
		FailuresPerKey:          cfg.AuthFailuresPerKey,
		FailuresPerClient:       cfg.AuthFailuresPerClient,
		MaxPendingVerifications: cfg.AuthMaxPending,
		DefaultRateLimit:        cfg.DefaultRateLimit,
		LastUsedFlushInterval:   cfg.LastUsedFlushInterval,
	}
}
