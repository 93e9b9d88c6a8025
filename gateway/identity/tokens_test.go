package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/lru"
)

func testIssuer(t testing.TB, now func() time.Time) *tokenIssuer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ks := &keySet{signerID: "jwk_test", signer: priv, verify: map[string]ed25519.PublicKey{"jwk_test": priv.Public().(ed25519.PublicKey)}}
	return newTokenIssuer(ks, "berth", "berth", 30*time.Second, now)
}

// A cached token is still checked for expiry on every use.
func TestVerifiedCacheRechecksTime(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ti := testIssuer(t, clock)
	tok, _, err := ti.issue("usr_a", "ses_a", MethodPassword, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c1, _, err := ti.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := ti.verify(tok)
	if err != nil || c2 != c1 {
		t.Fatalf("second verify did not hit the cache: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, _, err := ti.verify(tok); err == nil {
		t.Fatal("expired token accepted from the cache")
	}
	// A token differing in one byte is not a hit.
	if _, _, err := ti.verify(tok[:len(tok)-2] + "AA"); err == nil {
		t.Fatal("altered token accepted")
	}
}

func TestPrincipalCanAndAllowsCluster(t *testing.T) {
	admin := &Principal{Permissions: []string{PermAll}}
	user := &Principal{Permissions: []string{PermClustersRead}}
	scoped := &Principal{Permissions: []string{PermAll}, Scopes: []string{"cluster:prod", PermClustersRead}}
	onlyCluster := &Principal{Permissions: []string{PermClustersRead}, Scopes: []string{"cluster:dev"}}
	tests := []struct {
		p    *Principal
		perm string
		want bool
	}{
		{admin, PermUsersAdmin, true},
		{admin, "later:perm", true},
		{user, PermClustersRead, true},
		{user, PermClustersWrite, false},
		{scoped, PermClustersRead, true},
		{scoped, PermUsersAdmin, false},
		{onlyCluster, PermClustersRead, true},
		{onlyCluster, PermClustersWrite, false},
		{nil, PermClustersRead, false},
		{admin, "", false},
	}
	for _, tt := range tests {
		if got := tt.p.Can(tt.perm); got != tt.want {
			t.Errorf("%+v.Can(%q) = %v", tt.p, tt.perm, got)
		}
	}
	if !admin.AllowsCluster("any") || !scoped.AllowsCluster("prod") || scoped.AllowsCluster("dev") ||
		!onlyCluster.AllowsCluster("dev") || onlyCluster.AllowsCluster("prod") || admin.AllowsCluster("") {
		t.Error("AllowsCluster")
	}
	if admin.Scoped() || !scoped.Scoped() {
		t.Error("Scoped")
	}
	key := &Principal{UserID: "usr_a", AuthMethod: MethodAPIKey, CredentialID: "key_a"}
	if key.RateKey() != "key_a" || (&Principal{UserID: "usr_a", AuthMethod: MethodPassword}).RateKey() != "usr_a" {
		t.Error("RateKey")
	}
}

func TestCheckOAuthClient(t *testing.T) {
	clients := []OAuthClient{{ID: "ks", SecretSHA256: sha("s3cret-s3cret-s3cret")}}
	if !checkOAuthClient(clients, "ks", "s3cret-s3cret-s3cret") {
		t.Error("right secret refused")
	}
	for _, c := range [][2]string{{"ks", "wrong"}, {"ks", ""}, {"other", "s3cret-s3cret-s3cret"}, {"", ""}} {
		if checkOAuthClient(clients, c[0], c[1]) {
			t.Errorf("%q/%q accepted", c[0], c[1])
		}
	}
	if checkOAuthClient(nil, "kubesphere", "kubesphere") {
		t.Error("no clients configured, yet one accepted")
	}
}

// BenchmarkVerifyAccessTokenUncached is the cost of a token seen for the
// first time: Ed25519 verification and claims checks, no store access.
func BenchmarkVerifyAccessTokenUncached(b *testing.B) {
	ti := testIssuer(b, time.Now)
	ti.verified = lru.New[verifiedToken](1)
	t1, _, _ := ti.issue("usr_a", "ses_a", MethodPassword, time.Hour)
	t2, _, _ := ti.issue("usr_b", "ses_b", MethodPassword, time.Hour)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tok := t1
		if i%2 == 1 {
			tok = t2 // each evicts the other: every verify misses the cache
		}
		if _, _, err := ti.verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAccessTokenCached is the cost of a token seen before.
func BenchmarkVerifyAccessTokenCached(b *testing.B) {
	ti := testIssuer(b, time.Now)
	tok, _, _ := ti.issue("usr_a", "ses_a", MethodPassword, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ti.verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }
