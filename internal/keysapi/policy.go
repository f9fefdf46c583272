package keysapi

import (
	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

// authority is what the calling key may do to other keys over HTTP. The
// rules, so that no key can mint or take over more than it holds:
//
//   - a key grants only scopes it holds itself (admin holds them all), by
//     create and by rotate, since a rotation hands out a new plaintext
//     with the old key's scopes;
//   - a key with an owner manages (create, list, get, rotate, revoke) only
//     that owner's keys, and the keys it creates belong to that owner;
//   - a key without an owner (and without admin) sees and revokes only
//     keys without an owner, and creates or rotates none: a key without an
//     owner reaches every owner's queue (worker), so only admin makes one;
//   - only admin crosses owners, makes keys without an owner, and grants,
//     rotates or revokes admin.
//
// `clipper keys` does not go through these rules: it is the operator's
// tool, with the database credentials, which already reach everything.
type authority struct{ key apikeys.Key }

func (a authority) admin() bool { return a.key.HasScope(apikeys.ScopeAdmin) }

// reach says whether the caller manages keys of owner (nil: no owner).
func (a authority) reach(owner *uuid.UUID) error {
	switch {
	case a.admin():
		return nil
	case a.key.OwnerID != nil && owner != nil && *owner == *a.key.OwnerID:
		return nil
	case a.key.OwnerID != nil:
		return apperr.New(apperr.Forbidden, "an api key with an owner manages only its owner's keys")
	case owner == nil:
		return nil
	}
	return apperr.New(apperr.Forbidden, "an api key without an owner manages only keys without an owner; only a key with scope admin crosses owners")
}

// createOwner returns the owner a new key gets: the one asked for, or the
// caller's own when none is asked for and the caller is not admin.
func (a authority) createOwner(asked *uuid.UUID) (*uuid.UUID, error) {
	if a.admin() {
		return asked, nil
	}
	if asked == nil {
		asked = a.key.OwnerID
	}
	if asked == nil {
		return nil, apperr.New(apperr.Forbidden, "only a key with scope admin may create a key without an owner")
	}
	if a.key.OwnerID == nil || *asked != *a.key.OwnerID {
		return nil, apperr.New(apperr.Forbidden, "only a key with scope admin may create keys for another owner")
	}
	return asked, nil
}

// grant says whether the caller may hand out a key with scopes, by
// creating or (verb "rotate") rotating one.
func (a authority) grant(scopes []apikeys.Scope, verb string) error {
	for _, s := range scopes {
		if s == apikeys.ScopeAdmin && !a.admin() {
			if verb == "rotate" {
				return apperr.New(apperr.Forbidden, "only a key with scope admin may rotate an admin key")
			}
			return apperr.New(apperr.Forbidden, "only a key with scope admin may grant the admin scope")
		}
	}
	for _, s := range scopes {
		if s.Valid() && !a.key.HasScope(s) {
			if verb == "rotate" {
				return apperr.New(apperr.Forbidden, "an api key may rotate only keys whose scopes it holds itself; it lacks scope %s", s)
			}
			return apperr.New(apperr.Forbidden, "an api key may grant only scopes it holds itself; it lacks scope %s", s)
		}
	}
	return nil
}

// rotate says whether the caller may rotate target and so receive the
// plaintext of a key like it.
func (a authority) rotate(target apikeys.Key) error {
	if err := a.reach(target.OwnerID); err != nil {
		return err
	}
	if err := a.grant(target.Scopes, "rotate"); err != nil {
		return err
	}
	if target.OwnerID == nil && !a.admin() {
		return apperr.New(apperr.Forbidden, "only a key with scope admin may rotate a key without an owner")
	}
	return nil
}

// revoke says whether the caller may revoke target.
func (a authority) revoke(target apikeys.Key) error {
	if err := a.reach(target.OwnerID); err != nil {
		return err
	}
	if target.HasScope(apikeys.ScopeAdmin) && !a.admin() {
		return apperr.New(apperr.Forbidden, "only a key with scope admin may revoke an admin key")
	}
	return nil
}
