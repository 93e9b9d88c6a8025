package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// jwksVerify checks raw against the JSON Web Key Set doc the way a
// service outside Berth would: find the key by kid, verify EdDSA.
func jwksVerify(t *testing.T, doc []byte, raw string) error {
	t.Helper()
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg, Use string }
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	_, err := jwt.Parse(raw, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] {
				if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" {
					t.Errorf("JWK %+v", k)
				}
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"EdDSA"}))
	return err
}

func keyIDs(t *testing.T, s *Service) (current string, retired []string) {
	t.Helper()
	keys, err := s.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Current {
			current = k.ID
		} else {
			retired = append(retired, k.ID)
		}
	}
	return current, retired
}

// A routine rotation signs new tokens with a new key and keeps accepting
// the old key's tokens until they have expired, then forgets the old key;
// retire_previous ends every earlier token at once, cached or not, while
// refresh tokens still renew them.
func TestSigningKeyRotation(t *testing.T) {
	e := newGrantEnv(t)
	ctx := context.Background()
	first, retired := keyIDs(t, e.s)
	if first == "" || len(retired) != 0 {
		t.Fatalf("at start: current %q, retired %v", first, retired)
	}
	withdrawals := 0
	e.s.OnSigningKeysWithdrawn(func() { withdrawals++ })
	seen := e.token // verified below, so cached
	seenBy, err := e.s.VerifyAccessToken(seen)
	if err != nil {
		t.Fatal(err)
	}
	if seenBy.TokenKeyID != first {
		t.Fatalf("principal names key %q, want %q", seenBy.TokenKeyID, first)
	}
	unseen, err := e.s.IssueTokens(ctx, e.user, MethodPassword, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}

	key, err := e.s.RotateSigningKey(ctx, grantAdmin, Meta{}, false)
	if err != nil {
		t.Fatal(err)
	}
	current, retired := keyIDs(t, e.s)
	if current != key.ID || current == first || len(retired) != 1 || retired[0] != first {
		t.Fatalf("after rotation: current %q (new %q), retired %v", current, key.ID, retired)
	}
	for name, tok := range map[string]string{"cached": seen, "uncached": unseen.AccessToken} {
		if _, err := e.s.VerifyAccessToken(tok); err != nil {
			t.Errorf("%s token of the retired key refused within its window: %v", name, err)
		}
	}
	fresh, err := e.s.IssueTokens(ctx, e.user, MethodPassword, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if kid := tokenKeyID(t, fresh.AccessToken); kid != key.ID {
		t.Errorf("new token signed by %q, want %q", kid, key.ID)
	}
	if _, err := e.s.VerifyAccessToken(fresh.AccessToken); err != nil {
		t.Fatal(err)
	}
	jwks := e.s.JWKS()
	for _, tok := range []string{seen, fresh.AccessToken} {
		if err := jwksVerify(t, jwks, tok); err != nil {
			t.Errorf("JWKS does not verify a live token: %v", err)
		}
	}
	keys, _ := e.s.SigningKeys()
	if w := keys[1].VerifyUntil.Sub(keys[1].RetiredAt); w != time.Hour {
		t.Errorf("retired key verifies for %s, want the longest token life, 1h", w)
	}

	// Past the window: the old key is deleted, from the store and the JWKS.
	*e.now = e.now.Add(time.Hour + time.Second)
	next, err := e.s.MaintainSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	if !next.IsZero() {
		t.Errorf("nothing to do, yet next maintenance at %s", next)
	}
	if _, retired := keyIDs(t, e.s); len(retired) != 0 {
		t.Errorf("expired key still listed: %v", retired)
	}
	if err := jwksVerify(t, e.s.JWKS(), seen); err == nil {
		t.Error("JWKS still holds the expired key")
	}
	// A stream rests on its session, not on its token: a routine
	// rotation, even once the old key is gone, does not end it.
	if _, err := e.s.Reverify(seenBy); err != nil || withdrawals != 0 {
		t.Errorf("routine rotation ended a stream (%v) or reported a withdrawal (%d)", err, withdrawals)
	}

	// retire_previous: every token so far fails, cached or not.
	cached, err := e.s.IssueTokens(ctx, e.user, MethodPassword, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	cachedBy, err := e.s.VerifyAccessToken(cached.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	uncached, err := e.s.IssueTokens(ctx, e.user, MethodPassword, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RotateSigningKey(ctx, grantAdmin, Meta{}, true); err != nil {
		t.Fatal(err)
	}
	if _, retired := keyIDs(t, e.s); len(retired) != 0 {
		t.Errorf("retire_previous kept %v", retired)
	}
	for name, tok := range map[string]string{"cached": cached.AccessToken, "uncached": uncached.AccessToken} {
		if _, err := e.s.VerifyAccessToken(tok); err == nil {
			t.Errorf("%s token of a withdrawn key still accepted", name)
		}
	}
	// A stream opened with a withdrawn key's token ends, and those that
	// keep streams are told to check them.
	if _, err := e.s.Reverify(cachedBy); !errors.Is(err, ErrUnauthenticated) || withdrawals != 1 {
		t.Errorf("after retire_previous: Reverify = %v, withdrawals reported %d", err, withdrawals)
	}
	renewed, err := e.s.Refresh(ctx, cached.RefreshToken, "", Meta{})
	if err != nil {
		t.Fatalf("refresh after retire_previous: %v", err)
	}
	if _, err := e.s.VerifyAccessToken(renewed.AccessToken); err != nil {
		t.Errorf("renewed token refused: %v", err)
	}
}

func tokenKeyID(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &AccessClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// With a rotation period the key is replaced on schedule, and maintenance
// says when it next has work: the next rotation or the end of a retired
// key's window, whichever is first.
func TestSigningKeyScheduledRotation(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newTestService(t, &now, Settings{AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour, Leeway: 30 * time.Second, SigningKeyRotation: 24 * time.Hour})
	first, _ := keyIDs(t, s)
	next, err := s.MaintainSigningKeys()
	if err != nil || !next.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("next = %s, %v; want the rotation due in 24h", next, err)
	}
	if cur, _ := keyIDs(t, s); cur != first {
		t.Fatal("rotated before its time")
	}
	now = now.Add(24 * time.Hour)
	next, err = s.MaintainSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	cur, retired := keyIDs(t, s)
	if cur == first || len(retired) != 1 || retired[0] != first {
		t.Fatalf("after 24h: current %q, retired %v", cur, retired)
	}
	// The retired key's window: the longest token life (1h) plus leeway.
	if want := now.Add(time.Hour + 30*time.Second); !next.Equal(want) {
		t.Errorf("next = %s, want the window's end %s", next, want)
	}
	now = next
	if next, err = s.MaintainSigningKeys(); err != nil || !next.Equal(now.Add(24*time.Hour-time.Hour-30*time.Second)) {
		t.Errorf("after the window: next = %s, %v", next, err)
	}
	if c, retired := keyIDs(t, s); c != cur || len(retired) != 0 {
		t.Errorf("after the window: current %q, retired %v", c, retired)
	}
}

// A due scheduled rotation that comes just after a manual one does not
// rotate again.
func TestScheduledRotationAfterManualOne(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newTestService(t, &now, Settings{AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour, SigningKeyRotation: 24 * time.Hour})
	now = now.Add(24 * time.Hour)
	key, err := s.RotateSigningKey(context.Background(), grantAdmin, Meta{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MaintainSigningKeys(); err != nil {
		t.Fatal(err)
	}
	if cur, _ := keyIDs(t, s); cur != key.ID {
		t.Errorf("the manual rotation's key %q was replaced by %q at once", key.ID, cur)
	}
}

// Loading settles whatever the store holds: of several signing keys the
// newest signs and the others are retired with a full window; with none
// left to sign, a new one is made rather than refusing to start.
func TestSigningKeysSettleOnLoad(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	box := testBox(t)
	now := time.Now().UTC()
	set := Settings{Issuer: "berth", Audience: "berth", AccessTokenTTL: time.Hour, RefreshTokenTTL: time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour}
	put := func(created time.Time, retired bool) string {
		rec, err := newSigningKey(box, created)
		if err != nil {
			t.Fatal(err)
		}
		if retired {
			rec.RetiredAt, rec.VerifyUntil = now, now.Add(time.Minute)
		}
		if err := db.Update(func(tx *store.Tx) error { return signingKeyTable.Insert(tx, rec.ID, rec) }); err != nil {
			t.Fatal(err)
		}
		return rec.ID
	}
	older, newer := put(now.Add(-2*time.Hour), false), put(now.Add(-time.Hour), false)
	s, err := NewService(Options{DB: db, Box: box, Settings: set, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := s.SigningKeys()
	if len(keys) != 2 || keys[0].ID != newer || !keys[0].Current || keys[1].ID != older ||
		!keys[1].VerifyUntil.Equal(now.Add(time.Hour)) {
		t.Fatalf("two unretired keys settled as %+v", keys)
	}

	db2, _ := store.Open(store.Options{InMemory: true})
	defer db2.Close()
	db = db2
	retired := put(now.Add(-time.Hour), true)
	s, err = NewService(Options{DB: db, Box: box, Settings: set, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("only a retired key stored: %v", err)
	}
	cur, old := keyIDs(t, s)
	if cur == "" || cur == retired || len(old) != 1 || old[0] != retired {
		t.Errorf("only a retired key stored: current %q, retired %v", cur, old)
	}
}

// The keys live in the store: a restarted gateway signs with the same key
// and accepts what the retired one signed.
func TestSigningKeysSurviveRestart(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	box := testBox(t)
	now := time.Now()
	set := Settings{Issuer: "berth", Audience: "berth", AccessTokenTTL: time.Hour, RefreshTokenTTL: 2 * time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour}
	open := func() *Service {
		s, err := NewService(Options{DB: db, Box: box, Settings: set, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := open()
	old, _, err := a.tokens.issue("usr_a", "ses_a", MethodPassword, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RotateSigningKey(context.Background(), grantAdmin, Meta{}, false); err != nil {
		t.Fatal(err)
	}
	cur, _ := keyIDs(t, a)
	b := open()
	if c, retired := keyIDs(t, b); c != cur || len(retired) != 1 {
		t.Fatalf("after restart: current %q (want %q), retired %v", c, cur, retired)
	}
	if _, _, err := b.tokens.verify(old); err != nil {
		t.Errorf("restarted gateway refuses the retired key's token: %v", err)
	}
	tok, _, _ := b.tokens.issue("usr_a", "ses_a", MethodPassword, time.Hour)
	if tokenKeyID(t, tok) != cur {
		t.Error("restarted gateway signs with another key")
	}
}

// A data directory from before rotation keeps its one key, under its old
// id, so tokens issued before the upgrade stay valid.
func TestLegacySigningKeyAdopted(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	box := testBox(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	err = db.Update(func(tx *store.Tx) error {
		return secrets.Insert(tx, legacySigningKeyRecord, &secretRecord{ID: legacySigningKeyRecord, KeyID: "jwk_legacy",
			Sealed: box.Seal(priv.Seed(), "identity/"+legacySigningKeyRecord), CreatedAt: time.Now().UTC()})
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewService(Options{DB: db, Box: box, Settings: Settings{Issuer: "berth", Audience: "berth",
		AccessTokenTTL: time.Hour, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ks := s.tokens.keys.Load()
	if ks.signerID != "jwk_legacy" || !ks.verify["jwk_legacy"].Equal(pub) {
		t.Fatalf("signer %q, not the legacy key", ks.signerID)
	}
	err = db.View(func(tx *store.Tx) error {
		_, err := secrets.Get(tx, legacySigningKeyRecord)
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("legacy record left behind: %v", err)
	}
}

func testBox(t *testing.T) *secretbox.Box {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}
