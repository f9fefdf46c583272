package client_test

// An emulation of PostgREST (and of the part of Supabase Storage the User
// client calls), for testing the User client on the real database. No
// PostgREST server can be installed on these machines (no Debian or npm package), so
// this server answers exactly the requests the User client makes, and
// runs each one on the real database the way PostgREST does, so that the
// project's grants and row-level security policies decide every answer:
//
//   - one transaction per request: read only for GET/HEAD, then
//     `set local role <jwt role>` and the request GUCs
//     (request.jwt.claims, request.method, request.path, request.headers),
//     exactly as rls/rls.go sets them up (PostgREST's documented
//     behaviour, "Transactions" and "Accessing Request Headers, Cookies
//     and JWT claims" in its docs);
//   - the JWT is checked with the project's secret (HS256) and its role
//     claim picks the role; an invalid one is PGRST301, 401;
//   - the query string syntax of PostgREST's docs ("Tables and Views":
//     horizontal filtering col=op.value with eq, neq, lt, lte, gt, gte,
//     in.(...), is; or=(...)/and=(...) logic trees with double-quoted
//     values; order=col.asc|desc[.nullsfirst|.nullslast]; limit; offset;
//     select=* only); values are sent as untyped literals, as PostgREST
//     does, so Postgres casts them to the column's type;
//   - writes: POST (insert) and PATCH (update) with a JSON body,
//     json_populate_record[set] over the table's row type, the payload's
//     keys as the column list, Prefer: return=representation|minimal;
//   - Accept: application/vnd.pgrst.object+json asks for exactly one row,
//     else PGRST116 406 "Cannot coerce the result to a single JSON object"
//     with details "The result contains N rows" (PostgREST's Error.hs).
//     Like PostgREST, only the first Accept header counts (postgrest-go
//     sends its default application/json after the object type);
//   - errors: {code, message, details, hint} with the status PostgREST's
//     Error.hs mapSQLtoHTTP gives the SQLSTATE (23505 409, 23503 409,
//     42501 403 authenticated / 401 anon, 25006 405, 08* 503, P0001 400,
//     any other 400, ...);
//   - rows are rendered by Postgres itself (json_agg), as PostgREST does.
//
// It does not cover: embedding, select lists, counts, Range headers,
// RPC, upserts, CSV, the schema cache's errors beyond unknown tables,
// JWT audience/expiry options, or PostgREST's connection pool behaviour.
//
// Storage: POST /storage/v1/object/{bucket}/{name} inserts the
// storage.objects row as the token's role (RLS on storage.objects
// decides, as Supabase Storage's own database calls do), writes the bytes
// where the daemon's local backend serves them, and answers
// {"Key","Id"}; refusals come back as Storage sends them: HTTP 400 with
// the real status as a string in statusCode (measured against
// supabase/storage v1.70.6). Then, as pg_net would after the commit, it delivers
// the database webhook (the storage.objects INSERT) to the daemon.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgrstRequest is one request the emulator received, for checking the
// client's request shapes.
type pgrstRequest struct {
	Method string
	Path   string
	Query  string // raw, as sent
	Header http.Header
}

type pgrstEmulator struct {
	url        string
	pool       *pgxpool.Pool
	jwtSecret  []byte
	storageDir string // the daemon's CLIPPER_STORAGE_DIR
	webhookURL string // the daemon's /webhooks/supabase
	webhookKey string

	mu   sync.Mutex
	reqs []pgrstRequest
}

func newPgrstEmulator(t testing.TB, pool *pgxpool.Pool, secret []byte, storageDir, webhookURL, webhookKey string) *pgrstEmulator {
	t.Helper()
	p := &pgrstEmulator{pool: pool, jwtSecret: secret, storageDir: storageDir, webhookURL: webhookURL, webhookKey: webhookKey}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *pgrstEmulator) requests() []pgrstRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pgrstRequest(nil), p.reqs...)
}

func (p *pgrstEmulator) reset() {
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
}

