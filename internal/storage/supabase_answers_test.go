package storage_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/apperr/apperrtest"
	"github.com/clipper/clipper/internal/storage"
)

// Tests of the Supabase backend against the answers the real server gives
// (measured against supabase/storage v1.70.6, file backend).

// withKey returns a Supabase backend on b's fake with another key, and the
// buffer its logs go to.
func (b *supabaseBundle) withKey(t *testing.T, key string) (*storage.Supabase, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := storage.NewSupabase(b.server.URL, key, storage.SupabaseOptions{
		Timeout: 5 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	return s, &logs
}

func TestSupabaseRefusedKey(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/a.mp4", []byte("a"))

	// The exact answer of the real server to a key it refuses.
	req, err := http.NewRequest(http.MethodPost, b.server.URL+"/storage/v1/object/sign/results/a.mp4", strings.NewReader(`{"expiresIn":60}`))
	require.NoError(t, err)
	other := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": "service_role", "exp": 1983812996})
	otherKey, err := other.SignedString([]byte("the-secret-of-another-project-at-least-32-chars"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+otherKey)
	req.Header.Set("apikey", otherKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, map[string]string{"statusCode": "403", "code": "AccessDenied", "error": "Unauthorized", "message": "signature verification failed"}, body)

	expired := projectJWT(jwt.MapClaims{"role": "service_role", "exp": time.Now().Add(-time.Hour).Unix()})
	for name, key := range map[string]string{
		"OtherProject":     otherKey, // a rotated JWT secret looks the same
		"Expired":          expired,
		"NotAJWT":          "not-a-key",
		"UnknownSecretKey": "sb_secret_rotatedAwayXXXXXXXXXXXXXXXXXXXX",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, logs := b.withKey(t, key)
			for range 3 {
				_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
				apperrtest.RequireError(t, err, apperr.Unavailable, "storage is unavailable: Supabase Storage refused the daemon's service key")
				require.NotContains(t, apperr.EnvelopeOf(err).Message, key)
				require.NotContains(t, err.Error(), key)
				_, err = s.SignUpload(b.ctx, storage.BucketSources, "new.mp4", time.Minute)
				apperrtest.RequireError(t, err, apperr.Unavailable, "refused the daemon's service key")
			}
			// Logged once, clearly, without the key.
			require.Equal(t, 1, strings.Count(logs.String(), "level=ERROR"), logs.String())
			require.Contains(t, logs.String(), "Supabase Storage refused the service key")
			require.Contains(t, logs.String(), "SUPABASE_SERVICE_ROLE_KEY")
			require.NotContains(t, logs.String(), key)
		})
	}
}

func TestSupabaseRefusedKeyLoggedAgainAfterRecovery(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/a.mp4", []byte("a"))
	s, logs := b.withKey(t, secretKey)
	setGatewayKey := func(k string) {
		b.fake.mu.Lock()
		b.fake.secretKey = k
		b.fake.mu.Unlock()
	}

	setGatewayKey("sb_secret_theNewKeyAfterARotationXXXXXXXX") // rotated: ours is gone
	_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
	apperrtest.RequireError(t, err, apperr.Unavailable, "refused the daemon's service key")
	setGatewayKey(secretKey)
	_, err = s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
	require.NoError(t, err)
	require.Contains(t, logs.String(), "Supabase Storage accepts the service key again")
	setGatewayKey("sb_secret_theNewKeyAfterARotationXXXXXXXX")
	_, err = s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
	require.Error(t, err)
	require.Equal(t, 2, strings.Count(logs.String(), "level=ERROR"), logs.String())
	require.NotContains(t, logs.String(), secretKey)
}

func TestSupabaseKeyHeaders(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	b.fake.put("results/a.mp4", []byte("a"))

	t.Run("LegacyServiceRoleJWT", func(t *testing.T) {
		t.Parallel()
		s, _ := b.withKey(t, serviceRoleKey)
		_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		require.NoError(t, err)
		req := b.fake.lastRequestFor(t, serviceRoleKey)
		require.Equal(t, serviceRoleKey, req.Header.Get("apikey"))
		require.Equal(t, "Bearer "+serviceRoleKey, req.Header.Get("Authorization"))
	})

	t.Run("SecretKey", func(t *testing.T) {
		t.Parallel()
		// Not a JWT: in apikey only; the gateway puts the service_role JWT
		// in Authorization.
		s, _ := b.withKey(t, secretKey)
		_, err := s.SignDownload(b.ctx, storage.BucketResults, "a.mp4", time.Minute)
		require.NoError(t, err)
		_, err = s.SignUpload(b.ctx, storage.BucketSources, "by-secret-key.mp4", time.Minute)
		require.NoError(t, err)
		req := b.fake.lastRequestFor(t, secretKey)
		require.Equal(t, secretKey, req.Header.Get("apikey"))
		require.Empty(t, req.Header.Values("Authorization"))
	})

	t.Run("SecretKeyWithoutGateway", func(t *testing.T) {
		t.Parallel()
		// A server whose gateway knows no secret key refuses it as the
		// real one does: the daemon says so.
		fake := newFakeStorage()
		fake.secretKey = ""
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		s, err := storage.NewSupabase(srv.URL, secretKey, storage.SupabaseOptions{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = s.SignUpload(b.ctx, storage.BucketSources, "x.mp4", time.Minute)
		apperrtest.RequireError(t, err, apperr.Unavailable, "refused the daemon's service key")
	})
}

// lastRequestFor returns the last request the fake received with key in
// its apikey header.
func (f *fakeStorage) lastRequestFor(t *testing.T, key string) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i].Header.Get("apikey") == key {
			return f.requests[i]
		}
	}
	t.Fatalf("no request with that key")
	return nil
}

