package keysapi

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/apikeys"
)

// Command is `clipper keys`: the same operations as the HTTP routes,
// straight on the database, so the first admin key can be made before
// any key exists.
type Command struct {
	Stdout io.Writer // the plaintext of a new key, JSON, listings
	Stderr io.Writer // help and the details of a new key
	// Open returns the repository and a function that releases it; it is
	// called only once the arguments are valid.
	Open func(ctx context.Context) (*apikeys.Repo, func(), error)
	// Now replaces the clock in tests.
	Now func() time.Time
}

// UsageError is a mistake in the command line.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

const commandHelp = `Usage: clipper keys <command> [flags]

Manages API keys directly in DATABASE_URL (no daemon needed). Only an
argon2id hash of each key is stored: the plaintext is printed once, by
create and rotate, on standard output (the details go to standard error,
so KEY=$(clipper keys create ...) captures the key alone).

Commands:
  create   make a key:       clipper keys create --name NAME --scopes jobs:read,jobs:write
  list     list keys:        clipper keys list [--owner UUID]
  rotate   replace a key:    clipper keys rotate --grace 24h KEY_ID
  revoke   stop a key now:   clipper keys revoke KEY_ID

Scopes: ` + "jobs:read, jobs:write, worker, keys:admin, admin (admin implies all)." + `

This command acts as the operator: whoever holds the database credentials
already reaches every key, so none of the HTTP routes' limits apply (it
makes the first admin key, keys without an owner, keys for any owner).
Over HTTP a key grants only scopes it holds, a key with an owner manages
only that owner's keys, and only an admin key crosses owners.
Run 'clipper keys <command> --help' for a command's flags.
`

// Run runs the command line args (without "keys"). It returns
// flag.ErrHelp after printing help, and UsageError for a bad command line.
func (c Command) Run(ctx context.Context, args []string) error {
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(args) == 0 {
		fmt.Fprint(c.Stderr, commandHelp)
		return UsageError{"no command given"}
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(c.Stderr, commandHelp)
		return flag.ErrHelp
	case "create":
		return c.create(ctx, args[1:])
	case "list":
		return c.list(ctx, args[1:])
	case "rotate":
		return c.rotate(ctx, args[1:])
	case "revoke":
		return c.revoke(ctx, args[1:])
	}
	return UsageError{fmt.Sprintf("unknown command %q (create, list, rotate or revoke)", args[0])}
}

func (c Command) create(ctx context.Context, args []string) error {
	fs := c.flags("create", "--name NAME --scopes SCOPE[,SCOPE...] [flags]",
		"Creates a key and prints its plaintext once.")
	name := fs.String("name", "", "what the key is for, e.g. \"render worker 3\" (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes: jobs:read, jobs:write, worker, keys:admin, admin (required)")
	owner := fs.String("owner", "", "user id (auth.users) that owns the key; empty: a service key")
	rate := fs.Int("rate-limit", 0, "requests per minute; 0: the daemon default (CLIPPER_RATE_LIMIT_PER_MINUTE)")
	expiresIn := fs.Duration("expires-in", 0, "lifetime, e.g. 720h; 0: never expires")
	asJSON := fs.Bool("json", false, "print {\"key\": ..., \"token\": ...} as JSON")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	p := apikeys.CreateParams{Name: *name}
	if strings.TrimSpace(*name) == "" {
		return UsageError{"--name is required"}
	}
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			p.Scopes = append(p.Scopes, apikeys.Scope(s))
		}
	}
	if len(p.Scopes) == 0 {
		return UsageError{"--scopes is required, e.g. --scopes jobs:read,jobs:write"}
	}
	if *owner != "" {
		id, err := uuid.Parse(*owner)
		if err != nil {
			return UsageError{"--owner is not a UUID"}
		}
		p.OwnerID = &id
	}
	if *rate < 0 {
		return UsageError{"--rate-limit must not be negative"}
	}
	if *rate > 0 {
		r := int32(min(*rate, 1<<30))
		p.RateLimitPerMinute = &r
	}
	if *expiresIn < 0 {
		return UsageError{"--expires-in must not be negative"}
	}
	if *expiresIn > 0 {
		at := c.Now().Add(*expiresIn)
		p.ExpiresAt = &at
	}
	keys, done, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer done()
	key, token, err := keys.Create(ctx, p)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.json(issued{Key: key, Token: token})
	}
	fmt.Fprintln(c.Stderr, "Created API key:")
	c.describe(key)
	fmt.Fprintln(c.Stderr, "The key (shown once; only its hash is stored):")
	fmt.Fprintln(c.Stdout, token)
	return nil
}

