// Package keysapi administers API keys: the HTTP routes (create, list,
// get, rotate, revoke; scope keys:admin) and the `clipper keys` command.
package keysapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/httpapi"
)

// MaxGrace is the longest grace period a rotation may give the old key.
const MaxGrace = 30 * 24 * time.Hour

// Register adds the routes, all behind the keys:admin scope:
//
//	POST /v1/keys               create; the response holds the key's plaintext, once
//	GET  /v1/keys               list the keys the caller manages (admin: ?owner_id=<uuid> for one owner's)
//	GET  /v1/keys/:id           one key
//	POST /v1/keys/:id/rotate    {"grace_seconds": N}; the new key's plaintext, once
//	POST /v1/keys/:id/revoke    stop the key at once
//
// No response holds a hash. What a caller may do to other keys is in
// authority (policy.go): it grants only scopes it holds, an owner-bound
// key manages only its owner's keys, and only admin crosses owners, so
// keys:admin cannot be turned into more than it holds.
func Register(e *echo.Echo, a *auth.Authenticator, keys *apikeys.Repo) {
	h := handlers{auth: a, keys: keys}
	g := e.Group("/v1/keys", a.Require(apikeys.ScopeKeysAdmin))
	g.POST("", h.create)
	g.GET("", h.list)
	g.GET("/:id", h.get)
	g.POST("/:id/rotate", h.rotate)
	g.POST("/:id/revoke", h.revoke)
}

type handlers struct {
	auth *auth.Authenticator
	keys *apikeys.Repo
}

type createRequest struct {
	Name               string          `json:"name"`
	Scopes             []apikeys.Scope `json:"scopes"`
	OwnerID            *uuid.UUID      `json:"owner_id"`
	RateLimitPerMinute *int32          `json:"rate_limit_per_minute"`
	ExpiresAt          *time.Time      `json:"expires_at"`
}

// issued is a key with its plaintext, the one response that shows it.
type issued struct {
	Key   apikeys.Key `json:"key"`
	Token string      `json:"token"`
}

type rotated struct {
	issued
	Previous apikeys.Key `json:"previous"`
}

func (h handlers) create(c echo.Context) error {
	var req createRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if len(req.Scopes) == 0 {
		return apperr.New(apperr.InvalidInput, "scopes must name at least one scope")
	}
	a, err := caller(c)
	if err != nil {
		return err
	}
	if err := a.grant(req.Scopes, "create"); err != nil {
		return err
	}
	owner, err := a.createOwner(req.OwnerID)
	if err != nil {
		return err
	}
	key, token, err := h.keys.Create(c.Request().Context(), apikeys.CreateParams{
		OwnerID:            owner,
		Name:               req.Name,
		Scopes:             req.Scopes,
		RateLimitPerMinute: req.RateLimitPerMinute,
		ExpiresAt:          req.ExpiresAt,
	})
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusCreated, issued{Key: key, Token: token})
}

func (h handlers) list(c echo.Context) error {
	var owner *uuid.UUID
	if s := c.QueryParam("owner_id"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return apperr.New(apperr.InvalidInput, "owner_id is not a UUID")
		}
		owner = &id
	}
	a, err := caller(c)
	if err != nil {
		return err
	}
	var keys []apikeys.Key
	ctx := c.Request().Context()
	switch {
	case a.admin():
		keys, err = h.keys.List(ctx, owner)
	case owner != nil:
		if err := a.reach(owner); err != nil {
			return err
		}
		keys, err = h.keys.List(ctx, owner)
	case a.key.OwnerID != nil:
		keys, err = h.keys.List(ctx, a.key.OwnerID)
	default:
		keys, err = h.keys.ListWithoutOwner(ctx)
	}
	if err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, map[string]any{"keys": keys})
}

func (h handlers) get(c echo.Context) error {
	a, err := caller(c)
	if err != nil {
		return err
	}
	key, err := h.target(c)
	if err != nil {
		return err
	}
	if err := a.reach(key.OwnerID); err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusOK, map[string]any{"key": key})
}

type rotateRequest struct {
	// GraceSeconds is how long the old key keeps working; 0 stops it at
	// once. Required, so that no one stops a key by leaving it out.
	GraceSeconds *int64 `json:"grace_seconds"`
}

func (h handlers) rotate(c echo.Context) error {
	var req rotateRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if req.GraceSeconds == nil {
		return apperr.New(apperr.InvalidInput, "grace_seconds is required (0 stops the old key at once)")
	}
	if *req.GraceSeconds < 0 || *req.GraceSeconds > int64(MaxGrace/time.Second) {
		return apperr.New(apperr.InvalidInput, "grace_seconds must be between 0 and %d", int64(MaxGrace/time.Second))
	}
	a, err := caller(c)
	if err != nil {
		return err
	}
	old, err := h.target(c)
	if err != nil {
		return err
	}
	if err := a.rotate(old); err != nil {
		return err
	}
	ctx := c.Request().Context()
	key, token, err := h.keys.Rotate(ctx, old.ID, time.Duration(*req.GraceSeconds)*time.Second)
	if err != nil {
		return err
	}
	h.auth.Evict(old.ID, old.LookupID)
	if old, err = h.keys.Get(ctx, old.ID); err != nil {
		return err
	}
	return httpapi.OK(c, http.StatusCreated, rotated{issued: issued{Key: key, Token: token}, Previous: old})
}

func (h handlers) revoke(c echo.Context) error {
	a, err := caller(c)
	if err != nil {
		return err
	}
	old, err := h.target(c)
	if err != nil {
		return err
	}
	if err := a.revoke(old); err != nil {
		return err
	}
	key, err := h.keys.Revoke(c.Request().Context(), old.ID)
	if err != nil {
		return err
	}
	h.auth.Evict(key.ID, key.LookupID)
	return httpapi.OK(c, http.StatusOK, map[string]any{"key": key})
}

// target loads the key named by the :id path parameter.
func (h handlers) target(c echo.Context) (apikeys.Key, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return apikeys.Key{}, apperr.New(apperr.InvalidInput, "key id is not a UUID")
	}
	return h.keys.Get(c.Request().Context(), id)
}

// caller returns the authority of the request's key. Every route is
// behind Require, so a missing key is a wiring mistake.
func caller(c echo.Context) (authority, error) {
	key, ok := auth.KeyFrom(c)
	if !ok {
		return authority{}, apperr.New(apperr.Internal, "route has no API key check")
	}
	return authority{key: key}, nil
}
