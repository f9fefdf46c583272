package bench

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/config"
	"github.com/clipper/clipper/internal/jobs"
)

// authFlood measures the daemon under an argon2id denial-of-service
// attempt: attackers send requests with a new random secret each time
// (valid checksum) for a real key's lookup id, and with random lookup
// ids, from many client addresses, while valid clients keep working.
// It runs three rounds on fresh daemons: no flood, the flood against the
// default guard (failure budgets per lookup id and client, fail-fast
// verification slots), and the flood with the guard opened wide (every
// budget at its maximum), which is how the daemon behaved before it had
// one. Valid clients are cached keys (four clients) and one client
// presenting a key never seen before on each request (one argon2id each,
// which is what a flood starves).
func (e *env) authFlood(ctx context.Context) error {
	owner := uuid.New()
	if _, err := e.pool.Exec(ctx, "insert into auth.users (id, email) values ($1, $2)", owner, owner.String()+"@bench.test"); err != nil {
		return err
	}
	batch := make([]jobs.CreateParams, 100)
	for i := range batch {
		batch[i] = newJob(i)
		batch[i].OwnerID = uuid.NullUUID{UUID: owner, Valid: true}
	}
	if _, err := jobs.New(e.pool).CreateBatch(ctx, batch); err != nil {
		return err
	}
	rows, err := e.pool.Query(ctx, "select id from jobs where owner_id = $1", owner)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	keys, err := apikeys.NewRepo(e.pool, apikeys.Options{})
	if err != nil {
		return err
	}
	limit := int32(1_000_000)
	newKey := func() (apikeys.Key, string, error) {
		return keys.Create(ctx, apikeys.CreateParams{OwnerID: &owner, Name: "bench",
			Scopes: []apikeys.Scope{apikeys.ScopeJobsRead}, RateLimitPerMinute: &limit})
	}
	var valid []string
	for range 4 {
		_, tok, err := newKey()
		if err != nil {
			return err
		}
		valid = append(valid, tok)
	}
	victim, _, err := newKey()
	if err != nil {
		return err
	}
	// Never-seen keys for one sequential client, one per request (one
	// argon2id each, 25 ms on an idle core); once used up it goes on
	// with a cached key.
	fresh := min(max(int(max(e.opts.Phase, 3*time.Second)/(25*time.Millisecond)), 10), 40)

	rounds := []struct {
		name  string
		flood bool
		open  bool // the guard opened wide
	}{
		{"auth_baseline", false, false},
		{"auth_flood", true, false},
		{"auth_flood_unguarded", true, true},
	}
	for _, r := range rounds {
		var freshKeys []string
		for range fresh {
			_, tok, err := newKey()
			if err != nil {
				return err
			}
			freshKeys = append(freshKeys, tok)
		}
		if err := e.authRound(ctx, r.name, r.flood, r.open, ids, valid, freshKeys, victim.LookupID); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return nil
}

func (e *env) authRound(ctx context.Context, name string, flood, open bool, ids []uuid.UUID, valid, freshKeys []string, victimLookupID string) error {
	base, stop, err := e.startDaemon(ctx, func(cfg *config.Config) {
		// Attackers come from many addresses: the bench names them in
		// X-Forwarded-For, as a proxy in front of the daemon would.
		cfg.TrustedProxies = []string{"127.0.0.1/32"}
		if open {
			cfg.AuthFailuresPerKey, cfg.AuthFailuresPerClient, cfg.AuthMaxPending = 1_000_000, 1_000_000, 100_000
		}
	})
	if err != nil {
		return err
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}, Timeout: 30 * time.Second}
	get := func(ctx context.Context, token, forwarded string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/jobs/"+ids[rand.IntN(len(ids))].String(), nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if forwarded != "" {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, tok := range valid { // cache the valid keys
		if code, err := get(ctx, tok, ""); err != nil || code != http.StatusOK {
			return fmt.Errorf("warm-up: status %d: %v", code, err)
		}
	}

	fctx, stopFlood := context.WithCancel(ctx)
	var attacks, refusedFast atomic.Int64
	var wg sync.WaitGroup
	if flood {
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					lookupID := victimLookupID
					if w%2 == 1 {
						tok, err := apikeys.Generate()
						if err != nil {
							return
						}
						lookupID = tok.LookupID()
					}
					ip := fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), rand.IntN(256))
					code, err := get(fctx, forge(lookupID, randomSecret()), ip)
					if err != nil {
						continue
					}
					attacks.Add(1)
					if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
						refusedFast.Add(1)
					}
				}
			}()
		}
	}

	var (
		cached   = &latencies{}
		newLat   = &latencies{}
		failures atomic.Int64
		next     atomic.Int64
		// Why valid requests failed, for the log.
		failMu     sync.Mutex
		failedWith = map[string]int{}
	)
	// At least 3 s: shorter rounds on a busy machine measure its noise.
	n, elapsed, err := runFor(ctx, len(valid)+1, max(e.opts.Phase, 3*time.Second), func(ctx context.Context, w int) (int, error) {
		tok := ""
		lat := cached
		if w == len(valid) {
			i := int(next.Add(1)) - 1
			if i >= len(freshKeys) {
				tok, lat = valid[0], cached
			} else {
				tok, lat = freshKeys[i], newLat
			}
		} else {
			tok = valid[w]
		}
		t := time.Now()
		code, err := get(ctx, tok, "")
		if err != nil || code != http.StatusOK {
			failures.Add(1)
			why := fmt.Sprintf("status %d", code)
			if err != nil {
				why = err.Error()
			}
			failMu.Lock()
			failedWith[why]++
			failMu.Unlock()
			return 0, nil
		}
		lat.add(time.Since(t))
		return 1, nil
	})
	if len(failedWith) > 0 {
		e.logf("  %s: valid requests that failed: %v", name, failedWith)
	}
	stopFlood()
	wg.Wait()
	if err != nil {
		return err
	}
	e.rep.add(name+"_valid_rps", float64(n)/elapsed.Seconds(), "req/s")
	e.rep.add(name+"_cached_key_p95_ms", cached.percentile(95), "ms")
	e.rep.add(name+"_new_key_p95_ms", newLat.percentile(95), "ms")
	e.rep.add(name+"_valid_failed", float64(failures.Load()), "requests")
	if flood {
		e.rep.add(name+"_attack_rps", float64(attacks.Load())/elapsed.Seconds(), "req/s")
		share := 0.0
		if a := attacks.Load(); a > 0 {
			share = 100 * float64(refusedFast.Load()) / float64(a)
		}
		e.rep.add(name+"_attack_refused_fast", share, "%")
		// Misses that the throttle let through reached the database (and,
		// for a real lookup id, argon2id).
		miss, ok1 := scrapeCounter(ctx, client, base, `clipper_api_key_cache_lookups_total{result="miss"}`)
		throttled, _ := scrapeCounter(ctx, client, base, `clipper_api_key_cache_lookups_total{result="throttled"}`)
		busy, _ := scrapeCounter(ctx, client, base, `clipper_api_key_cache_lookups_total{result="busy"}`)
		if ok1 {
			e.rep.add(name+"_verifications", miss-throttled-busy, "count")
		}
	}
	return nil
}

// scrapeCounter reads one sample from the daemon's /metrics.
func scrapeCounter(ctx context.Context, client *http.Client, base, sample string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// randomSecret is a well-formed secret nobody holds.
func randomSecret() string {
	tok, err := apikeys.Generate()
	if err != nil {
		panic(err)
	}
	_, secret, _ := apikeys.Parse(tok.Plaintext())
	return secret
}

// forge builds a token with a valid checksum from its parts: the
// checksum (CRC-32, see apikeys) is public, so an attacker can.
func forge(lookupID, secret string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := apikeys.Prefix + lookupID + "_" + secret
	n := crc32.ChecksumIEEE([]byte(body))
	var sum [apikeys.ChecksumLen]byte
	for i := len(sum) - 1; i >= 0; i-- {
		sum[i] = base62[n%62]
		n /= 62
	}
	return body + string(sum[:])
}
