package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a manual clock for tests: no test in this package sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAuthScopeBurstAndRefill(t *testing.T) {
	c := newClock()
	l := New(Options{Now: c.Now, Scopes: map[string]Limit{ScopeAuth: PerPeriod(5, 30*time.Second, 0)}})
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow(ScopeAuth, "1.2.3.4"); !ok {
			t.Fatalf("request %d refused inside the burst", i+1)
		}
	}
	ok, wait := l.Allow(ScopeAuth, "1.2.3.4")
	if ok || wait <= 0 || wait > 6*time.Second {
		t.Fatalf("6th request: ok=%v wait=%v, want refused with a wait up to 6s", ok, wait)
	}
	if RetryAfterSeconds(wait) != 6 {
		t.Errorf("Retry-After = %d, want 6", RetryAfterSeconds(wait))
	}
	// A refused request must not consume a token.
	ok2, wait2 := l.Allow(ScopeAuth, "1.2.3.4")
	if ok2 || wait2 != wait {
		t.Errorf("second refusal changed the wait: %v → %v", wait, wait2)
	}
	// Another key has its own bucket.
	if ok, _ := l.Allow(ScopeAuth, "5.6.7.8"); !ok {
		t.Error("an unrelated key was limited")
	}
	c.Advance(wait)
	if ok, _ := l.Allow(ScopeAuth, "1.2.3.4"); !ok {
		t.Error("not allowed after waiting Retry-After")
	}
	if ok, _ := l.Allow(ScopeAuth, "1.2.3.4"); ok {
		t.Error("a second token appeared from one refill interval")
	}
}

func TestScopesOverridesAndUnknown(t *testing.T) {
	c := newClock()
	l := New(Options{
		Now: c.Now,
		Scopes: map[string]Limit{
			ScopeAPI:  PerPeriod(1, time.Second, 2),
			ScopeJoin: {}, // unlimited
		},
		Overrides: map[string]map[string]Limit{ScopeAPI: {"key_robot": PerPeriod(100, time.Second, 100)}},
	})
	n := 0
	for ok := true; ok && n < 1000; n++ {
		ok, _ = l.Allow(ScopeAPI, "usr_a")
	}
	if n != 3 { // two allowed, the third refused
		t.Errorf("default api limit let %d through before refusing, want 2", n-1)
	}
	for i := 0; i < 100; i++ {
		if ok, _ := l.Allow(ScopeAPI, "key_robot"); !ok {
			t.Fatalf("override: request %d refused", i+1)
		}
	}
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(ScopeJoin, "x"); !ok {
			t.Fatal("unlimited scope refused")
		}
	}
	if l.Keys(ScopeJoin) != 0 {
		t.Error("unlimited scope keeps buckets")
	}
	if ok, _ := l.Allow("no-such-scope", "x"); ok {
		t.Error("unknown scope must fail closed")
	}
}

// A flood of distinct source addresses keeps memory bounded: the bucket
// count never exceeds MaxKeys, and the oldest keys are the ones forgotten.
func TestFloodOfAddressesStaysBounded(t *testing.T) {
	c := newClock()
	l := New(Options{Now: c.Now, MaxKeys: 1600, Scopes: map[string]Limit{ScopeAuth: PerPeriod(1, time.Hour, 1)}})
	l.Allow(ScopeAuth, "victim")
	for i := 0; i < 200_000; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(ScopeAuth, Key(a))
		if i%10_000 == 0 {
			l.Allow(ScopeAuth, "victim") // keep it recently used
		}
	}
	if n := l.Keys(ScopeAuth); n > 1600 {
		t.Fatalf("scope holds %d buckets, bound is 1600", n)
	}
	// The first of the flood were evicted and start over with a full bucket.
	if ok, _ := l.Allow(ScopeAuth, Key(netip.AddrFrom4([4]byte{10, 0, 0, 1}))); !ok {
		t.Error("evicted key did not start over")
	}
}

func TestBackoff(t *testing.T) {
	c := newClock()
	b := NewBackoff(BackoffOptions{Threshold: 3, Base: time.Minute, Max: 8 * time.Minute, Now: c.Now})
	for i := range 2 {
		if d := b.Fail("alice"); d != 0 {
			t.Fatalf("failure %d locks for %v, under the threshold", i+1, d)
		}
	}
	if d := b.Fail("alice"); d != time.Minute {
		t.Fatalf("third failure locks for %v, want 1m", d)
	}
	if d := b.Locked("alice"); d != time.Minute {
		t.Errorf("Locked = %v", d)
	}
	if b.Locked("bob") != 0 {
		t.Error("unrelated key locked")
	}
	c.Advance(time.Minute)
	if b.Locked("alice") != 0 {
		t.Error("still locked after the lock ran out")
	}
	if d := b.Fail("alice"); d != 2*time.Minute {
		t.Errorf("fourth failure locks for %v, want 2m", d)
	}
	c.Advance(2 * time.Minute)
	b.Fail("alice")
	c.Advance(4 * time.Minute)
	if d := b.Fail("alice"); d != 8*time.Minute {
		t.Errorf("lock not capped at max: %v", d)
	}
	b.Reset("alice")
	if b.Locked("alice") != 0 || b.Fail("alice") != 0 {
		t.Error("reset did not clear the failures")
	}
	// Failures older than Max are forgotten.
	b.Fail("carol")
	b.Fail("carol")
	c.Advance(9 * time.Minute)
	if b.Fail("carol") != 0 {
		t.Error("old failures still counted")
	}
	off := NewBackoff(BackoffOptions{Threshold: 0, Base: time.Minute, Now: c.Now})
	for i := 0; i < 10; i++ {
		if off.Fail("x") != 0 {
			t.Fatal("threshold 0 must disable locking")
		}
	}
}