func (c Command) list(ctx context.Context, args []string) error {
	fs := c.flags("list", "[--owner UUID] [--json]",
		"Lists keys, newest first, including revoked and expired ones. Never shows a hash.")
	owner := fs.String("owner", "", "only the keys of this user id")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, err := c.parse(fs, args, 0); err != nil {
		return err
	}
	var ownerID *uuid.UUID
	if *owner != "" {
		id, err := uuid.Parse(*owner)
		if err != nil {
			return UsageError{"--owner is not a UUID"}
		}
		ownerID = &id
	}
	keys, done, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer done()
	list, err := keys.List(ctx, ownerID)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.json(list)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOOKUP ID\tNAME\tSCOPES\tSTATUS\tLAST USED")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.LookupID, oneLine(k.Name),
			joinScopes(k.Scopes), c.status(k), timeOr(k.LastUsedAt, "never"))
	}
	return tw.Flush()
}

func (c Command) rotate(ctx context.Context, args []string) error {
	fs := c.flags("rotate", "--grace DURATION [--json] KEY_ID",
		`Replaces a key with a new one with the same owner, name, scopes, rate limit
and expiry, and prints the new key's plaintext once. The old key keeps
working for the grace period, then expires.`)
	grace := fs.String("grace", "", "how long the old key keeps working, e.g. 24h; 0 stops it at once (required)")
	asJSON := fs.Bool("json", false, "print {\"key\": ..., \"token\": ..., \"previous\": ...} as JSON")
	pos, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *grace == "" {
		return UsageError{"--grace is required (0 stops the old key at once)"}
	}
	g, err := time.ParseDuration(*grace)
	if err != nil || g < 0 || g > MaxGrace {
		return UsageError{fmt.Sprintf("--grace must be a duration from 0 to %s, e.g. 24h", MaxGrace)}
	}
	id, err := keyID(pos[0])
	if err != nil {
		return err
	}
	keys, done, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer done()
	key, token, err := keys.Rotate(ctx, id, g)
	if err != nil {
		return err
	}
	old, err := keys.Get(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.json(rotated{issued: issued{Key: key, Token: token}, Previous: old})
	}
	fmt.Fprintf(c.Stderr, "Rotated %s; the old key %s.\nNew API key:\n", old.ID, c.status(old))
	c.describe(key)
	fmt.Fprintln(c.Stderr, "The new key (shown once; only its hash is stored):")
	fmt.Fprintln(c.Stdout, token)
	return nil
}

func (c Command) revoke(ctx context.Context, args []string) error {
	fs := c.flags("revoke", "KEY_ID",
		"Stops a key at once, on every daemon. Revoking twice is harmless.")
	pos, err := c.parse(fs, args, 1)
	if err != nil {
		return err
	}
	id, err := keyID(pos[0])
	if err != nil {
		return err
	}
	keys, done, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer done()
	key, err := keys.Revoke(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "Revoked %s (%s) at %s.\n", key.ID, oneLine(key.Name), key.RevokedAt.UTC().Format(time.RFC3339))
	return nil
}

// flags returns a flag set whose help names the command and its use.
func (c Command) flags(name, usage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("clipper keys "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: clipper keys %s %s\n\n%s\n", name, usage, summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses flags placed before or after the positional arguments and
// checks that exactly nPos positional arguments were given. Errors are
// reported by the caller, so the flag package prints nothing itself.
func (c Command) parse(fs *flag.FlagSet, args []string, nPos int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(c.Stderr)
				fs.Usage()
				return nil, flag.ErrHelp
			}
			return nil, UsageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != nPos {
		if nPos == 0 {
			return nil, UsageError{fmt.Sprintf("unexpected argument %q", pos[0])}
		}
		return nil, UsageError{fmt.Sprintf("expected %d argument(s), got %d", nPos, len(pos))}
	}
	return pos, nil
}

func keyID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, UsageError{"KEY_ID is not a UUID (see 'clipper keys list')"}
	}
	return id, nil
}

func (c Command) json(v any) error {
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c Command) describe(k apikeys.Key) {
	owner := "none (service key)"
	if k.OwnerID != nil {
		owner = k.OwnerID.String()
	}
	rate := "daemon default"
	if k.RateLimitPerMinute != nil {
		rate = fmt.Sprintf("%d per minute", *k.RateLimitPerMinute)
	}
	fmt.Fprintf(c.Stderr, "  id:         %s\n  lookup id:  %s\n  name:       %s\n  scopes:     %s\n"+
		"  owner:      %s\n  rate limit: %s\n  expires:    %s\n",
		k.ID, k.LookupID, oneLine(k.Name), joinScopes(k.Scopes), owner, rate, timeOr(k.ExpiresAt, "never"))
}

func (c Command) status(k apikeys.Key) string {
	now := c.Now()
	switch {
	case k.RevokedAt != nil:
		return "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return "expired " + k.ExpiresAt.UTC().Format(time.RFC3339)
	case k.ExpiresAt != nil:
		return "expires " + k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return "active"
}

func joinScopes(ss []apikeys.Scope) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ",")
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine keeps a key's name from breaking a table or a terminal.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
