package ratelimit

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAllow100kKeys measures one limiter lookup in a scope holding
// 100 000 buckets, cycling through all of them (every lookup a hit).
func BenchmarkAllow100kKeys(b *testing.B) {
	const n = 100_000
	l := New(Options{MaxKeys: n * 2, Scopes: map[string]Limit{ScopeProxy: PerPeriod(1000, time.Second, 1000)}})
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "usr_" + strconv.Itoa(i)
		l.Allow(ScopeProxy, keys[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.Allow(ScopeProxy, keys[i%n])
	}
}

// BenchmarkAllowFloodEvicting measures the worst case: every lookup is a new
// key in a full scope of 100 000 buckets, so each one evicts.
func BenchmarkAllowFloodEvicting(b *testing.B) {
	const n = 100_000
	l := New(Options{MaxKeys: n, Scopes: map[string]Limit{ScopeAuth: PerPeriod(5, 30*time.Second, 0)}})
	keys := make([]string, 4*n)
	for i := range keys {
		keys[i] = Key(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	for _, k := range keys[:n] {
		l.Allow(ScopeAuth, k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.Allow(ScopeAuth, keys[n+i%(3*n)])
	}
}

// BenchmarkAllowParallel100kKeys is the hit path under concurrency.
func BenchmarkAllowParallel100kKeys(b *testing.B) {
	const n = 100_000
	l := New(Options{MaxKeys: n * 2, Scopes: map[string]Limit{ScopeProxy: PerPeriod(1000, time.Second, 1000)}})
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "usr_" + strconv.Itoa(i)
		l.Allow(ScopeProxy, keys[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(ScopeProxy, keys[i%n])
			i += 7
		}
	})
}

func BenchmarkResolveClientIP(b *testing.B) {
	trusted, _ := ParseTrusted([]string{"10.0.0.0/8"})
	peer := netip.MustParseAddr("10.0.0.2")
	xff := [][]byte{[]byte("203.0.113.50, 198.51.100.4, 10.1.1.1")}
	b.ReportAllocs()
	for b.Loop() {
		Key(ResolveClientIP(peer, xff, nil, trusted))
	}
}
