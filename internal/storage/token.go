package storage

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/clipper/clipper/internal/apperr"
)

// Purposes a local token grants. A download token cannot upload and an
// upload token cannot download.
const (
	purposeDownload = "download"
	purposeUpload   = "upload"
)

// tokenClaims are Supabase Storage's signed-URL claims {url, iat, exp},
// plus what the token is for.
type tokenClaims struct {
	URL     string `json:"url"`
	Purpose string `json:"purpose"`
	jwt.RegisteredClaims
}

// signToken returns an HS256 JWT for key ("bucket/path") and its expiry.
// JWT times have whole-second precision, so the expiry is truncated.
func signToken(secret []byte, key, purpose string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	exp := jwt.NewNumericDate(now.Add(ttl))
	c := tokenClaims{
		URL:     key,
		Purpose: purpose,
		RegisteredClaims: jwt.RegisteredClaims{
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: exp,
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", time.Time{}, apperr.Wrap(err, apperr.Internal, "cannot sign URL")
	}
	return tok, exp.UTC(), nil
}

// verifyToken checks a token's signature and expiry, then that it was
// issued for key and purpose. Every failure is a stable code and message:
// unauthorized for a token that is not valid at all, forbidden for a
// valid one presented for another object or use.
func verifyToken(secret []byte, token, key, purpose string, now func() time.Time) (*tokenClaims, error) {
	if token == "" {
		return nil, apperr.New(apperr.Unauthorized, "signed URL has no token")
	}
	var c tokenClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now))
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, apperr.New(apperr.Unauthorized, "signed URL expired")
	default:
		// Malformed, wrong algorithm, bad signature: all mean the token
		// was not issued by this daemon as presented.
		return nil, apperr.New(apperr.Unauthorized, "invalid signature")
	}
	if c.URL != key {
		return nil, apperr.New(apperr.Forbidden, "signed URL is for another object")
	}
	if c.Purpose != purpose {
		return nil, apperr.New(apperr.Forbidden, "signed URL is for %s, not %s", c.Purpose, purpose)
	}
	return &c, nil
}
