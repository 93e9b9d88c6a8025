package authn

import (
	"context"
	"crypto/rand"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// benchAuth builds a real service on a Badger in a temp dir with one
// admin, an access token and an API key.
func benchAuth(b testing.TB) (a *Authenticator, token, key string) {
	a, _, token, key = newTestAuth(b)
	return a, token, key
}

// newTestAuth is benchAuth, also returning the identity service.
func newTestAuth(b testing.TB) (a *Authenticator, svc *identity.Service, token, key string) {
	b.Helper()
	db, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	k := make([]byte, 32)
	rand.Read(k)
	box, _ := secretbox.New(k)
	if _, err := identity.EnsureAdmin(db, "bench-password-1", nil); err != nil {
		b.Fatal(err)
	}
	svc, err = identity.NewService(identity.Options{DB: db, Box: box, Audit: audit.New(db, audit.Options{}),
		Settings: identity.Settings{Issuer: "berth", Audience: "berth", AccessTokenTTL: 1 << 40, RefreshTokenTTL: 1 << 40,
			SessionTTL: 1 << 40, AccessKeyTokenTTL: 1 << 40, MaxAccessKeys: 5}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	u, err := svc.SignIn(ctx, "admin", "bench-password-1", identity.MethodPassword, identity.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	tp, err := svc.IssueTokens(ctx, u, identity.MethodPassword, "", identity.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := svc.VerifyAccessToken(tp.AccessToken)
	if err != nil {
		b.Fatal(err)
	}
	_, key, err = svc.CreateAPIKey(ctx, p, identity.NewAPIKey{Name: "bench"}, identity.Meta{})
	if err != nil {
		b.Fatal(err)
	}
	a, err = New(Options{Service: svc, Limiter: ratelimit.New(ratelimit.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	return a, svc, tp.AccessToken, key
}

func benchAuthenticate(b *testing.B, a *Authenticator, credential string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+credential)
	if _, err := a.Authenticate(&ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.ResetUserValues()
		if _, err := a.Authenticate(&ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateAccessToken is the whole per-request cost of a JWT:
// header parsing, Ed25519 verification and claims checks, and the store
// reads of the session, the user and their roles.
func BenchmarkAuthenticateAccessToken(b *testing.B) {
	a, token, _ := benchAuth(b)
	benchAuthenticate(b, a, token)
}

// BenchmarkAuthenticateAPIKey is the per-request cost of an API key: the
// HMAC digest, the index lookup, and the user and role reads.
func BenchmarkAuthenticateAPIKey(b *testing.B) {
	a, _, key := benchAuth(b)
	benchAuthenticate(b, a, key)
}

func BenchmarkParseBearer(b *testing.B) {
	h := []byte("Bearer eyJhbGciOiJFZERTQSIsImtpZCI6Imp3a18wNmgwcjV5MzIyNzBjZTVoMmd2NjciLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJiZXJ0aCJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBearer(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateKeptToken is a request on a connection whose token
// was verified before (see Authenticator.kept): the common case of
// kubectl's kept-alive connections.
func BenchmarkAuthenticateKeptToken(b *testing.B) {
	a, token, _ := benchAuth(b)
	var ctx fasthttp.RequestCtx
	ctx.Init2(&net.TCPConn{}, nil, false)
	ctx.Request.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+token)
	if _, err := a.Authenticate(&ctx); err != nil {
		b.Fatal(err)
	}
	if a.keptCount.Load() != 1 {
		b.Fatal("not kept")
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx.ResetUserValues()
		if _, err := a.Authenticate(&ctx); err != nil {
			b.Fatal(err)
		}
	}
}
