package apikeys

import (
	"slices"
	"strings"

	"github.com/clipper/clipper/internal/apperr"
)

// Scope is a permission granted to a key. The vocabulary matches the
// api_keys_scopes_check constraint.
type Scope string

// The scopes a key can hold.
const (
	ScopeJobsRead  Scope = "jobs:read"  // read jobs and their events
	ScopeJobsWrite Scope = "jobs:write" // create and cancel jobs
	ScopeWorker    Scope = "worker"     // claim, heartbeat, progress and finish jobs
	ScopeKeysAdmin Scope = "keys:admin" // create, list, rotate and revoke keys
	ScopeAdmin     Scope = "admin"      // everything, including every scope above
)

// AllScopes returns every scope, in a fixed order.
func AllScopes() []Scope {
	return []Scope{ScopeJobsRead, ScopeJobsWrite, ScopeWorker, ScopeKeysAdmin, ScopeAdmin}
}

// Valid reports whether s is one of the known scopes.
func (s Scope) Valid() bool { return slices.Contains(AllScopes(), s) }

// NormalizeScopes checks every scope and returns them sorted and without
// duplicates, the form they are stored in. An unknown scope is
// invalid_input; the message gives its position and the known scopes but
// does not repeat it, since a misplaced key could arrive in that field.
func NormalizeScopes(scopes []Scope) ([]Scope, error) {
	out := make([]Scope, 0, len(scopes))
	for i, s := range scopes {
		if !s.Valid() {
			return nil, apperr.New(apperr.InvalidInput,
				"scope %d is unknown; known scopes are %s", i+1, knownScopes)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// HasScope reports whether the key grants s: it holds s itself, or admin.
func (k Key) HasScope(s Scope) bool {
	return slices.Contains(k.Scopes, s) || slices.Contains(k.Scopes, ScopeAdmin)
}

var knownScopes = strings.Join(scopesToDB(AllScopes()), ", ")

func scopesFromDB(ss []string) []Scope {
	out := make([]Scope, len(ss))
	for i, s := range ss {
		out[i] = Scope(s)
	}
	return out
}

func scopesToDB(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}