func TestBackoffStateSurvivesRestore(t *testing.T) {
	c := newClock()
	opts := BackoffOptions{Threshold: 3, Base: time.Minute, Max: 8 * time.Minute, Now: c.Now}
	saved := func(fails int) State {
		b := NewBackoff(opts)
		for range fails {
			b.Fail("alice")
		}
		st, ok := b.State("alice")
		if !ok || st.Failures != fails {
			t.Fatalf("State after %d failures = %+v, %v", fails, st, ok)
		}
		return st
	}
	tests := []struct {
		name       string
		state      State
		opts       BackoffOptions
		later      time.Duration
		wantLocked time.Duration
		// wantNext is the lock the next failure brings.
		wantNext time.Duration
	}{
		{"locked stays locked", saved(3), opts, 30 * time.Second, 30 * time.Second, 2 * time.Minute},
		{"count kept under the threshold", saved(2), opts, time.Minute, 0, time.Minute},
		{"forgotten after max", saved(2), opts, 9 * time.Minute, 0, 0},
		{"lock shortened to a smaller max", saved(3), BackoffOptions{Threshold: 3, Base: 10 * time.Second, Max: 20 * time.Second, Now: c.Now}, 0, 20 * time.Second, 20 * time.Second},
		{"disabled ignores it", saved(3), BackoffOptions{Threshold: 0, Base: time.Minute, Now: c.Now}, 0, 0, 0},
		{"empty state ignored", State{}, opts, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := c.Now()
			st := tt.state
			// Shift the saved times to now, as if saved just before a restart.
			shift := start.Sub(st.Last)
			if !st.Last.IsZero() {
				st.Last = st.Last.Add(shift)
			}
			if !st.LockedUntil.IsZero() {
				st.LockedUntil = st.LockedUntil.Add(shift)
			}
			c.Advance(tt.later)
			b := NewBackoff(tt.opts)
			b.Restore("alice", st)
			if got := b.Locked("alice"); got != tt.wantLocked {
				t.Errorf("Locked = %v, want %v", got, tt.wantLocked)
			}
			if got := b.Fail("alice"); got != tt.wantNext {
				t.Errorf("next failure locks for %v, want %v", got, tt.wantNext)
			}
			if b.Locked("bob") != 0 {
				t.Error("restore locked another key")
			}
		})
	}
	b := NewBackoff(opts)
	if _, ok := b.State("nobody"); ok {
		t.Error("State of an unknown key")
	}
	st := State{Failures: 4, Last: c.Now(), LockedUntil: c.Now().Add(20 * time.Minute)}
	if got := b.ForgetAt(st); !got.Equal(st.LockedUntil) {
		t.Errorf("ForgetAt with a long lock = %v, want the lock's end", got)
	}
	st.LockedUntil = time.Time{}
	if got := b.ForgetAt(st); !got.Equal(c.Now().Add(8 * time.Minute)) {
		t.Errorf("ForgetAt = %v, want last + max", got)
	}
}

