package apikeys_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

var (
	tokenRE    = regexp.MustCompile(`^clp_[a-z2-7]{12}_[0-9A-Za-z]{38}$`)
	lookupIDRE = regexp.MustCompile(`^[a-z0-9]{8,32}$`) // api_keys_lookup_id_check
)

func generate(t testing.TB) apikeys.Token {
	t.Helper()
	tok, err := apikeys.Generate()
	require.NoError(t, err)
	return tok
}

// requireInvalidKey checks err is the uniform refusal and does not repeat s.
func requireInvalidKey(t *testing.T, err error, s string, cause error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
	require.Equal(t, "invalid api key", apperr.EnvelopeOf(err).Message)
	require.ErrorIs(t, err, cause)
	if len(s) >= 8 {
		require.NotContains(t, err.Error(), s)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		tok := generate(t)
		s := tok.Plaintext()
		require.Len(t, s, apikeys.TokenLen)
		require.Regexp(t, tokenRE, s)
		require.Regexp(t, lookupIDRE, tok.LookupID())
		require.True(t, strings.HasPrefix(s, apikeys.Prefix+tok.LookupID()+"_"))
		require.False(t, seen[tok.LookupID()], "lookup id repeated")
		seen[tok.LookupID()] = true

		lookupID, secret, err := apikeys.Parse(s)
		require.NoError(t, err)
		require.Equal(t, tok.LookupID(), lookupID)
		require.Len(t, secret, apikeys.SecretLen)
		require.Equal(t, s, apikeys.Format(lookupID, secret))
	}
}

func TestTokenRedacted(t *testing.T) {
	t.Parallel()
	tok := generate(t)
	_, secret, err := apikeys.Parse(tok.Plaintext())
	require.NoError(t, err)

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("issued", "token", tok)
	js, err := json.Marshal(struct{ T apikeys.Token }{tok})
	require.NoError(t, err)
	for name, out := range map[string]string{
		"String": tok.String(),
		"%v":     fmt.Sprintf("%v", tok),
		"%+v":    fmt.Sprintf("%+v", tok),
		"%#v":    fmt.Sprintf("%#v", tok),
		"%s":     fmt.Sprintf("%s", tok),
		"struct": fmt.Sprintf("%+v", struct{ T apikeys.Token }{tok}),
		"slog":   logged.String(),
		"json":   string(js),
	} {
		require.NotContains(t, out, secret, name)
	}
	require.Contains(t, tok.String(), tok.LookupID())
}

// The example in the package documentation is a real token.
func TestDocumentedExample(t *testing.T) {
	t.Parallel()
	lookupID, _, err := apikeys.Parse("clp_wh6w45vwhp7z_0loSOvFx69lhcRB0fyKbztK329S3HjWR27cals")
	require.NoError(t, err)
	require.Equal(t, "wh6w45vwhp7z", lookupID)
}

// CRC-32 catches every single-character substitution and every swap of two
// adjacent different characters; check them all on one token.
func TestChecksumCatchesTypos(t *testing.T) {
	t.Parallel()
	s := generate(t).Plaintext()
	const symbols = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
	for i := range len(s) {
		for _, c := range []byte(symbols) {
			if c == s[i] {
				continue
			}
			typo := s[:i] + string(c) + s[i+1:]
			_, _, err := apikeys.Parse(typo)
			require.Error(t, err, "substitution at %d", i)
			require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
		}
		if i+1 < len(s) && s[i] != s[i+1] {
			swapped := s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:]
			_, _, err := apikeys.Parse(swapped)
			require.Error(t, err, "swap at %d", i)
		}
	}
	// A well-formed token with the wrong checksum is refused for that reason.
	last := s[len(s)-1]
	bad := s[:len(s)-1] + map[bool]string{true: "A", false: "B"}[last != 'A']
	_, _, err := apikeys.Parse(bad)
	requireInvalidKey(t, err, bad, apikeys.ErrChecksum)
}

func TestParseRefusesGarbage(t *testing.T) {
	t.Parallel()
	valid := generate(t).Plaintext()
	lookupID, secret, err := apikeys.Parse(valid)
	require.NoError(t, err)
	for name, s := range map[string]string{
		"Empty":           "",
		"PrefixOnly":      "clp_",
		"Truncated":       valid[:len(valid)-1],
		"Extended":        valid + "a",
		"Spaces":          " " + valid[:len(valid)-1],
		"TrailingNewline": valid[:len(valid)-1] + "\n",
		"OtherPrefix":     "ghp_" + valid[4:],
		"UpperPrefix":     "CLP_" + valid[4:],
		"NoSeparator":     valid[:16] + "x" + valid[17:],
		"UpperLookupID":   apikeys.Format(strings.ToUpper(lookupID), secret),
		"LookupIDSymbol":  apikeys.Format(lookupID[:11]+"-", secret),
		"LookupIDDigit1":  apikeys.Format(lookupID[:11]+"1", secret),
		"SecretSymbol":    apikeys.Format(lookupID, secret[:31]+"+"),
		"SecretNUL":       apikeys.Format(lookupID, secret[:31]+"\x00"),
		"SecretUnicode":   apikeys.Format(lookupID, secret[:30]+"é"),
		"Bearer":          "Bearer " + valid,
		"JWT":             "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
	} {
		_, _, err := apikeys.Parse(s)
		requireInvalidKey(t, err, s, apikeys.ErrMalformed)
		require.NotContains(t, err.Error(), secret, name)
	}
}

func FuzzParse(f *testing.F) {
	for range 4 {
		f.Add(generate(f).Plaintext())
	}
	f.Add("")
	f.Add("clp_")
	f.Add("clp_aaaaaaaaaaaa_")
	f.Add("clp_aaaaaaaaaaaa_" + strings.Repeat("A", 38))
	f.Add(strings.Repeat("_", apikeys.TokenLen))
	f.Add("clp_\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4_" + strings.Repeat("\x00", 38))
	f.Fuzz(func(t *testing.T, s string) {
		tok := generate(t)
		l, sec, err := apikeys.Parse(tok.Plaintext())
		require.NoError(t, err)
		require.Equal(t, tok.Plaintext(), apikeys.Format(l, sec))

		lookupID, secret, err := apikeys.Parse(s)
		if err != nil {
			require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err))
			require.True(t, errors.Is(err, apikeys.ErrMalformed) || errors.Is(err, apikeys.ErrChecksum))
			require.Equal(t, "invalid api key", apperr.EnvelopeOf(err).Message)
			return
		}
		// Whatever parses is exactly the token its parts make.
		require.Regexp(t, lookupIDRE, lookupID)
		require.Equal(t, s, apikeys.Format(lookupID, secret))
	})
}
