// Package rls runs SQL the way PostgREST runs a request, so that tests can
// check the row-level security policies and grants as a frontend meets
// them. See rls_test.go for the policy tests themselves.
package rls

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The database roles PostgREST switches to.
const (
	Anon          = "anon"
	Authenticated = "authenticated"
	ServiceRole   = "service_role"
)

// SearchPath is what PostgREST sets for a request on Supabase (db-schemas
// plus db-extra-search-path).
const SearchPath = `"public", "extensions"`

// Request is one PostgREST request as the database sees it.
type Request struct {
	Role string // anon, authenticated or service_role
	// Claims is the JWT payload exactly as PostgREST hands it to the
	// database; empty for a request without a token.
	Claims  string
	Method  string            // HTTP method; GET and HEAD run read-only. Default POST.
	Path    string            // request path, e.g. /jobs. Default /.
	Headers map[string]string // lower-case header names, as PostgREST sets them
}

// Do runs fn inside a savepoint of tx set up as PostgREST sets up a
// request's transaction: read-only for GET and HEAD, `set local role`,
// then the request GUCs (request.jwt.claims, request.method, request.path,
// request.headers, request.cookies). The savepoint is always rolled back,
// so requests never see each other's writes and the role never leaks past
// fn. fn's error is returned as is, for the caller to inspect its SQLSTATE.
func Do(ctx context.Context, tx pgx.Tx, req Request, fn func(pgx.Tx) error) error {
	switch req.Role {
	case Anon, Authenticated, ServiceRole:
	default:
		return fmt.Errorf("rls: unknown role %q", req.Role)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = "POST"
	}
	path := req.Path
	if path == "" {
		path = "/"
	}
	headers := req.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	headersJSON, err := json.Marshal(headers)
	if err != nil {
		return fmt.Errorf("rls: headers: %w", err)
	}

	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("rls: savepoint: %w", err)
	}
	defer sp.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // always undone

	if method == "GET" || method == "HEAD" {
		if _, err := sp.Exec(ctx, "set local transaction_read_only = on"); err != nil {
			return fmt.Errorf("rls: read only: %w", err)
		}
	}
	if _, err := sp.Exec(ctx, "set local role "+pgx.Identifier{req.Role}.Sanitize()); err != nil {
		return fmt.Errorf("rls: set role: %w", err)
	}
	// Claims are passed as text, unchecked: the database, not this helper,
	// must cope with whatever arrives.
	if _, err := sp.Exec(ctx, `select
		set_config('search_path', $1, true),
		set_config('request.jwt.claims', $2, true),
		set_config('request.method', $3, true),
		set_config('request.path', $4, true),
		set_config('request.headers', $5, true),
		set_config('request.cookies', '{}', true)`,
		SearchPath, req.Claims, method, path, string(headersJSON)); err != nil {
		return fmt.Errorf("rls: request settings: %w", err)
	}
	return fn(sp)
}

// AsUser runs fn as one read-write request (POST /) with the given role
// and claims JSON. See Do.
func AsUser(ctx context.Context, tx pgx.Tx, role, claims string, fn func(pgx.Tx) error) error {
	return Do(ctx, tx, Request{Role: role, Claims: claims}, fn)
}

// UserClaims returns the claims of a Supabase Auth access token for the
// user sub.
func UserClaims(sub string) string {
	return mustJSON(map[string]any{
		"aud":  "authenticated",
		"exp":  4102444800,
		"iat":  1700000000,
		"iss":  "http://127.0.0.1:54321/auth/v1",
		"sub":  sub,
		"role": Authenticated,
		"aal":  "aal1",
		"app_metadata": map[string]any{
			"provider": "email",
		},
		"is_anonymous": false,
	})
}

// AnonymousUserClaims returns the claims of a Supabase Auth access token
// for an anonymous sign-in: the authenticated role, with is_anonymous.
func AnonymousUserClaims(sub string) string {
	return mustJSON(map[string]any{
		"aud":          "authenticated",
		"exp":          4102444800,
		"iat":          1700000000,
		"iss":          "http://127.0.0.1:54321/auth/v1",
		"sub":          sub,
		"role":         Authenticated,
		"aal":          "aal1",
		"amr":          []map[string]any{{"method": "anonymous", "timestamp": 1700000000}},
		"app_metadata": map[string]any{},
		"is_anonymous": true,
	})
}

// AnonClaims returns the claims of a project's anon key.
func AnonClaims() string {
	return mustJSON(map[string]any{"iss": "supabase", "role": Anon, "exp": 4102444800})
}

// ServiceClaims returns the claims of a project's service_role key.
func ServiceClaims() string {
	return mustJSON(map[string]any{"iss": "supabase", "role": ServiceRole, "exp": 4102444800})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
