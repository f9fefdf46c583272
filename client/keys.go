package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// APIKey is an API key's metadata (never its secret or hash).
type APIKey struct {
	ID                 string     `json:"id"`
	LookupID           string     `json:"lookup_id"` // the public part of clp_<lookup id>_...
	OwnerID            *string    `json:"owner_id"`  // nil: a service key with no user
	Name               string     `json:"name"`
	Scopes             []string   `json:"scopes"` // jobs:read, jobs:write, worker, keys:admin, admin
	RateLimitPerMinute *int32     `json:"rate_limit_per_minute"`
	CreatedAt          time.Time  `json:"created_at"`
	LastUsedAt         *time.Time `json:"last_used_at"`
	ExpiresAt          *time.Time `json:"expires_at"`
	RevokedAt          *time.Time `json:"revoked_at"`
	RotatedFrom        *string    `json:"rotated_from"`
}

// NewAPIKey asks for a key (scope keys:admin; granting admin needs an
// admin key).
type NewAPIKey struct {
	Name               string     `json:"name"`
	Scopes             []string   `json:"scopes"`
	OwnerID            *string    `json:"owner_id,omitempty"`
	RateLimitPerMinute *int32     `json:"rate_limit_per_minute,omitempty"`
	ExpiresAt          *time.Time `json:"expires_at,omitempty"`
}

// IssuedKey is a new key and its token, shown this once.
type IssuedKey struct {
	Key   APIKey `json:"key"`
	Token string `json:"token"`
	// Previous is the rotated key (RotateKey only), valid until its grace
	// period ends.
	Previous *APIKey `json:"previous,omitempty"`
}

// CreateKey makes an API key. Each call makes a new key, so it is sent
// again only when the daemon surely did not act (429, 503, no
// connection).
func (c *Client) CreateKey(ctx context.Context, k NewAPIKey) (IssuedKey, error) {
	var out IssuedKey
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/keys", body: k, safety: once}, &out)
	return out, err
}

// Keys lists keys, of one owner when ownerID is not "".
func (c *Client) Keys(ctx context.Context, ownerID string) ([]APIKey, error) {
	q := url.Values{}
	if ownerID != "" {
		q.Set("owner_id", ownerID)
	}
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/keys", query: q, safety: idempotent}, &out)
	return out.Keys, err
}

// Key reads one key's metadata.
func (c *Client) Key(ctx context.Context, id string) (APIKey, error) {
	var out struct {
		Key APIKey `json:"key"`
	}
	_, err := c.do(ctx, call{method: http.MethodGet, path: "/v1/keys/" + url.PathEscape(id), safety: idempotent}, &out)
	return out.Key, err
}

// RotateKey makes a new key with the same owner, scopes and limits; the
// old one keeps working for grace (0: it stops at once). Sent again only
// when the daemon surely did not act.
func (c *Client) RotateKey(ctx context.Context, id string, grace time.Duration) (IssuedKey, error) {
	var out IssuedKey
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/keys/" + url.PathEscape(id) + "/rotate",
		body: map[string]int64{"grace_seconds": int64(grace / time.Second)}, safety: once}, &out)
	return out, err
}

// RevokeKey stops a key at once, on every replica. Safe to repeat: the
// first revocation time is kept.
func (c *Client) RevokeKey(ctx context.Context, id string) (APIKey, error) {
	var out struct {
		Key APIKey `json:"key"`
	}
	_, err := c.do(ctx, call{method: http.MethodPost, path: "/v1/keys/" + url.PathEscape(id) + "/revoke", safety: idempotent}, &out)
	return out.Key, err
}