func TestKeyMasksIPv6To64(t *testing.T) {
	tests := map[string]string{
		"192.0.2.7":               "192.0.2.7",
		"::ffff:192.0.2.7":        "192.0.2.7",
		"2001:db8:1:2:aaaa::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:1:2:3": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":         "2001:db8:1:3::/64",
		"fe80::1":                 "fe80::/64",
	}
	for in, want := range tests {
		if got := Key(netip.MustParseAddr(in)); got != want {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
	if Key(netip.Addr{}) != "invalid" {
		t.Error("invalid address key")
	}
}

func TestResolveClientIP(t *testing.T) {
	trusted, err := ParseTrusted([]string{"10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name  string
		peer  string
		xff   []string
		xreal string
		want  string
	}
	tests := []tc{
		{"untrusted peer ignores spoofed XFF", "203.0.113.9", []string{"1.1.1.1"}, "", "203.0.113.9"},
		{"untrusted peer ignores X-Real-IP", "203.0.113.9", nil, "1.1.1.1", "203.0.113.9"},
		{"trusted peer, one hop", "10.0.0.2", []string{"198.51.100.4"}, "", "198.51.100.4"},
		{"rightmost untrusted wins over client-written left part", "10.0.0.2", []string{"6.6.6.6, 198.51.100.4"}, "", "198.51.100.4"},
		{"trusted hops are skipped", "10.0.0.2", []string{"198.51.100.4, 10.9.9.9, 192.168.1.1"}, "", "198.51.100.4"},
		{"several header lines read as one list", "10.0.0.2", []string{"6.6.6.6", "198.51.100.4, 10.1.1.1"}, "", "198.51.100.4"},
		{"all trusted gives the leftmost", "10.0.0.2", []string{"10.3.3.3, 10.4.4.4"}, "", "10.3.3.3"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.2", []string{"198.51.100.4, nonsense, 10.4.4.4"}, "", "10.4.4.4"},
		{"garbage right after the peer", "10.0.0.2", []string{"1.2.3.4, <script>"}, "", "10.0.0.2"},
		{"ports are accepted", "10.0.0.2", []string{"[2001:db8::5]:443"}, "", "2001:db8::5"},
		{"ipv4 with port", "10.0.0.2", []string{"198.51.100.4:5000"}, "", "198.51.100.4"},
		{"mapped addresses unmapped", "::ffff:10.0.0.2", []string{"::ffff:198.51.100.4"}, "", "198.51.100.4"},
		{"X-Real-IP without XFF", "10.0.0.2", nil, "198.51.100.8", "198.51.100.8"},
		{"XFF wins over X-Real-IP", "10.0.0.2", []string{"198.51.100.4"}, "198.51.100.8", "198.51.100.4"},
		{"bad X-Real-IP falls back to peer", "10.0.0.2", nil, "not-an-ip", "10.0.0.2"},
		{"empty entries skipped", "10.0.0.2", []string{" , ,198.51.100.4 , "}, "", "198.51.100.4"},
		{"zones refused", "10.0.0.2", []string{"fe80::1%eth0"}, "", "10.0.0.2"},
		{"ipv6 trusted proxy", "2001:db8:ffff::1", []string{"2001:db8:1::9"}, "", "2001:db8:1::9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var xff [][]byte
			for _, l := range tt.xff {
				xff = append(xff, []byte(l))
			}
			got := ResolveClientIP(netip.MustParseAddr(tt.peer), xff, []byte(tt.xreal), trusted)
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	// Nobody trusted: headers never matter.
	if got := ResolveClientIP(netip.MustParseAddr("10.0.0.2"), [][]byte{[]byte("1.1.1.1")}, nil, nil); got.String() != "10.0.0.2" {
		t.Errorf("nil trusted: %s", got)
	}
}

func TestResolveClientIPBoundsLongHeaders(t *testing.T) {
	trusted, _ := ParseTrusted([]string{"10.0.0.0/8"})
	line := []byte("198.51.100.4")
	for i := 0; i < 5000; i++ {
		line = append(line, ", 10.0.0.1"...)
	}
	// 5000 trusted hops: the walk stops after maxForwardedHops at a
	// trusted address rather than scanning everything.
	got := ResolveClientIP(netip.MustParseAddr("10.0.0.2"), [][]byte{line}, nil, trusted)
	if !trusted.Contains(got) {
		t.Errorf("got %s", got)
	}
}

func TestParseTrusted(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3", "::/129"} {
		if _, err := ParseTrusted([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	tr, err := ParseTrusted([]string{"::ffff:10.0.0.0/104", " 127.0.0.1 ", ""})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Contains(netip.MustParseAddr("10.2.3.4")) || !tr.Contains(netip.MustParseAddr("127.0.0.1")) || tr.Contains(netip.MustParseAddr("127.0.0.2")) {
		t.Error("membership wrong")
	}
	var none *Trusted
	if none.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("nil Trusted must trust no one")
	}
}

func ExampleLimiter_Allow() {
	l := New(Options{Scopes: map[string]Limit{ScopeAuth: PerPeriod(5, 30*time.Second, 0)}})
	for i := 0; i < 6; i++ {
		ok, wait := l.Allow(ScopeAuth, "198.51.100.4")
		fmt.Println(ok, RetryAfterSeconds(wait) > 0)
	}
	// Output:
	// true true
	// true true
	// true true
	// true true
	// true true
	// false true
}

func TestUserScope(t *testing.T) {
	for scope, want := range map[string]string{
		ScopeAPI:   ScopeAPIUser,
		ScopeProxy: ScopeProxyUser,
		ScopeAuth:  "",
		ScopeJoin:  "",
		"nope":     "",
	} {
		if got := UserScope(scope); got != want {
			t.Errorf("UserScope(%q) = %q, want %q", scope, got, want)
		}
	}
}
