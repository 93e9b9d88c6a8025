// Package ratelimit holds Berth's request limits: token buckets per scope
// and key with bounded memory, the per-account sign-in backoff, and the
// resolution of a request's real client address behind trusted proxies.
package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/berthgw/berth/internal/lru"
)

// Limit is the shape of one token bucket: Rate tokens are added per second
// up to Burst. A zero Limit (Rate 0, Burst 0) means "no limit".
type Limit struct {
	Rate  rate.Limit
	Burst int
}

// PerPeriod returns the Limit that lets n requests through per period with
// bursts of up to burst (n when burst is 0). n == 0 means no limit.
func PerPeriod(n int, per time.Duration, burst int) Limit {
	if n <= 0 || per <= 0 {
		return Limit{}
	}
	if burst <= 0 {
		burst = n
	}
	return Limit{Rate: rate.Limit(float64(n) / per.Seconds()), Burst: burst}
}

// Unlimited reports whether the limit lets everything through.
func (l Limit) Unlimited() bool { return l.Rate == 0 && l.Burst == 0 }

// Scope names used by Berth. A scope is one family of buckets with its own
// limit; the key within a scope is a client address or a principal.
const (
	// ScopeAuth guards sign-in and token endpoints, keyed by client address.
	ScopeAuth = "auth"
	// ScopeJoin guards node join script downloads, keyed by client address.
	ScopeJoin = "join"
	// ScopeAPI guards the management API, keyed by principal.
	ScopeAPI = "api"
	// ScopeProxy guards proxied Kubernetes traffic, keyed by principal.
	ScopeProxy = "proxy"
	// ScopeAPIUser and ScopeProxyUser are ScopeAPI and ScopeProxy again,
	// keyed by user: all of a user's credentials (sessions, tokens and
	// every API key) draw from one bucket as well as their own, so a
	// user cannot multiply their allowance by minting keys.
	ScopeAPIUser   = "api_user"
	ScopeProxyUser = "proxy_user"
)

// UserScope returns the per-user scope that goes with a per-principal
// scope (api → api_user, proxy → proxy_user), or "" when it has none.
func UserScope(scope string) string {
	switch scope {
	case ScopeAPI:
		return ScopeAPIUser
	case ScopeProxy:
		return ScopeProxyUser
	}
	return ""
}

// Options configures a Limiter.
type Options struct {
	// MaxKeys bounds the buckets each scope keeps; past it the least
	// recently used bucket is forgotten. Zero means 10 000.
	MaxKeys int
	// Scopes maps each scope name to its limit.
	Scopes map[string]Limit
	// Overrides maps scope → key → limit for keys that need their own
	// limit (a busy CI robot's API key, say).
	Overrides map[string]map[string]Limit
	// Now is the clock; nil means time.Now. Tests inject one so no test
	// has to sleep.
	Now func() time.Time
}

// DefaultMaxKeys is the bucket count per scope when Options.MaxKeys is 0.
const DefaultMaxKeys = 10000

// shards splits each scope's buckets so concurrent requests rarely wait on
// one lock. Each shard holds MaxKeys/shards buckets, so the bound holds.
const shards = 16

// Limiter applies token-bucket limits per scope and key. Memory is bounded:
// each scope keeps at most MaxKeys buckets and evicts the least recently
// used, so a flood of distinct addresses costs a fixed amount of memory.
// An evicted key starts again with a full bucket, which errs on the side
// of letting a real client through. Limiter is safe for concurrent use.
type Limiter struct {
	now    func() time.Time
	seed   maphash.Seed
	scopes map[string]*scope
}

type scope struct {
	limit     Limit
	overrides map[string]Limit
	shards    [shards]shard
}

type shard struct {
	mu      sync.Mutex
	buckets *lru.Map[*rate.Limiter]
}

// New builds a Limiter.
func New(opts Options) *Limiter {
	l := &Limiter{now: opts.Now, seed: maphash.MakeSeed(), scopes: make(map[string]*scope, len(opts.Scopes))}
	if l.now == nil {
		l.now = time.Now
	}
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	perShard := max(1, maxKeys/shards)
	for name, lim := range opts.Scopes {
		s := &scope{limit: lim, overrides: opts.Overrides[name]}
		for i := range s.shards {
			s.shards[i].buckets = lru.New[*rate.Limiter](perShard)
		}
		l.scopes[name] = s
	}
	return l
}

// Allow takes one token from the bucket of key in scope. When the bucket is
// empty it reports false and how long until a token is available. An
// unknown scope is refused: a misspelt scope must fail closed, and loudly
// in tests, rather than silently disable a limit.
func (l *Limiter) Allow(scopeName, key string) (ok bool, retryAfter time.Duration) {
	s, found := l.scopes[scopeName]
	if !found {
		return false, time.Second
	}
	lim := s.limit
	if o, has := s.overrides[key]; has {
		lim = o
	}
	if lim.Unlimited() {
		return true, 0
	}
	now := l.now()
	sh := &s.shards[maphash.String(l.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, found := sh.buckets.Get(key)
	if !found {
		b = rate.NewLimiter(lim.Rate, lim.Burst) // starts full
		sh.buckets.Put(key, b)
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	if lim.Burst <= 0 || lim.Rate <= 0 {
		return false, time.Duration(math.MaxInt32) * time.Second
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// Keys returns how many buckets scope holds now; tests use it to prove the
// bound.
func (l *Limiter) Keys(scopeName string) int {
	s, ok := l.scopes[scopeName]
	if !ok {
		return 0
	}
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += s.shards[i].buckets.Len()
		s.shards[i].mu.Unlock()
	}
	return n
}

// RetryAfterSeconds turns a wait into the whole seconds a Retry-After
// header carries, rounding up so a client that obeys it is let through.
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(1, s)
}