// token signs a Supabase Auth-shaped access token.
func (p *pgrstEmulator) token(sub, role string) string {
	claims := jwt.MapClaims{"aud": "authenticated", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"iss": "http://127.0.0.1:54321/auth/v1", "role": role, "aal": "aal1", "is_anonymous": false}
	if sub != "" {
		claims["sub"] = sub
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(p.jwtSecret)
	if err != nil {
		panic(err)
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// pgrstErr answers a PostgREST error body. details and hint are null
// when empty (PostgREST encodes Maybe values as null).
func pgrstErr(w http.ResponseWriter, status int, code, message, details, hint string) {
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	b, _ := json.Marshal(map[string]any{"code": code, "message": message, "details": nullable(details), "hint": nullable(hint)})
	w.Header().Set("Proxy-Status", "PostgREST; error="+code)
	writeJSON(w, status, b)
}

// pgStatus is PostgREST's mapSQLtoHTTP (src/PostgREST/Error.hs) for the
// SQLSTATEs a request can meet here.
func pgStatus(code string, authed bool) int {
	switch {
	case strings.HasPrefix(code, "08"):
		return 503
	case strings.HasPrefix(code, "09"):
		return 500
	case strings.HasPrefix(code, "0L"), strings.HasPrefix(code, "0P"):
		return 403
	case code == "23503", code == "23505":
		return 409
	case code == "25006":
		return 405
	case strings.HasPrefix(code, "25"), strings.HasPrefix(code, "2D"), strings.HasPrefix(code, "38"),
		strings.HasPrefix(code, "39"), strings.HasPrefix(code, "3B"), strings.HasPrefix(code, "40"):
		return 500
	case strings.HasPrefix(code, "28"):
		return 403
	case code == "53400":
		return 500
	case strings.HasPrefix(code, "53"), code == "57P01":
		return 503
	case strings.HasPrefix(code, "54"), strings.HasPrefix(code, "55"), strings.HasPrefix(code, "57"),
		strings.HasPrefix(code, "58"), strings.HasPrefix(code, "F0"), strings.HasPrefix(code, "HV"),
		strings.HasPrefix(code, "XX"), code == "42P17":
		return 500
	case code == "P0001":
		return 400
	case strings.HasPrefix(code, "P0"):
		return 500
	case code == "42883", code == "42P01":
		return 404
	case code == "42501":
		if authed {
			return 403
		}
		return 401
	}
	return 400
}

var identRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// claims checks the bearer JWT as PostgREST does; no token is the anon
// role.
func (p *pgrstEmulator) claims(r *http.Request) (role, claimsJSON string, err error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "anon", "", nil
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return "", "", errors.New("Expected 3 parts in JWT; got 1")
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return p.jwtSecret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		return "", "", errors.New("JWT cryptographic operation failed")
	}
	mc := parsed.Claims.(jwt.MapClaims)
	role, _ = mc["role"].(string)
	if role == "" {
		role = "anon"
	}
	b, _ := json.Marshal(mc)
	return role, string(b), nil
}

func (p *pgrstEmulator) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, pgrstRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
	p.mu.Unlock()
	// The API gateway (Kong) in front of PostgREST and Storage refuses a
	// request without an apikey.
	if r.Header.Get("apikey") == "" {
		writeJSON(w, 401, []byte(`{"message":"No API key found in request"}`))
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/rest/v1/"):
		p.rest(w, r, strings.TrimPrefix(r.URL.Path, "/rest/v1/"))
	case strings.HasPrefix(r.URL.Path, "/storage/v1/object/") && r.Method == http.MethodPost:
		p.storageUpload(w, r, strings.TrimPrefix(r.URL.Path, "/storage/v1/object/"))
	default:
		writeJSON(w, 404, []byte(`{"message":"no Route matched with those values"}`))
	}
}

// begin opens the request's transaction as PostgREST sets it up.
func (p *pgrstEmulator) begin(ctx context.Context, r *http.Request, role, claims string, readOnly bool) (pgx.Tx, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if readOnly {
		if _, err := tx.Exec(ctx, "set local transaction_read_only = on"); err != nil {
			tx.Rollback(ctx)
			return nil, err
		}
	}
	headers := map[string]string{}
	for k := range r.Header {
		headers[strings.ToLower(k)] = r.Header.Get(k)
	}
	hj, _ := json.Marshal(headers)
	if _, err := tx.Exec(ctx, "set local role "+pgx.Identifier{role}.Sanitize()); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	if _, err := tx.Exec(ctx, `select set_config('search_path', '"public", "extensions"', true),
		set_config('request.jwt.claims', $1, true), set_config('request.method', $2, true),
		set_config('request.path', $3, true), set_config('request.headers', $4, true),
		set_config('request.cookies', '{}', true)`, claims, r.Method, r.URL.Path, string(hj)); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

func (p *pgrstEmulator) rest(w http.ResponseWriter, r *http.Request, table string) {
	ctx := r.Context()
	if table != "jobs" && table != "job_events" {
		pgrstErr(w, 404, "PGRST205", fmt.Sprintf("Could not find the table 'public.%s' in the schema cache", table), "", "")
		return
	}
	role, claims, err := p.claims(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		pgrstErr(w, 401, "PGRST301", err.Error(), "", "")
		return
	}
	// PostgREST's App.hs: authed is "the JWT's role is not the anon role".
	authed := role != "anon"
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		pgrstErr(w, 400, "PGRST100", err.Error(), "", "")
		return
	}
	single := strings.HasPrefix(r.Header.Values("Accept")[0], "application/vnd.pgrst.object+json")
	prefer := r.Header.Get("Prefer")
	qt := pgx.Identifier{"public", table}.Sanitize()

	var stmt string
	var args []any
	status := http.StatusOK
	switch r.Method {
	case http.MethodGet:
		if r.Header.Get("Accept-Profile") != "public" {
			pgrstErr(w, 406, "PGRST106", "Invalid schema: "+r.Header.Get("Accept-Profile"), "", "Only the following schemas are exposed: public")
			return
		}
		where, wargs := q.where(qt, nil)
		stmt = fmt.Sprintf("select * from %s%s%s", qt, where, q.tail())
		args = wargs
	case http.MethodPost, http.MethodPatch:
		if r.Header.Get("Content-Profile") != "public" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			pgrstErr(w, 415, "PGRST107", "None of these media types are available: "+r.Header.Get("Content-Type"), "", "")
			return
		}
		body, _ := io.ReadAll(r.Body)
		cols, err := payloadColumns(body)
		if err != nil {
			pgrstErr(w, 400, "PGRST102", err.Error(), "", "")
			return
		}
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = pgx.Identifier{c}.Sanitize()
		}
		list := strings.Join(quoted, ", ")
		if r.Method == http.MethodPost {
			// PostgREST: INSERT INTO t (cols) SELECT cols FROM
			// json_populate_recordset(null::t, body).
			stmt = fmt.Sprintf("insert into %s (%s) select %s from json_populate_recordset(null::%s, $1::json) returning *",
				qt, list, list, qt)
			args = []any{arrayOf(body)}
			status = http.StatusCreated
		} else {
			sets := make([]string, len(cols))
			for i, c := range quoted {
				sets[i] = fmt.Sprintf("%s = pgrst_body.%s", c, c)
			}
			where, wargs := q.where(qt, []any{string(body)})
			stmt = fmt.Sprintf("update %s set %s from (select * from json_populate_record(null::%s, $1::json)) pgrst_body%s returning %s.*",
				qt, strings.Join(sets, ", "), qt, where, qt)
			args = wargs
		}
	default:
		pgrstErr(w, 405, "PGRST117", "Unsupported HTTP method: "+r.Method, "", "")
		return
	}

	tx, err := p.begin(ctx, r, role, claims, r.Method == http.MethodGet)
	if err != nil {
		pgrstErr(w, 503, "PGRST000", "Database connection error. Retrying the connection.", "", "")
		return
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var out []byte
	var n int
	err = tx.QueryRow(ctx, fmt.Sprintf("with pgrst_source as (%s) select coalesce(json_agg(pgrst_source), '[]')::text, count(*) from pgrst_source", stmt),
		append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&out, &n)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		st := pgStatus(pgErr.Code, authed)
		if st == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", "Bearer") // Error.hs: headers of a 401 PgError
		}
		pgrstErr(w, st, pgErr.Code, pgErr.Message, pgErr.Detail, pgErr.Hint)
		return
	}
	if err != nil {
		pgrstErr(w, 500, "PGRSTX00", err.Error(), "", "")
		return
	}
	if single && n != 1 {
		// The transaction is rolled back, writes included.
		pgrstErr(w, 406, "PGRST116", "Cannot coerce the result to a single JSON object", fmt.Sprintf("The result contains %d rows", n), "")
		return
	}
	if err := tx.Commit(ctx); err != nil {
		pgrstErr(w, 500, "PGRSTX00", err.Error(), "", "")
		return
	}
	if single {
		var rows []json.RawMessage
		_ = json.Unmarshal(out, &rows)
		out = rows[0]
	}
	if r.Method != http.MethodGet && !strings.Contains(prefer, "return=representation") {
		w.WriteHeader(map[bool]int{true: 201, false: 204}[r.Method == http.MethodPost])
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Range", fmt.Sprintf("%d-%d/*", q.offset, q.offset+max(n, 1)-1))
	}
	writeJSON(w, status, out)
}

// arrayOf wraps a JSON object payload into an array.
func arrayOf(body []byte) string {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		return "[" + string(b) + "]"
	}
	return string(b)
}

// payloadColumns are the keys of the payload's (first) object.
func payloadColumns(body []byte) ([]string, error) {
	var objs []map[string]json.RawMessage
	b := []byte(arrayOf(body))
	if err := json.Unmarshal(b, &objs); err != nil || len(objs) == 0 {
		return nil, errors.New("Empty or invalid json")
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(bytes.TrimSpace(b), []byte("["))))
	var cols []string
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		if !identRe.MatchString(key) {
			return nil, fmt.Errorf("bad column %q", key)
		}
		cols = append(cols, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return cols, nil
}

// query is a parsed PostgREST query string.
type query struct {
	filters []cond // and-ed
	order   []string
	limit   int
	offset  int
}

// cond is a filter: a leaf (col op value) or an and/or of conds.
type cond struct {
	col, op string
	vals    []string
	logic   string // "and", "or" for a tree
	kids    []cond
}

func parseQuery(raw string) (query, error) {
	var q query
	q.limit = -1
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := urlUnescape(k)
		val, err2 := urlUnescape(v)
		if err1 != nil || err2 != nil {
			return q, errors.New("bad query string")
		}
		switch key {
		case "select":
			if val != "*" {
				return q, fmt.Errorf("the emulation serves select=* only, got %q", val)
			}
		case "order":
			for _, o := range strings.Split(val, ",") {
				f := strings.Split(o, ".")
				if !identRe.MatchString(f[0]) {
					return q, fmt.Errorf("bad order %q", o)
				}
				s := pgx.Identifier{f[0]}.Sanitize()
				for _, m := range f[1:] {
					switch m {
					case "asc", "desc":
						s += " " + m
					case "nullsfirst":
						s += " nulls first"
					case "nullslast":
						s += " nulls last"
					default:
						return q, fmt.Errorf("bad order %q", o)
					}
				}
				q.order = append(q.order, s)
			}
		case "limit", "offset":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return q, fmt.Errorf("bad %s", key)
			}
			if key == "limit" {
				q.limit = n
			} else {
				q.offset = n
			}
		case "or", "and":
			kids, rest, err := parseTree(val)
			if err != nil || rest != "" {
				return q, fmt.Errorf("\"failed to parse logic tree (%s)\"", val)
			}
			q.filters = append(q.filters, cond{logic: key, kids: kids})
		default:
			if !identRe.MatchString(key) {
				return q, fmt.Errorf("bad column %q", key)
			}
			c, err := parseLeaf(key, val)
			if err != nil {
				return q, err
			}
			q.filters = append(q.filters, c)
		}
	}
	return q, nil
}

func urlUnescape(s string) (string, error) {
	s = strings.ReplaceAll(s, "+", "%20")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// parseLeaf reads op.value (value for in is (a,b,...)).
func parseLeaf(col, s string) (cond, error) {
	op, val, ok := strings.Cut(s, ".")
	if !ok {
		return cond{}, fmt.Errorf("bad filter %s=%s", col, s)
	}
	switch op {
	case "eq", "neq", "lt", "lte", "gt", "gte", "is":
		return cond{col: col, op: op, vals: []string{unquote(val)}}, nil
	case "in":
		inner := strings.TrimSuffix(strings.TrimPrefix(val, "("), ")")
		vals, err := splitList(inner)
		return cond{col: col, op: op, vals: vals}, err
	}
	return cond{}, fmt.Errorf("the emulation does not serve operator %q", op)
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), `\\`, `\`)
	}
	return v
}

// splitList splits a,b,"c,d" at top-level commas.
func splitList(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == ',' && !quoted:
			out = append(out, unquote(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	out = append(out, unquote(cur.String()))
	return out, nil
}

// parseTree reads "(x,y,...)" where each item is col.op.value or
// and(...)/or(...); it returns the items and what follows the ")".
func parseTree(s string) ([]cond, string, error) {
	if !strings.HasPrefix(s, "(") {
		return nil, s, errors.New("expected (")
	}
	s = s[1:]
	var kids []cond
	for {
		switch {
		case strings.HasPrefix(s, "and("), strings.HasPrefix(s, "or("):
			logic, rest, _ := strings.Cut(s, "(")
			sub, after, err := parseTree("(" + rest)
			if err != nil {
				return nil, s, err
			}
			kids = append(kids, cond{logic: logic, kids: sub})
			s = after
		default:
			// col.op.value up to a top-level , or ).
			i, quoted := 0, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && quoted {
					i++
					continue
				}
				if s[i] == '"' {
					quoted = !quoted
				}
				if !quoted && (s[i] == ',' || s[i] == ')') {
					break
				}
			}
			item := s[:i]
			col, rest, ok := strings.Cut(item, ".")
			if !ok || !identRe.MatchString(col) {
				return nil, s, fmt.Errorf("bad item %q", item)
			}
			c, err := parseLeaf(col, rest)
			if err != nil {
				return nil, s, err
			}
			kids = append(kids, c)
			s = s[i:]
		}
		if s == "" {
			return nil, s, errors.New("unclosed (")
		}
		if s[0] == ')' {
			return kids, s[1:], nil
		}
		s = s[1:] // ,
	}
}

var sqlOps = map[string]string{"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}

// sql renders c with values as parameters (sent as untyped literals).
func (c cond) sql(table string, args *[]any) string {
	if c.logic != "" {
		parts := make([]string, len(c.kids))
		for i, k := range c.kids {
			parts[i] = k.sql(table, args)
		}
		return "(" + strings.Join(parts, " "+c.logic+" ") + ")"
	}
	// Qualified, as PostgREST writes them ("public"."jobs"."id").
	col := table + "." + pgx.Identifier{c.col}.Sanitize()
	param := func(v string) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	switch c.op {
	case "is":
		switch strings.ToLower(c.vals[0]) {
		case "null":
			return col + " is null"
		case "true":
			return col + " is true"
		case "false":
			return col + " is false"
		}
		return "false"
	case "in":
		// PostgREST sends the list as one array literal, typed by Postgres
		// from the column.
		ps := make([]string, len(c.vals))
		for i, v := range c.vals {
			ps[i] = `"` + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`) + `"`
		}
		return col + " = any (" + param("{"+strings.Join(ps, ",")+"}") + ")"
	}
	return col + " " + sqlOps[c.op] + " " + param(c.vals[0])
}

func (q query) where(table string, args []any) (string, []any) {
	if len(q.filters) == 0 {
		return "", args
	}
	parts := make([]string, len(q.filters))
	for i, f := range q.filters {
		parts[i] = f.sql(table, &args)
	}
	return " where " + strings.Join(parts, " and "), args
}

func (q query) tail() string {
	s := ""
	if len(q.order) > 0 {
		s += " order by " + strings.Join(q.order, ", ")
	}
	if q.limit >= 0 {
		s += " limit " + strconv.Itoa(q.limit)
	}
	if q.offset > 0 {
		s += " offset " + strconv.Itoa(q.offset)
	}
	return s
}

// storageError answers as Supabase Storage does: HTTP 400 with the real
// status as a string (measured against supabase/storage v1.70.6).
func storageError(w http.ResponseWriter, status, errName, message string) {
	b, _ := json.Marshal(map[string]string{"statusCode": status, "error": errName, "message": message})
	writeJSON(w, 400, b)
}

func (p *pgrstEmulator) storageUpload(w http.ResponseWriter, r *http.Request, rest string) {
	ctx := r.Context()
	bucket, name, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		storageError(w, "400", "InvalidKey", "invalid key")
		return
	}
	role, claims, err := p.claims(r)
	if err != nil {
		storageError(w, "403", "Unauthorized", "invalid signature")
		return
	}
	var sub string
	var mc map[string]any
	_ = json.Unmarshal([]byte(claims), &mc)
	sub, _ = mc["sub"].(string)
	var userMeta any
	if h := r.Header.Get("x-metadata"); h != "" {
		raw, err := base64Decode(h)
		if err != nil || json.Unmarshal(raw, &userMeta) != nil {
			storageError(w, "400", "InvalidRequest", "invalid x-metadata")
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	meta := map[string]any{"mimetype": r.Header.Get("Content-Type"), "size": len(body), "cacheControl": r.Header.Get("Cache-Control")}
	metaJSON, _ := json.Marshal(meta)
	umJSON, _ := json.Marshal(userMeta)

	tx, err := p.begin(ctx, r, role, claims, false)
	if err != nil {
		storageError(w, "500", "DatabaseError", "database unavailable")
		return
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var record []byte
	err = tx.QueryRow(ctx, `insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata)
		values ($1, $2, nullif($3, '')::uuid, nullif($3, ''), $4::jsonb, nullif($5, 'null')::jsonb)
		returning to_jsonb(objects.*)::text`, bucket, name, sub, string(metaJSON), string(umJSON)).Scan(&record)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		storageError(w, "409", "Duplicate", "The resource already exists")
		return
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		storageError(w, "403", "Unauthorized", "new row violates row-level security policy")
		return
	case err != nil:
		storageError(w, "500", "DatabaseError", err.Error())
		return
	}
	file := filepath.Join(p.storageDir, bucket, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err == nil {
		err = os.WriteFile(file, body, 0o640)
	}
	if err != nil {
		storageError(w, "500", "InternalError", err.Error())
		return
	}
	if err := tx.Commit(ctx); err != nil {
		storageError(w, "500", "DatabaseError", err.Error())
		return
	}
	// pg_net, after the commit: the database webhook for the new object.
	payload := fmt.Sprintf(`{"type":"INSERT","table":"objects","schema":"storage","record":%s,"old_record":null}`, record)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.webhookURL, strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.webhookKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	var id struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(record, &id)
	b, _ := json.Marshal(map[string]string{"Key": bucket + "/" + name, "Id": id.ID})
	writeJSON(w, 200, b)
}

func base64Decode(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(s)
}
