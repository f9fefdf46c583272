package rls_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/pgtest"
	"github.com/clipper/clipper/internal/storage"
)

// objectNames is the one table of object names that both rules, Go's
// storage.ValidateObjectName and the database's
// clipper_internal.valid_object_name, must judge alike. Storage's own rule
// (isValidKey, supabase/storage src/storage/limits.ts) accepts
// [A-Za-z0-9_/!.*'() &$=@;:+,?-] and a non-empty key; on top of it both
// refuse names that could mean another folder.
var objectNames = []struct {
	name string
	ok   bool
}{
	{"a", true},
	{"a.mp4", true},
	{"user/clip.mp4", true},
	{"d0000000-0000-4000-8000-000000000001/talk.mp4", true},
	{"keys/5b0e4c1e-8d0a-4a43-9d9b-0b6a7c1f3e21/in.mp4", true},
	{"my clip.mp4", true},
	{"a?b.mp4", true},
	{"it's (1) $5 & @home;a=b:c+d,e!f*g-h_i.mp4", true},
	{"...", true},
	{"a/.../b", true},
	{".hidden", true},
	{"a..b", true},
	{"a/b..", true},
	{"..a/b", true},
	{" ", true},
	{"a/ /b", true},
	{strings.Repeat("a", 1024), true},
	{"x/" + strings.Repeat("b", 1022), true},

	{"", false},
	{strings.Repeat("a", 1025), false},
	{"/a", false},
	{"/", false},
	{"a/", false},
	{"a//b", false},
	{"//", false},
	{".", false},
	{"..", false},
	{"./a", false},
	{"../a", false},
	{"a/.", false},
	{"a/..", false},
	{"a/./b", false},
	{"a/../b", false},
	{"A/../B/x.mp4", false},
	{"vidéo.mp4", false},
	{"日本.mp4", false},
	{"clip–1.mp4", false}, // an en dash
	{"a\u00a0b", false},   // a no-break space
	{"a\\b", false},
	{"a\nb", false},
	{"a\tb", false},
	{"a\x7fb", false},
	{"a#b", false},
	{"a%20b", false},
	{"a\"b", false},
	{"a<b>", false},
	{"a[b]", false},
	{"a{b}", false},
	{"a~b", false},
	{"a|b", false},
	{"a^b", false},
	{"a`b", false},
}

// sqlValid asks the database's rule about each name, in one round trip.
func sqlValid(t *testing.T, names []string) []bool {
	t.Helper()
	rows, err := pgtest.SharedPool(t).Query(context.Background(),
		`select clipper_internal.valid_object_name(n) from unnest($1::text[]) with ordinality u(n, i) order by i`, names)
	require.NoError(t, err)
	defer rows.Close()
	var out []bool
	for rows.Next() {
		var ok bool
		require.NoError(t, rows.Scan(&ok))
		out = append(out, ok)
	}
	require.NoError(t, rows.Err())
	require.Len(t, out, len(names))
	return out
}

func goValid(t *testing.T, name string) bool {
	t.Helper()
	err := storage.ValidateObjectName(name)
	if err != nil {
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	}
	return err == nil
}

func TestObjectNameRule(t *testing.T) {
	t.Parallel()
	names := make([]string, len(objectNames))
	for i, c := range objectNames {
		names[i] = c.name
	}
	inSQL := sqlValid(t, names)
	for i, c := range objectNames {
		require.Equal(t, c.ok, goValid(t, c.name), "Go, %q", c.name)
		require.Equal(t, c.ok, inSQL[i], "SQL, %q", c.name)
	}
}

// TestObjectNameRuleAgrees compares both rules on random names built
// mostly from the characters that matter (separators, dots, the edges of
// the accepted set), with a fixed seed so that a failure repeats.
func TestObjectNameRuleAgrees(t *testing.T) {
	t.Parallel()
	alphabet := []rune("ab/././/. -_?'()&$=@;:+,!*Z09\\#%\"~[]^`{}|<>\t\n\x7féü–日\u00a0\U0001F600")
	rng := rand.New(rand.NewPCG(8, 9))
	const n = 20000
	names := make([]string, 0, n)
	for len(names) < n {
		var b strings.Builder
		size := rng.IntN(12)
		if rng.IntN(50) == 0 {
			size = 1020 + rng.IntN(8) // around the length limit
		}
		for range size {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		names = append(names, b.String())
	}
	inSQL := sqlValid(t, names)
	accepted := 0
	for i, name := range names {
		require.Equal(t, inSQL[i], goValid(t, name), "%q", name)
		if inSQL[i] {
			accepted++
		}
	}
	// Both outcomes were exercised.
	require.Greater(t, accepted, n/20)
	require.Less(t, accepted, n-n/20)
}

// FuzzObjectNameRule is the same comparison for `go test -fuzz`; a plain
// test run checks the table's names as seeds. Names PostgreSQL cannot
// store as text (a NUL, invalid UTF-8) are refused by the Go rule.
func FuzzObjectNameRule(f *testing.F) {
	for _, c := range objectNames {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
			require.False(t, goValid(t, name))
			return
		}
		require.Equal(t, sqlValid(t, []string{name})[0], goValid(t, name), "%q", name)
	})
}
