package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berthgw/berth/gateway/store"
)

// signingKey reads the gateway's Ed25519 key from the store the way an
// attacker who stole it would — the tests need it to forge tokens that
// are well signed but wrong in one other way.
func signingKey(t *testing.T, ag *authGW) (ed25519.PrivateKey, string) {
	t.Helper()
	type rec struct {
		ID        string    `json:"id"`
		Sealed    []byte    `json:"sealed"`
		RetiredAt time.Time `json:"retired_at"`
	}
	var signer *rec
	err := ag.db.View(func(tx *store.Tx) error {
		return store.NewTable[rec]("signing_keys").Scan(tx, store.ScanOptions{}, func(_ string, r *rec) (bool, error) {
			if r.RetiredAt.IsZero() {
				signer = r
			}
			return true, nil
		})
	})
	if err != nil || signer == nil {
		t.Fatalf("no signing key in the store: %v", err)
	}
	seed, err := ag.box.Open(signer.Sealed, "identity/signing_keys/"+signer.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed), signer.ID
}

func b64(v any) string {
	data, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(data)
}

func TestForgedAndBrokenAccessTokensAreRefused(t *testing.T) {
	ag := startAuth(t, nil)
	tp := ag.login(t, "admin", adminPassword)
	good := tp.AccessToken
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(good))
	key, kid := signingKey(t, ag)
	pub := key.Public().(ed25519.PublicKey)

	// The claims of the real token, to vary one thing at a time.
	parts := strings.Split(good, ".")
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range claims {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	sign := func(c jwt.MapClaims, k any, kidHeader string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kidHeader
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs256 := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256 := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	es256.Header["kid"] = kid
	es256Token, _ := es256.SignedString(ecKey)
	now := ag.clock.Now()

	tamperedClaims := with("sub", "usr_someone_else")
	tampered := parts[0] + "." + b64(tamperedClaims) + "." + parts[2]

	tests := map[string]string{
		"alg none":                            b64(map[string]string{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".",
		"alg none, signature kept":            b64(map[string]string{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + "." + parts[2],
		"HS256 keyed with the raw public key": hs256(pub),
		"HS256 keyed with the PEM public key": hs256(pubPEM),
		"ES256 with another key":              es256Token,
		"tampered payload":                    tampered,
		"signature of another token":          parts[0] + "." + parts[1] + "." + strings.Split(sign(with("jti", "other"), key, kid), ".")[2],
		"no exp":                              sign(with("exp", nil), key, kid),
		"expired":                             sign(with("exp", now.Add(-time.Hour).Unix()), key, kid),
		"not yet valid":                       sign(with("nbf", now.Add(time.Hour).Unix()), key, kid),
		"issued in the future":                sign(with("iat", now.Add(time.Hour).Unix()), key, kid),
		"wrong issuer":                        sign(with("iss", "kubesphere"), key, kid),
		"wrong audience":                      sign(with("aud", []string{"someone-else"}), key, kid),
		"no audience":                         sign(with("aud", nil), key, kid),
		"unknown key id":                      sign(claims, key, "jwk_other"),
		"no key id":                           sign(claims, key, ""),
		"signed by another Ed25519 key":       sign(claims, otherKey, kid),
		"session that does not exist":         sign(with("sid", "ses_forged"), key, kid),
		"subject not the session's user":      sign(with("sub", "usr_other"), key, kid),
		"no session claim":                    sign(with("sid", nil), key, kid),
		"no jti":                              sign(with("jti", nil), key, kid),
		"two segments":                        parts[0] + "." + parts[1],
		"four segments":                       good + ".x",
		"padding in segments":                 parts[0] + "==." + parts[1] + "." + parts[2],
		"dots only":                           strings.Repeat(".", 2000),
		"10 KB of dots":                       strings.Repeat(".", 10000),
		"garbage":                             "not-a-token",
		"api key shape, wrong length":         "brt_abc",
	}
	before := ag.state(t)
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			status, body, hdr := ag.call(t, "GET", "/api/v1/auth/me", nil, bearer(tok))
			if status != 401 {
				t.Fatalf("status %d: %s", status, body)
			}
			if e := decodeError(t, body); e.Error != "unauthorized" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 shape: %s / %q", body, hdr.Get("WWW-Authenticate"))
			}
		})
	}
	// Malformed Authorization headers.
	for name, h := range map[string]string{
		"empty bearer":    "Bearer ",
		"basic":           "Basic YWRtaW46cGFzcw==",
		"two tokens":      "Bearer " + good + " " + good,
		"no space":        "Bearer" + good,
		"non-ASCII":       "Bearer abc\u00e9def",
		"quoted":          `Bearer "` + good + `"`,
		"scheme only":     "Bearer",
		"lower-case fine": "bearer " + good, // accepted: schemes are case-insensitive
	} {
		t.Run(name, func(t *testing.T) {
			status, body, _ := ag.call(t, "GET", "/api/v1/auth/me", nil, header("Authorization", h))
			want := 401
			if name == "lower-case fine" {
				want = 200
			}
			if status != want {
				t.Errorf("status %d, want %d: %s", status, want, body)
			}
		})
	}
	// A megabyte of dots never reaches the parser: the header limit
	// answers 431 and closes the connection. The client may still be
	// writing when the server closes, so a reset is the same refusal seen
	// from the other side.
	req, _ := http.NewRequest("GET", ag.http+"/api/v1/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat(".", 1<<20))
	if resp, err := ag.client.Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 431 {
			t.Errorf("megabyte bearer: %d %s", resp.StatusCode, body)
		}
	} else if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken") {
		t.Errorf("megabyte bearer: %v", err)
	}
	if ag.state(t) != before {
		t.Error("refused tokens changed state")
	}
	// The real token still works after all that.
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(good))
}
