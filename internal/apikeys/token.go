// Package apikeys issues, stores and checks API keys: the token format,
// argon2id hashing, scopes, and the repository over public.api_keys.
package apikeys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"

	"github.com/clipper/clipper/internal/apperr"
)

// A token is "clp_" + lookup id + "_" + secret + checksum, 55 chars:
//
//	clp_wh6w45vwhp7z_0loSOvFx69lhcRB0fyKbztK329S3HjWR27cals
//
// The parts:
//   - the prefix lets secret scanners recognise leaked keys;
//   - the lookup id (12 chars of lowercase base32, 60 random bits) is
//     public and indexes public.api_keys, since salted hashes cannot be
//     indexed;
//   - the secret is 32 base62 chars (about 190 random bits);
//   - the checksum is the CRC-32 (IEEE) of everything before it, as 6
//     base62 chars, so a typo or a truncated paste is refused without a
//     database lookup. CRC-32 catches every single-character change and
//     every swap of two adjacent characters.
//
// The secret alphabet has no "_", so the token splits unambiguously, and
// has no characters that need escaping in a header, URL or shell.
const (
	Prefix      = "clp_"
	LookupIDLen = 12
	SecretLen   = 32
	ChecksumLen = 6
	TokenLen    = len(Prefix) + LookupIDLen + 1 + SecretLen + ChecksumLen
)

const (
	lookupAlphabet = "abcdefghijklmnopqrstuvwxyz234567" // 32 symbols: one byte's low 5 bits pick one without bias
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Causes of a refused token, for errors.Is and metrics. Callers see only
// the code unauthorized and the message "invalid api key".
var (
	ErrMalformed = errors.New("token is malformed")
	ErrChecksum  = errors.New("token checksum does not match")
)

// Token is a freshly generated API key. Its String, GoString and LogValue
// show only the lookup id, so printing or logging it never leaks the
// secret; Plaintext is the one way to read the whole key.
type Token struct {
	lookupID string
	secret   string
}

// Generate makes a token from crypto/rand.
func Generate() (Token, error) {
	lookupID, err := randomString(lookupAlphabet, LookupIDLen)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(base62Alphabet, SecretLen)
	if err != nil {
		return Token{}, err
	}
	return Token{lookupID: lookupID, secret: secret}, nil
}

// LookupID returns the public lookup id.
func (t Token) LookupID() string { return t.lookupID }

// Plaintext returns the whole key, to be shown to its owner once.
func (t Token) Plaintext() string { return format(t.lookupID, t.secret) }

// String returns the key with its secret redacted.
func (t Token) String() string { return Prefix + t.lookupID + "_[redacted]" }

// GoString redacts the secret from %#v.
func (t Token) GoString() string { return fmt.Sprintf("apikeys.Token{%q}", t.String()) }

// LogValue redacts the secret from slog output.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Parse splits a presented key into its lookup id and secret, checking
// length, alphabets and checksum without touching the database.
//
// A malformed key is an authentication failure, not bad input: Parse
// returns code unauthorized with the same message Authenticate uses for a
// wrong secret, so a caller sees one answer for every bad key. The message
// never repeats the key; the cause is ErrMalformed or ErrChecksum.
func Parse(s string) (lookupID, secret string, err error) {
	if len(s) != TokenLen || s[:len(Prefix)] != Prefix || s[len(Prefix)+LookupIDLen] != '_' {
		return "", "", invalidKey(ErrMalformed)
	}
	lookupID = s[len(Prefix) : len(Prefix)+LookupIDLen]
	rest := s[len(Prefix)+LookupIDLen+1:]
	secret, sum := rest[:SecretLen], rest[SecretLen:]
	if !inAlphabet(lookupID, lookupSet) || !inAlphabet(rest, base62Set) {
		return "", "", invalidKey(ErrMalformed)
	}
	if sum != checksum(s[:len(s)-ChecksumLen]) {
		return "", "", invalidKey(ErrChecksum)
	}
	return lookupID, secret, nil
}

func invalidKey(cause error) error {
	return apperr.Wrap(cause, apperr.Unauthorized, "invalid api key")
}

func format(lookupID, secret string) string {
	body := Prefix + lookupID + "_" + secret
	return body + checksum(body)
}

// checksum encodes CRC-32 of s as exactly ChecksumLen base62 digits
// (62^6 > 2^32), most significant first.
func checksum(s string) string {
	n := crc32.ChecksumIEEE([]byte(s))
	var b [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		b[i] = base62Alphabet[n%62]
		n /= 62
	}
	return string(b[:])
}

// randomString draws n symbols uniformly from alphabet (at most 256
// symbols), rejecting bytes that would bias the draw.
func randomString(alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", apperr.Wrap(err, apperr.Internal, "no randomness for api key")
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

var (
	lookupSet = charSet(lookupAlphabet)
	base62Set = charSet(base62Alphabet)
)

func charSet(alphabet string) *[256]bool {
	var set [256]bool
	for i := 0; i < len(alphabet); i++ {
		set[alphabet[i]] = true
	}
	return &set
}

func inAlphabet(s string, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}
