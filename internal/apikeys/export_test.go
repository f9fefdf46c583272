package apikeys

// Format assembles a token from its parts, with a correct checksum.
var Format = format

// RequireMinimum makes Hash and NewRepo hold this test binary to the
// minimum parameters, as every other program is, until the test ends.
func RequireMinimum(t interface{ Cleanup(func()) }) {
	weakAllowed.Store(false)
	t.Cleanup(func() { weakAllowed.Store(true) })
}
