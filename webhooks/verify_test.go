package webhooks_test

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/webhooks"
)

// The test vector published with the Standard Webhooks reference
// libraries: a verifier that reproduces it agrees with every sender.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = "1614265330"
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(1614265330, 0)

func requireUnauthorized(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, apperr.Unauthorized, apperr.CodeOf(err), "%v", err)
}

func TestVerifier(t *testing.T) {
	t.Parallel()

	t.Run("StandardWebhooksVector", func(t *testing.T) {
		t.Parallel()
		for _, secret := range []string{vectorSecret, "v1," + vectorSecret, " " + vectorSecret + "\n"} {
			v, err := webhooks.NewVerifier(secret)
			require.NoError(t, err)
			require.Equal(t, vectorSignature, v.Sign(vectorID, vectorTimestamp, []byte(vectorBody)))
			require.NoError(t, v.Verify(vectorID, vectorTimestamp, vectorSignature, []byte(vectorBody), vectorTime))
		}
	})

	t.Run("AnySignatureInTheListWillDo", func(t *testing.T) {
		t.Parallel()
		v, err := webhooks.NewVerifier(vectorSecret)
		require.NoError(t, err)
		for _, header := range []string{
			"v1,bm9wZQ== " + vectorSignature,
			vectorSignature + " v1,bm9wZQ==",
			"v1a,c29tZSBlZDI1NTE5 " + vectorSignature,
			"  " + vectorSignature + "  ",
		} {
			require.NoError(t, v.Verify(vectorID, vectorTimestamp, header, []byte(vectorBody), vectorTime), header)
		}
	})

	t.Run("Tolerance", func(t *testing.T) {
		t.Parallel()
		v, err := webhooks.NewVerifier(vectorSecret)
		require.NoError(t, err)
		ok := func(now time.Time) error {
			return v.Verify(vectorID, vectorTimestamp, vectorSignature, []byte(vectorBody), now)
		}
		require.NoError(t, ok(vectorTime.Add(webhooks.Tolerance)))
		require.NoError(t, ok(vectorTime.Add(-webhooks.Tolerance)))
		requireUnauthorized(t, ok(vectorTime.Add(webhooks.Tolerance+time.Second)))
		requireUnauthorized(t, ok(vectorTime.Add(-webhooks.Tolerance-time.Second)))
		requireUnauthorized(t, ok(vectorTime.Add(6*time.Minute)))
		requireUnauthorized(t, ok(time.Unix(math.MaxInt64, 0)))
		requireUnauthorized(t, ok(time.Unix(math.MinInt64, 0)))
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		v, err := webhooks.NewVerifier(vectorSecret)
		require.NoError(t, err)
		other, err := webhooks.NewVerifier("whsec_" + base64.StdEncoding.EncodeToString([]byte("another key, 32 bytes long......")))
		require.NoError(t, err)
		body := []byte(vectorBody)
		for name, err := range map[string]error{
			"NoID":             v.Verify("", vectorTimestamp, vectorSignature, body, vectorTime),
			"NoTimestamp":      v.Verify(vectorID, "", vectorSignature, body, vectorTime),
			"NoSignature":      v.Verify(vectorID, vectorTimestamp, "", body, vectorTime),
			"OnlySpaces":       v.Verify(vectorID, vectorTimestamp, "   ", body, vectorTime),
			"TimestampNotInt":  v.Verify(vectorID, "1614265330.0", vectorSignature, body, vectorTime),
			"TimestampHuge":    v.Verify(vectorID, "99999999999999999999", vectorSignature, body, vectorTime),
			"TimestampMin":     v.Verify(vectorID, strconv.FormatInt(math.MinInt64, 10), vectorSignature, body, vectorTime),
			"OtherKey":         v.Verify(vectorID, vectorTimestamp, other.Sign(vectorID, vectorTimestamp, body), body, vectorTime),
			"OtherBody":        v.Verify(vectorID, vectorTimestamp, vectorSignature, []byte(`{"test": 2432232315}`), vectorTime),
			"OtherID":          v.Verify("msg_other", vectorTimestamp, vectorSignature, body, vectorTime),
			"OtherTimestamp":   v.Verify(vectorID, "1614265331", vectorSignature, body, vectorTime),
			"OtherVersion":     v.Verify(vectorID, vectorTimestamp, strings.Replace(vectorSignature, "v1,", "v2,", 1), body, vectorTime),
			"NoVersion":        v.Verify(vectorID, vectorTimestamp, strings.TrimPrefix(vectorSignature, "v1,"), body, vectorTime),
			"SameBytesNewForm": v.Verify(vectorID, vectorTimestamp, strings.TrimSuffix(vectorSignature, "="), body, vectorTime),
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				requireUnauthorized(t, err)
				require.NotContains(t, err.Error(), "g0hM9SsE")
			})
		}
	})

	t.Run("BadSecrets", func(t *testing.T) {
		t.Parallel()
		for _, secret := range []string{
			"",
			"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"whsec_",
			"whsec_not base64!",
			"whsec_" + base64.StdEncoding.EncodeToString([]byte("15 bytes only..")),
			"v2,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		} {
			_, err := webhooks.NewVerifier(secret)
			require.Error(t, err, secret)
			require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
			if len(secret) > 6 {
				require.NotContains(t, err.Error(), secret[6:])
			}
		}
		_, err := webhooks.NewVerifier("whsec_" + base64.RawStdEncoding.EncodeToString([]byte("sixteen bytes!!!!")))
		require.NoError(t, err, "unpadded base64 is accepted")
	})
}

