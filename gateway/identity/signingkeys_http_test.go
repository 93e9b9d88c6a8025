package identity_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berthgw/berth/gateway/audit"
)

type signingKeyOut struct {
	ID      string `json:"id"`
	Current bool   `json:"current"`
}

// verifyWithJWKS checks tok with the key set served at
// /.well-known/jwks.json, as a service outside Berth would.
func verifyWithJWKS(t *testing.T, ag *authGW, tok string) error {
	t.Helper()
	status, body, hdr := ag.call(t, "GET", "/.well-known/jwks.json", nil)
	if status != 200 || hdr.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("JWKS: %d %s %s", status, hdr.Get("Content-Type"), body)
	}
	var set struct {
		Keys []struct{ Kid, X string }
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	_, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tk.Header["kid"] {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"EdDSA"}))
	return err
}

// An administrator rotates the token signing key: routinely, with earlier
// tokens still accepted, or after a leak, with every earlier access token
// ended while refresh tokens still renew them. The public keys are served
// as a JWKS; listing and rotating need settings:admin, and a bad request
// changes nothing.
func TestSigningKeyRotationAPI(t *testing.T) {
	ag := startAuth(t, nil)
	adminPair := ag.Login(t, "admin", adminPassword)
	admin := adminPair.AccessToken
	ag.CreateUser(t, admin, "uma", "uma-password-123")
	user := ag.Login(t, "uma", "uma-password-123").AccessToken

	if err := verifyWithJWKS(t, ag, admin); err != nil {
		t.Fatalf("JWKS does not verify a fresh token: %v", err)
	}
	keys := func() []signingKeyOut { return listSigningKeys(t, ag, admin) }
	first := keys()
	if len(first) != 1 || !first[0].Current {
		t.Fatalf("keys at start: %+v", first)
	}

	ag.must(t, 403, "GET", "/api/v1/signing-keys", nil, bearer(user))
	ag.must(t, 403, "POST", "/api/v1/signing-keys/rotate", nil, bearer(user))
	ag.must(t, 401, "POST", "/api/v1/signing-keys/rotate", nil)
	for name, body := range map[string]any{
		"unknown field": raw(`{"retire_previous":true,"now":1}`),
		"wrong type":    raw(`{"retire_previous":"yes"}`),
		"garbled":       raw(`{"retire_previous":`),
	} {
		if status, b, _ := ag.call(t, "POST", "/api/v1/signing-keys/rotate", body, bearer(admin)); status != 400 {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	if got := keys(); len(got) != 1 || got[0].ID != first[0].ID {
		t.Fatalf("a refused rotation changed the keys: %+v", got)
	}

	// Routine rotation: the old key verifies on, new tokens use the new one.
	rotated := decode[signingKeyOut](t, ag.must(t, 201, "POST", "/api/v1/signing-keys/rotate", nil, bearer(admin)))
	if !rotated.Current || rotated.ID == first[0].ID {
		t.Fatalf("rotated: %+v", rotated)
	}
	if got := keys(); len(got) != 2 || got[0].ID != rotated.ID || got[1].ID != first[0].ID || got[1].Current {
		t.Fatalf("after rotation: %+v", got)
	}
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(user))
	fresh := ag.Login(t, "uma", "uma-password-123").AccessToken
	for _, tok := range []string{admin, fresh} {
		if err := verifyWithJWKS(t, ag, tok); err != nil {
			t.Errorf("JWKS after rotation: %v", err)
		}
	}

	// After a leak: every access token so far ends; refresh renews.
	ag.must(t, 201, "POST", "/api/v1/signing-keys/rotate", map[string]any{"retire_previous": true}, bearer(admin))
	for _, tok := range []string{admin, user, fresh} {
		ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tok))
	}
	renewed := decode[tokenPair](t, ag.must(t, 200, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": adminPair.RefreshToken}))
	ag.secret(renewed.AccessToken, renewed.RefreshToken)
	if got := listSigningKeys(t, ag, renewed.AccessToken); len(got) != 1 || !got[0].Current {
		t.Errorf("after retire_previous: %+v", got)
	}
	if err := verifyWithJWKS(t, ag, admin); err == nil {
		t.Error("JWKS still verifies a token of a retired key")
	}

	rotations := 0
	for _, e := range ag.Events(t, audit.Query{ResourceType: "signing_key", Action: "rotate"}) {
		if e.Result == "success" && e.ActorName == "admin" {
			rotations++
		}
	}
	if rotations != 2 {
		t.Errorf("%d rotations audited, want 2", rotations)
	}
}

func listSigningKeys(t *testing.T, ag *authGW, tok string) []signingKeyOut {
	t.Helper()
	return decode[struct {
		Items []signingKeyOut `json:"items"`
	}](t, ag.must(t, 200, "GET", "/api/v1/signing-keys", nil, bearer(tok))).Items
}
