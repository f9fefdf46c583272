package apikeys_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/apperr"
)

// cheap keeps tests that hash many times fast; TestHashDefaults and the
// repository tests use the real parameters.
var cheap = apikeys.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func TestHashDefaults(t *testing.T) {
	t.Parallel()
	phc, err := apikeys.Hash("correct horse", apikeys.DefaultParams)
	require.NoError(t, err)
	m := phcRE.FindStringSubmatch(phc)
	require.NotNil(t, m, phc)
	require.Equal(t, []string{"19456", "2", "1"}, m[1:4])
	require.Len(t, m[4], 22) // 16 bytes, unpadded base64
	require.Len(t, m[5], 43) // 32 bytes

	ok, err := apikeys.Verify("correct horse", phc)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = apikeys.Verify("correct horsf", phc)
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = apikeys.Verify("", phc)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestHashSaltsEachTime(t *testing.T) {
	t.Parallel()
	a, err := apikeys.Hash("same", cheap)
	require.NoError(t, err)
	b, err := apikeys.Hash("same", cheap)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestHashParamsRespected(t *testing.T) {
	t.Parallel()
	p := apikeys.Params{MemoryKiB: 256, Iterations: 3, Parallelism: 2, SaltLen: 24, KeyLen: 48}
	phc, err := apikeys.Hash("s3cret", p)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(phc, "$argon2id$v=19$m=256,t=3,p=2$"), phc)
	got, err := apikeys.ParamsOf(phc)
	require.NoError(t, err)
	require.Equal(t, p, got)
	ok, err := apikeys.Verify("s3cret", phc)
	require.NoError(t, err)
	require.True(t, ok)

	// The parameters are part of the hash: verifying with others fails.
	other := strings.Replace(phc, "t=3", "t=2", 1)
	ok, err = apikeys.Verify("s3cret", other)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestHashRefusesAbsurdParams(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]apikeys.Params{
		"Zero":          {},
		"MemoryTooHigh": {MemoryKiB: apikeys.MaxMemoryKiB + 1, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"MemoryBelow8P": {MemoryKiB: 15, Iterations: 1, Parallelism: 2, SaltLen: 16, KeyLen: 32},
		"NoIterations":  {MemoryKiB: 64, Iterations: 0, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"TooManyIter":   {MemoryKiB: 64, Iterations: apikeys.MaxIterations + 1, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"NoParallelism": {MemoryKiB: 64, Iterations: 1, Parallelism: 0, SaltLen: 16, KeyLen: 32},
		"TooParallel":   {MemoryKiB: 1024, Iterations: 1, Parallelism: apikeys.MaxParallelism + 1, SaltLen: 16, KeyLen: 32},
		"ShortSalt":     {MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 4, KeyLen: 32},
		"ShortKey":      {MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 8},
		"LongKey":       {MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 65},
	} {
		_, err := apikeys.Hash("x", p)
		require.Error(t, err, name)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), name)
	}
}

// TestMinimumParams: outside test binaries no new hash is made below
// OWASP's minimum (m=19456 KiB, t=2, p=1), whatever the caller asks; a key
// hashed earlier with less still verifies.
func TestMinimumParams(t *testing.T) { // not parallel: it changes what this binary allows
	weak, err := apikeys.Hash("s3cret", cheap)
	require.NoError(t, err)
	apikeys.RequireMinimum(t)
	for name, p := range map[string]apikeys.Params{
		"Cheap":         cheap,
		"MemoryBelow":   {MemoryKiB: apikeys.MinMemoryKiB - 1, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"OneIteration":  {MemoryKiB: apikeys.MinMemoryKiB, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		"NoParallelism": {MemoryKiB: apikeys.MinMemoryKiB, Iterations: 2, Parallelism: 0, SaltLen: 16, KeyLen: 32},
	} {
		_, err := apikeys.Hash("x", p)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), name)
		_, err = apikeys.NewRepo(nil, apikeys.Options{Params: p})
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), name)
	}
	require.Equal(t, apikeys.Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}, apikeys.DefaultParams)
	_, err = apikeys.NewRepo(nil, apikeys.Options{Params: apikeys.DefaultParams})
	require.NoError(t, err)
	ok, err := apikeys.Verify("s3cret", weak)
	require.NoError(t, err)
	require.True(t, ok, "a stored hash made with less still verifies")
}