func TestBearer(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-bearer-token"
	for header, want := range map[string]bool{
		"Bearer " + secret:          true,
		"bearer " + secret:          true,
		"  Bearer  " + secret + " ": true,
		"Bearer " + secret + "x":    false,
		"Bearer " + secret[:5]:      false,
		"Basic " + secret:           false,
		secret:                      false,
		"Bearer":                    false,
		"Bearer ":                   false,
		"":                          false,
	} {
		require.Equal(t, want, webhooks.CheckBearer(secret, header), "%q", header)
	}
	require.False(t, webhooks.CheckBearer("", "Bearer "), "an empty secret matches nothing")
}

func FuzzVerifySignature(f *testing.F) {
	vectorKey, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, "whsec_"))
	require.NoError(f, err)
	vectorTS, _ := strconv.ParseInt(vectorTimestamp, 10, 64)
	f.Add(vectorKey, vectorID, vectorTS, []byte(vectorBody), uint32(0), byte(1))
	f.Add(vectorKey, vectorID, vectorTS, []byte(vectorBody), uint32(40), byte(0x80))
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "id:with.dots", int64(1_800_000_000), []byte(uploadBody), uint32(7), byte(0x20))
	f.Add([]byte("k"), "x", int64(0), []byte{}, uint32(3), byte(0xff))
	f.Add([]byte("\x00\x01\x02"), "\u00e9 id", int64(-1), []byte("\x00\xff"), uint32(1<<31), byte(2))
	f.Add([]byte("some key material"), "msg", int64(math.MaxInt64), []byte("{}"), uint32(25), byte('.'))

	f.Fuzz(func(t *testing.T, key []byte, id string, ts int64, body []byte, pos uint32, delta byte) {
		if len(key) < 16 {
			key = append(key, make([]byte, 16-len(key))...)
		}
		if id == "" {
			id = "msg"
		}
		if delta == 0 {
			delta = 1
		}
		secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
		v, err := webhooks.NewVerifier(secret)
		require.NoError(t, err)
		timestamp := strconv.FormatInt(ts, 10)
		now := time.Unix(ts, 0)
		sig := v.Sign(id, timestamp, body)

		require.NoError(t, v.Verify(id, timestamp, sig, body, now))
		require.NoError(t, v.Verify(id, timestamp, "v1,AAAA "+sig, body, now))
		// Arbitrary header values never panic.
		_ = v.Verify(string(body), id, string(key), []byte(timestamp), now)

		// Change one byte of one part: the delivery no longer verifies.
		parts := [][]byte{[]byte(id), []byte(timestamp), append([]byte(nil), body...), []byte(sig), append([]byte(nil), key...)}
		total := 0
		for _, p := range parts {
			total += len(p)
		}
		at := int(pos % uint32(total))
		which := 0
		for at >= len(parts[which]) {
			at -= len(parts[which])
			which++
		}
		parts[which][at] ^= delta
		mv := v
		if which == 4 {
			mv, err = webhooks.NewVerifier("whsec_" + base64.StdEncoding.EncodeToString(parts[4]))
			require.NoError(t, err)
		}
		err = mv.Verify(string(parts[0]), string(parts[1]), string(parts[3]), parts[2], now)
		requireUnauthorized(t, err)
	})
}
