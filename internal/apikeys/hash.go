package apikeys

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/clipper/clipper/internal/apperr"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB   uint32 // m
	Iterations  uint32 // t
	Parallelism uint8  // p
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes of derived hash
}

// DefaultParams are OWASP's first argon2id recommendation (m=19 MiB, t=2,
// p=1): about 24 ms and 19 MiB per verification on this project's machines.
var DefaultParams = Params{MemoryKiB: MinMemoryKiB, Iterations: MinIterations, Parallelism: MinParallelism, SaltLen: 16, KeyLen: 32}

// The bounds of the cost parameters, the one definition that Hash, NewRepo
// and the configuration (CLIPPER_ARGON2_*) all use. The minimum is OWASP's
// (Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1): no new hash is
// made with less. The maximum also bounds hashes read back from the
// database, so one bad row cannot make the daemon allocate gigabytes or
// spin for minutes on each request.
const (
	MinMemoryKiB   = 19456
	MinIterations  = 2
	MinParallelism = 1
	MaxMemoryKiB   = 1 << 20 // 1 GiB
	MaxIterations  = 10
	MaxParallelism = 16
	minSaltLen     = 8
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
)

// weakAllowed lets test binaries (testing.Testing) hash with parameters
// below the minimum, so the suite, run with the race detector on a busy
// machine, does not spend most of its time in argon2id. A program that
// is not a test never can.
var weakAllowed atomic.Bool

func init() { weakAllowed.Store(testing.Testing()) }

// ErrMalformedHash is the cause when a stored PHC string cannot be used.
var ErrMalformedHash = errors.New("malformed argon2id PHC string")

var b64 = base64.RawStdEncoding.Strict()

// Hash derives an argon2id hash of secret with a fresh random salt and
// returns it as a PHC string: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
// (unpadded standard base64, as the reference implementation writes it).
func Hash(secret string, p Params) (string, error) {
	if err := p.validateNew(); err != nil {
		return "", apperr.Wrap(err, apperr.InvalidInput, "argon2id parameters are out of range")
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "no randomness for salt")
	}
	key := argon2.IDKey([]byte(secret), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether secret matches phc, using the parameters, salt
// and length recorded in phc and comparing in constant time. A malformed
// PHC string or one with parameters beyond the limits is an error (code
// internal: it is a bad row, not a bad key); its message never repeats
// the string.
func Verify(secret, phc string) (bool, error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, apperr.Wrap(err, apperr.Internal, "stored api key hash is malformed")
	}
	got := argon2.IDKey([]byte(secret), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// ParamsOf returns the parameters recorded in a PHC string, so callers can
// tell when a stored hash predates the current defaults.
func ParamsOf(phc string) (Params, error) {
	p, _, _, err := parsePHC(phc)
	if err != nil {
		return Params{}, apperr.Wrap(err, apperr.Internal, "stored api key hash is malformed")
	}
	return p, nil
}

// validateNew checks parameters for a new hash: within the bounds, and
// never below OWASP's minimum.
func (p Params) validateNew() error {
	if err := p.validate(); err != nil {
		return err
	}
	if weakAllowed.Load() {
		return nil
	}
	switch {
	case p.MemoryKiB < MinMemoryKiB:
		return fmt.Errorf("memory %d KiB is below the minimum %d", p.MemoryKiB, MinMemoryKiB)
	case p.Iterations < MinIterations:
		return fmt.Errorf("iterations %d is below the minimum %d", p.Iterations, MinIterations)
	}
	return nil
}

// validate checks what argon2id itself and the upper bounds need. Stored
// hashes are held to this only: a key hashed before the minimum was
// enforced keeps working (rotate it to rehash it).
func (p Params) validate() error {
	switch {
	case p.Parallelism < MinParallelism || p.Parallelism > MaxParallelism:
		return fmt.Errorf("parallelism %d not in [%d, %d]", p.Parallelism, MinParallelism, MaxParallelism)
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("memory %d KiB not in [8*p, %d]", p.MemoryKiB, MaxMemoryKiB)
	case p.Iterations < 1 || p.Iterations > MaxIterations:
		return fmt.Errorf("iterations %d not in [1, %d]", p.Iterations, MaxIterations)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d not in [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d not in [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// parsePHC reads $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>, strictly:
// no other algorithm or version, parameters in that order, canonical
// unpadded base64. Errors describe the shape, never the content.
func parsePHC(phc string) (p Params, salt, key []byte, err error) {
	fields := strings.Split(phc, "$")
	if len(fields) != 6 || fields[0] != "" || fields[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: not $argon2id$v$params$salt$hash", ErrMalformedHash)
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version", ErrMalformedHash)
	}
	kv := strings.Split(fields[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, fmt.Errorf("%w: parameters are not m,t,p", ErrMalformedHash)
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return p, nil, nil, fmt.Errorf("%w: parameters are not m,t,p", ErrMalformedHash)
		}
		if vals[i], err = strconv.ParseUint(digits, 10, 32); err != nil {
			return p, nil, nil, fmt.Errorf("%w: parameter %s is not a number", ErrMalformedHash, name[:1])
		}
	}
	if vals[2] > MaxParallelism {
		return p, nil, nil, fmt.Errorf("%w: parallelism out of range", ErrMalformedHash)
	}
	if !isBase64(fields[4]) || !isBase64(fields[5]) {
		return p, nil, nil, fmt.Errorf("%w: salt or hash is not base64", ErrMalformedHash)
	}
	if salt, err = b64.DecodeString(fields[4]); err != nil {
		return p, nil, nil, fmt.Errorf("%w: salt is not base64", ErrMalformedHash)
	}
	if key, err = b64.DecodeString(fields[5]); err != nil {
		return p, nil, nil, fmt.Errorf("%w: hash is not base64", ErrMalformedHash)
	}
	p = Params{
		MemoryKiB:   uint32(vals[0]),
		Iterations:  uint32(vals[1]),
		Parallelism: uint8(vals[2]),
		SaltLen:     uint32(len(salt)),
		KeyLen:      uint32(len(key)),
	}
	if err := p.validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	return p, salt, key, nil
}

// isBase64 reports whether s holds only standard base64 digits: the
// decoder itself skips newlines, which a canonical PHC string never has.
func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