// requireUsableURL checks that a signed URL is one that strict clients
// (curl, Python, Go) take as it is: parseable, no space, its query only
// the token.
func requireUsableURL(t *testing.T, raw string) {
	t.Helper()
	require.NotContains(t, raw, " ")
	u, err := url.Parse(raw)
	require.NoError(t, err, raw)
	require.True(t, u.IsAbs(), raw)
	require.Equal(t, []string{"token"}, keys(u.Query()), raw)
	require.Equal(t, 1, strings.Count(raw, "?"), raw)
}

func keys(v url.Values) []string {
	out := []string{}
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestSupabaseNamesThatNeedEscaping(t *testing.T) {
	t.Parallel()
	b := setupSupabase(t)
	for _, name := range []string{"J/my clip.mp4", "J/what?.mp4", "J/a?b?c.mp4", "J/a,b;c=d&e+f$g@h:i.mp4", "J/(1) it's!*.mp4"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			up, err := b.s.SignUpload(b.ctx, storage.BucketResults, name, time.Minute)
			require.NoError(t, err)
			requireUsableURL(t, up.URL)
			require.Equal(t, name, up.Path)
			data := []byte("bytes of " + name)
			r := do(t, http.MethodPut, up.URL, bytes.NewReader(data), "Content-Type", "video/mp4")
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.JSONEq(t, `{"Key":`+jsonString(storage.BucketResults+"/"+name)+`}`, string(r.body))

			down, err := b.s.SignDownload(b.ctx, storage.BucketResults, name, time.Minute)
			require.NoError(t, err)
			requireUsableURL(t, down.URL)
			r = do(t, http.MethodGet, down.URL, nil)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			require.Equal(t, data, r.body)
		})
	}
	t.Run("Escapes", func(t *testing.T) {
		t.Parallel()
		u, err := b.s.SignUpload(b.ctx, storage.BucketResults, "J/my clip?.mp4", time.Minute)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(u.URL, b.server.URL+"/storage/v1/object/upload/sign/results/J/my%20clip%3F.mp4?token="), u.URL)
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestSupabaseUploadURLExpiry(t *testing.T) {
	t.Parallel()

	t.Run("ServerSetting", func(t *testing.T) {
		t.Parallel()
		// A self-hosted server with its default: 60 s, whatever the daemon
		// asks for.
		fake := newFakeStorage()
		fake.uploadTTL = 60 * time.Second
		s := newSupabase(t, fake)
		start := time.Now()
		u, err := s.SignUpload(t.Context(), storage.BucketSources, "a.mp4", time.Hour)
		require.NoError(t, err)
		require.NotNil(t, u.ExpiresAt)
		requireExpiry(t, start, 60*time.Second, *u.ExpiresAt)
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		fake := newFakeStorage()
		fake.uploadTTL = -1 // a token without exp
		s := newSupabase(t, fake)
		u, err := s.SignUpload(t.Context(), storage.BucketSources, "a.mp4", time.Minute)
		require.NoError(t, err)
		require.Nil(t, u.ExpiresAt)
		out, err := json.Marshal(u)
		require.NoError(t, err)
		require.Contains(t, string(out), `"expires_at":null`)
	})
}
