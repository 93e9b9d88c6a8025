package identity

import (
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// Session is one signed-in presence: a refresh-token family from a password
// or OAuth sign-in, a browser cookie session, or one access-key exchange.
// Access tokens name their session, so revoking it ends them at once.
type Session struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	// Method is password, oauth, session (cookie) or access_key.
	Method string `json:"method"`
	// ClientID is the OAuth client a session was issued to; only that
	// client may refresh it.
	ClientID string `json:"client_id,omitempty"`
	// CredentialID is the access key an access_key session came from.
	CredentialID string `json:"credential_id,omitempty"`
	// CookieDigest is the digest of a browser session's cookie value.
	CookieDigest string    `json:"cookie_digest,omitempty"`
	ClientIP     string    `json:"client_ip,omitempty"`
	UserAgent    string    `json:"user_agent,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	LastUsedAt   time.Time `json:"last_used_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
}

// Active reports whether the session may still be used at now.
func (s *Session) Active(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// sessionsTable is the sessions table. A session stays stored until it expires,
// revoked or not, so its tokens are refused with a clear reason.
var sessionsTable = store.NewTable("sessions",
	store.Index[Session]{Name: "user", Values: func(s *Session) []string { return []string{s.UserID} }},
	store.Index[Session]{Name: "credential", Values: func(s *Session) []string { return []string{s.CredentialID} }},
	store.Index[Session]{Name: "cookie", Unique: true, Values: func(s *Session) []string { return []string{s.CookieDigest} }},
).WithExpiry(func(s *Session) time.Time { return s.ExpiresAt })

// RefreshToken is one link of a refresh-token family. Only its digest is
// stored. A used token stays stored until the family expires, so presenting
// it again is recognised as theft and revokes the family.
type RefreshToken struct {
	ID        string    `json:"id"`
	SessionID string    `json:"session_id"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
}

// refreshTokensTable is the refresh-token table.
var refreshTokensTable = store.NewTable("refresh_tokens",
	store.Index[RefreshToken]{Name: "digest", Unique: true, Values: func(r *RefreshToken) []string { return []string{r.Digest} }},
	store.Index[RefreshToken]{Name: "session", Values: func(r *RefreshToken) []string { return []string{r.SessionID} }},
).WithExpiry(func(r *RefreshToken) time.Time { return r.ExpiresAt })

// APIKey is a long-lived bearer credential (brt_…). Only the digest of the
// key is stored, with a short display prefix so people can tell keys apart.
type APIKey struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Name       string    `json:"name"`
	Prefix     string    `json:"prefix"`
	Digest     string    `json:"digest"`
	Scopes     []string  `json:"scopes,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// ExpiredKeyMemory is how long an API key is kept after it expires, so
// that its use is answered "your credential has expired" rather than
// "invalid credentials", and its owner still sees it listed. Authentication
// and the key cap check ExpiresAt themselves; only the record lingers.
const ExpiredKeyMemory = 7 * 24 * time.Hour

// apiKeysTable is the API-key table. Revoking a key deletes it; an expired
// key is forgotten ExpiredKeyMemory after it expires.
var apiKeysTable = store.NewTable("api_keys",
	store.Index[APIKey]{Name: "digest", Unique: true, Values: func(k *APIKey) []string { return []string{k.Digest} }},
	store.Index[APIKey]{Name: "user", Values: func(k *APIKey) []string { return []string{k.UserID} }},
).WithExpiry(func(k *APIKey) time.Time {
	if k.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return k.ExpiresAt.Add(ExpiredKeyMemory)
})

// AccessKey is a KubeCube-style key pair: the access key is an identifier,
// the secret key is stored only as a digest.
type AccessKey struct {
	ID           string    `json:"id"`
	UserID       string    `json:"user_id"`
	AccessKey    string    `json:"access_key"`
	SecretDigest string    `json:"secret_digest"`
	CreatedAt    time.Time `json:"created_at"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
}

// accessKeysTable is the access-key table.
var accessKeysTable = store.NewTable("access_keys",
	store.Index[AccessKey]{Name: "access_key", Unique: true, Values: func(k *AccessKey) []string { return []string{k.AccessKey} }},
	store.Index[AccessKey]{Name: "user", Values: func(k *AccessKey) []string { return []string{k.UserID} }},
)

// LoginRecord is one sign-in attempt on an existing account.
type LoginRecord struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Time      time.Time `json:"time"`
	ClientIP  string    `json:"client_ip"`
	UserAgent string    `json:"user_agent"`
	Method    string    `json:"method"`
	Result    string    `json:"result"`
	Reason    string    `json:"reason,omitempty"`
	// ExpiresAt is when the record ages out (the audit retention period
	// after Time); zero keeps it. It only sets the store TTL at insert, and
	// records are never rewritten, so it need not be stored.
	ExpiresAt time.Time `json:"-"`
}

// loginHistoryTable is the login-history table.
var loginHistoryTable = store.NewTable("login_history",
	store.Index[LoginRecord]{Name: "user", Values: func(r *LoginRecord) []string { return []string{r.UserID} }},
).WithExpiry(func(r *LoginRecord) time.Time { return r.ExpiresAt })