func TestVerifyTamperedHash(t *testing.T) {
	t.Parallel()
	phc, err := apikeys.Hash("s3cret", cheap)
	require.NoError(t, err)
	m := phcRE.FindStringSubmatch(phc)
	require.NotNil(t, m)
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	// Change one base64 digit of the salt and of the hash (not the last,
	// whose low bits may be padding that strict decoding refuses).
	salt, hash := m[4], m[5]
	for _, tampered := range []string{
		strings.Replace(phc, salt, flip(salt, 0), 1),
		strings.Replace(phc, hash, flip(hash, 0), 1),
		strings.Replace(phc, hash, flip(hash, len(hash)/2), 1),
		strings.Replace(phc, "m=64", "m=72", 1),
	} {
		ok, err := apikeys.Verify("s3cret", tampered)
		require.NoError(t, err, tampered)
		require.False(t, ok, tampered)
	}
}

func TestVerifyRefusesMalformed(t *testing.T) {
	t.Parallel()
	phc, err := apikeys.Hash("s3cret", cheap)
	require.NoError(t, err)
	m := phcRE.FindStringSubmatch(phc)
	salt, hash := m[4], m[5]
	at := func(params, s, h string) string { return "$argon2id$v=19$" + params + "$" + s + "$" + h }
	for name, bad := range map[string]string{
		"Empty":             "",
		"Dollar":            "$",
		"Argon2i":           strings.Replace(phc, "$argon2id$", "$argon2i$", 1),
		"Bcrypt":            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"OldVersion":        strings.Replace(phc, "v=19", "v=16", 1),
		"NoVersion":         "$argon2id$" + "m=64,t=1,p=1$" + salt + "$" + hash,
		"ParamsOrder":       at("t=1,m=64,p=1", salt, hash),
		"ParamsMissing":     at("m=64,t=1", salt, hash),
		"ParamsExtra":       at("m=64,t=1,p=1,k=1", salt, hash),
		"ParamSign":         at("m=+64,t=1,p=1", salt, hash),
		"ParamNegative":     at("m=-64,t=1,p=1", salt, hash),
		"ParamOverflow":     at("m=99999999999,t=1,p=1", salt, hash),
		"ParamSpace":        at("m=64, t=1,p=1", salt, hash),
		"MemoryHuge":        at("m=4294967295,t=1,p=1", salt, hash),
		"MemoryJustOver":    at(fmt.Sprintf("m=%d,t=1,p=1", apikeys.MaxMemoryKiB+1), salt, hash),
		"IterationsHuge":    at("m=64,t=4000000000,p=1", salt, hash),
		"ParallelismHuge":   at("m=64,t=1,p=255", salt, hash),
		"ParallelismWraps":  at("m=64,t=1,p=257", salt, hash),
		"ParallelismZero":   at("m=64,t=1,p=0", salt, hash),
		"SaltPadded":        at("m=64,t=1,p=1", salt+"==", hash),
		"SaltBadBase64":     at("m=64,t=1,p=1", "!!!!"+salt[4:], hash),
		"SaltShort":         at("m=64,t=1,p=1", "AAAA", hash),
		"HashEmpty":         at("m=64,t=1,p=1", salt, ""),
		"HashShort":         at("m=64,t=1,p=1", salt, "AAAAAAAAAAA"),
		"HashURLBase64":     at("m=64,t=1,p=1", salt, strings.NewReplacer("+", "-", "/", "_").Replace(hash)+"-_"),
		"TrailingDollar":    phc + "$",
		"KeyID":             at("m=64,t=1,p=1,keyid=abc", salt, hash),
		"LeadingSpace":      " " + phc,
		"TrailingNewline":   phc + "\n",
		"NonCanonicalSalt":  at("m=64,t=1,p=1", salt[:len(salt)-1]+"B", hash),
		"MissingSaltAndKey": "$argon2id$v=19$m=64,t=1,p=1",
	} {
		if name == "NonCanonicalSalt" && strings.HasSuffix(salt, "B") {
			continue
		}
		ok, err := apikeys.Verify("s3cret", bad)
		require.Error(t, err, name)
		require.False(t, ok, name)
		require.Equal(t, apperr.Internal, apperr.CodeOf(err), name)
		require.ErrorIs(t, err, apikeys.ErrMalformedHash, name)
		msg := apperr.EnvelopeOf(err).Message
		require.Equal(t, "stored api key hash is malformed", msg, name)
		require.NotContains(t, err.Error(), salt, name)
		require.NotContains(t, err.Error(), hash, name)
	}
}

func BenchmarkVerify(b *testing.B) {
	phc, err := apikeys.Hash("s3cret", apikeys.DefaultParams)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		ok, err := apikeys.Verify("s3cret", phc)
		if err != nil || !ok {
			b.Fatal("verify failed")
		}
	}
}
