package identity

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/lru"
)

// accessAlg is the one algorithm access tokens are signed and accepted
// with. Ed25519 is asymmetric, so the classic "HS256 signed with the public
// key" confusion cannot work: the verifier never treats key material as an
// HMAC secret, and the parser refuses every other alg (none included).
const accessAlg = "EdDSA"

// MaxTokenLength bounds a bearer token Berth will look at. Access tokens
// are about 400 bytes; anything far longer is garbage or an attack.
const MaxTokenLength = 4096

// AccessClaims are the claims of a Berth access token. Roles are not in
// the token: they are resolved from the store on every request, so a role
// change or a disabled account takes effect at once.
type AccessClaims struct {
	jwt.RegisteredClaims
	// SessionID ties the token to its session; revoking the session
	// (logout, password change, refresh-token reuse) kills the token.
	SessionID string `json:"sid"`
	// Method is how the session was established.
	Method string `json:"auth_method"`
}

// tokenIssuer signs and verifies access tokens.
type tokenIssuer struct {
	// keys is replaced whole when the keys rotate.
	keys      atomic.Pointer[keySet]
	issuer    string
	audience  string
	parser    *jwt.Parser
	validator *jwt.Validator
	now       func() time.Time

	// verified remembers the claims of tokens whose signature checked out,
	// keyed by the SHA-256 of the whole token, so a client sending the same
	// token on every request pays for Ed25519 once. Only byte-identical
	// tokens hit; their time, issuer and audience claims are checked again
	// on every hit, and the session behind them is read from the store on
	// every request regardless.
	mu       sync.Mutex
	verified *lru.Map[verifiedToken]
}

// verifiedToken is a verified-cache entry: the claims, and the key that
// signed them, which must still be in force on a hit.
type verifiedToken struct {
	claims *AccessClaims
	keyID  string
}

// verifiedCacheSize bounds the verified-token cache (a few MiB).
const verifiedCacheSize = 10000

func newTokenIssuer(ks *keySet, issuer, audience string, leeway time.Duration, now func() time.Time) *tokenIssuer {
	claimRules := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	t := &tokenIssuer{
		issuer:    issuer,
		audience:  audience,
		now:       now,
		parser:    jwt.NewParser(append([]jwt.ParserOption{jwt.WithValidMethods([]string{accessAlg}), jwt.WithStrictDecoding()}, claimRules...)...),
		validator: jwt.NewValidator(claimRules...),
		verified:  lru.New[verifiedToken](verifiedCacheSize),
	}
	t.keys.Store(ks)
	return t
}

// setKeys puts a new key set in force. Cached verifications by keys no
// longer in it are refused on their next hit.
func (t *tokenIssuer) setKeys(ks *keySet) { t.keys.Store(ks) }

// issue signs an access token for a session.
func (t *tokenIssuer) issue(userID, sessionID, method string, ttl time.Duration) (token, jti string, err error) {
	now := t.now()
	jti = store.NewID("jti")
	claims := AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		SessionID: sessionID,
		Method:    method,
	}
	ks := t.keys.Load()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = ks.signerID
	signed, err := tok.SignedString(ks.signer)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, jti, nil
}

// errBadToken is what every verification failure becomes: a client learns
// nothing about which check failed.
var errBadToken = errors.New("invalid access token")

// verify checks signature, algorithm, key id (one of the keys in force),
// expiry, issuer and audience, and that the claims Berth relies on are
// present.
func (t *tokenIssuer) verify(raw string) (claims *AccessClaims, keyID string, err error) {
	if len(raw) == 0 || len(raw) > MaxTokenLength {
		return nil, "", errBadToken
	}
	sum := sha256.Sum256([]byte(raw))
	cacheKey := string(sum[:])
	ks := t.keys.Load()
	t.mu.Lock()
	cached, hit := t.verified.Get(cacheKey)
	t.mu.Unlock()
	if hit {
		if _, ok := ks.verify[cached.keyID]; !ok {
			return nil, "", fmt.Errorf("%w: signing key %s retired", errBadToken, cached.keyID)
		}
		if err := t.validator.Validate(cached.claims); err != nil {
			return nil, "", fmt.Errorf("%w: %w", errBadToken, err)
		}
		return cached.claims, cached.keyID, nil
	}
	claims = new(AccessClaims)
	_, err = t.parser.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		if _, ok := tok.Method.(*jwt.SigningMethodEd25519); !ok {
			return nil, errBadToken
		}
		keyID, _ = tok.Header["kid"].(string)
		pub, ok := ks.verify[keyID]
		if !ok {
			return nil, errBadToken
		}
		return pub, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errBadToken, err)
	}
	if claims.Subject == "" || claims.SessionID == "" || claims.ID == "" {
		return nil, "", errBadToken
	}
	t.mu.Lock()
	t.verified.Put(cacheKey, verifiedToken{claims: claims, keyID: keyID})
	t.mu.Unlock()
	return claims, keyID, nil
}
