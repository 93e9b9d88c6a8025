package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/store"
)

// MaxPasswordLength bounds passwords so hashing cost stays bounded.
const MaxPasswordLength = 256

// MaxUsernameLength bounds usernames.
const MaxUsernameLength = 64

// SignIn checks a username and password. Unknown users, wrong passwords and
// disabled accounts all fail with ErrInvalidCredentials after the same
// amount of work (one argon2id verification), so neither the answer nor its
// timing tells which it was. After repeated failures the name is locked
// (fault.TooMany, with Retry-After) whether or not it exists, for the same reason. method is
// recorded in login history and audit (password, oauth or session).
func (s *Service) SignIn(ctx context.Context, username, password, method string, m Meta) (*User, error) {
	if len(username) == 0 || len(username) > MaxUsernameLength || len(password) == 0 || len(password) > MaxPasswordLength {
		// Still burn the time: a fast refusal for long input would be an
		// oracle for nothing, but costs nothing to avoid.
		BurnPasswordCheck(password[:min(len(password), MaxPasswordLength)])
		s.record(ctx, nil, m, audit.Event{Action: "login", ResourceType: "session", Result: audit.ResultFailure,
			Reason: "malformed", AuthMethod: method})
		return nil, ErrInvalidCredentials
	}
	lockKey := s.lockKey(username)
	wait, lock, err := s.beginAttempt(lockKey)
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		s.record(ctx, nil, m, audit.Event{Action: "login", ResourceType: "session", Result: audit.ResultFailure,
			Reason: "locked", AuthMethod: method, Details: map[string]string{"username": username}})
		return nil, locked(wait)
	}
	var u *User
	err = s.db.View(func(tx *store.Tx) error {
		var err error
		u, _, err = usersTable.GetBy(tx, "username", strings.ToLower(username))
		return err
	})
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	reason := ""
	switch {
	case u == nil:
		BurnPasswordCheck(password)
		reason = "unknown_user"
	case u.PasswordHash == "":
		// A user made by single sign-on has no password; the same work
		// as a wrong one keeps that from showing in the time taken.
		BurnPasswordCheck(password)
		reason = "no_password"
	case VerifyPassword(u.PasswordHash, password) != nil:
		reason = "bad_password"
	case u.Status != StatusActive:
		reason = "disabled"
	}
	if reason != "" {
		// Counted already, by beginAttempt.
		e := audit.Event{Action: "login", ResourceType: "session", Result: audit.ResultFailure, Reason: reason,
			AuthMethod: method, Details: map[string]string{}}
		userID := ""
		if u != nil {
			userID, e.ActorID, e.ActorName = u.ID, u.ID, u.Username
		} else {
			e.Details["username"] = username
		}
		var lockedOut *User
		if lock > 0 {
			e.Details["locked_for"] = lock.String()
			lockedOut = u
		}
		s.recordLogin(ctx, userID, lockKey, method, audit.ResultFailure, reason, m, &e, lockedOut)
		return nil, ErrInvalidCredentials
	}
	s.recordLogin(ctx, u.ID, lockKey, method, audit.ResultSuccess, "", m, nil, nil)
	return u, nil
}

// recordLogin writes the login-history record of an existing account, the
// lockout state of lockKey (cleared on a success; a failure was counted
// before the check) and, for a failure, the audit event, in one
// transaction. A failure for an
// unknown name writes the same but the history record, still in one
// transaction: both paths cost one synced write, so the time a refusal
// takes does not tell whether the name exists. (A success is audited when
// its session starts.) lockedOut is the account this failure locked, if
// it did: the user.locked_out event commits with the failure's record.
func (s *Service) recordLogin(ctx context.Context, userID, lockKey, method, result, reason string, m Meta, e *audit.Event, lockedOut *User) {
	now := s.now().UTC()
	if e != nil {
		s.prepare(nil, m, e)
	}
	err := s.db.Update(func(tx *store.Tx) error {
		if userID != "" {
			rec := &LoginRecord{ID: store.NewID("lgn"), UserID: userID, Time: now, ClientIP: m.ClientIP,
				UserAgent: clip(m.UserAgent, 256), Method: method, Result: result, Reason: reason}
			if s.set.LoginHistoryRetention > 0 {
				rec.ExpiresAt = now.Add(s.set.LoginHistoryRetention)
			}
			if err := loginHistoryTable.Insert(tx, rec.ID, rec); err != nil {
				return err
			}
		}
		if result == audit.ResultSuccess {
			if err := clearFailures(tx, lockKey); err != nil {
				return err
			}
		}
		if lockedOut != nil {
			if err := s.emitLockedOut(tx, lockKey, lockedOut); err != nil {
				return err
			}
		}
		if e != nil && s.audit != nil {
			return s.audit.AppendTx(ctx, tx, e)
		}
		return nil
	})
	if err != nil {
		s.log.Error("sign-in not recorded", "user_id", userID, "result", result, "err", err)
	}
}

// Tokens is what a successful sign-in or refresh returns. The refresh token
// is shown here once and stored only as a digest.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	SessionID    string
}

// IssueTokens starts a refresh-token family for u and returns its first
// access and refresh tokens. clientID is the OAuth client, or "".
func (s *Service) IssueTokens(ctx context.Context, u *User, method, clientID string, m Meta) (*Tokens, error) {
	now := s.now().UTC()
	refresh, err := newOpaqueToken(RefreshTokenPrefix)
	if err != nil {
		return nil, err
	}
	sess := &Session{
		ID: store.NewID("ses"), UserID: u.ID, Method: method, ClientID: clientID,
		ClientIP: m.ClientIP, UserAgent: clip(m.UserAgent, 256),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.set.RefreshTokenTTL),
	}
	rt := &RefreshToken{ID: store.NewID("rft"), SessionID: sess.ID, Digest: s.keys.digest("refresh", refresh),
		CreatedAt: now, ExpiresAt: sess.ExpiresAt}
	access, jti, err := s.tokens.issue(u.ID, sess.ID, method, s.set.AccessTokenTTL)
	if err != nil {
		return nil, err
	}
	err = s.db.Update(func(tx *store.Tx) error {
		if err := sessionsTable.Insert(tx, sess.ID, sess); err != nil {
			return err
		}
		return refreshTokensTable.Insert(tx, rt.ID, rt)
	})
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	s.record(ctx, nil, m, audit.Event{Action: "login", ResourceType: "session", ResourceID: sess.ID,
		ActorID: u.ID, ActorName: u.Username, AuthMethod: method, CredentialID: jti,
		Details: map[string]string{"client_id": clientID}})
	return &Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.set.AccessTokenTTL, SessionID: sess.ID}, nil
}

// StartBrowserSession starts a cookie session for u and returns the cookie
// value (shown once, stored as a digest) and when it expires.
func (s *Service) StartBrowserSession(ctx context.Context, u *User, m Meta) (string, time.Time, error) {
	now := s.now().UTC()
	value, err := newOpaqueToken(SessionPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	sess := &Session{
		ID: store.NewID("ses"), UserID: u.ID, Method: MethodSession, CookieDigest: s.keys.digest("session", value),
		ClientIP: m.ClientIP, UserAgent: clip(m.UserAgent, 256),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.set.SessionTTL),
	}
	if err := s.db.Update(func(tx *store.Tx) error { return sessionsTable.Insert(tx, sess.ID, sess) }); err != nil {
		return "", time.Time{}, fmt.Errorf("start browser session: %w", err)
	}
	s.record(ctx, nil, m, audit.Event{Action: "login", ResourceType: "session", ResourceID: sess.ID,
		ActorID: u.ID, ActorName: u.Username, AuthMethod: MethodSession, CredentialID: sess.ID})
	return value, sess.ExpiresAt, nil
}

// Refresh rotates a refresh token: the presented one is marked used and a
// new pair is returned. Presenting a token that was already used means it
// was copied — by a thief or from a thief — so the whole family (the
// session and every token of it) is revoked. clientID must be the OAuth
// client the family was issued to ("" for the native API).
func (s *Service) Refresh(ctx context.Context, raw, clientID string, m Meta) (*Tokens, error) {
	if !wellFormedOpaque(raw, RefreshTokenPrefix) {
		s.record(ctx, nil, m, audit.Event{Action: "refresh", ResourceType: "refresh_token", Result: audit.ResultFailure, Reason: "malformed"})
		return nil, ErrInvalidGrant
	}
	digest := s.keys.digest("refresh", raw)
	now := s.now().UTC()
	next, err := newOpaqueToken(RefreshTokenPrefix)
	if err != nil {
		return nil, err
	}
	var (
		sess   *Session
		user   *User
		reused bool
		reason string
	)
	err = s.db.Update(func(tx *store.Tx) error {
		reused, reason, sess, user = false, "", nil, nil
		rt, _, err := refreshTokensTable.GetBy(tx, "digest", digest)
		if err != nil {
			if isNotFound(err) {
				reason = "unknown"
				return nil
			}
			return err
		}
		sess, err = sessionsTable.Get(tx, rt.SessionID)
		if err != nil {
			if isNotFound(err) {
				reason, sess = "session_gone", nil
				return nil
			}
			return err
		}
		switch {
		case sess.ClientID != clientID:
			reason = "wrong_client"
			return nil
		case !rt.UsedAt.IsZero():
			reused, reason = true, "reused"
			if sess.RevokedAt.IsZero() {
				sess.RevokedAt, sess.RevokeReason = now, "refresh_token_reuse"
				return sessionsTable.Put(tx, sess.ID, sess)
			}
			return nil
		case !sess.Active(now) || !now.Before(rt.ExpiresAt):
			reason = "expired_or_revoked"
			return nil
		}
		user, err = usersTable.Get(tx, sess.UserID)
		if err != nil || user.Status != StatusActive {
			reason, user = "user_inactive", nil
			return nil
		}
		sess.LastUsedAt, sess.ExpiresAt = now, now.Add(s.set.RefreshTokenTTL)
		if err := sessionsTable.Put(tx, sess.ID, sess); err != nil {
			return err
		}
		// The used link lives as long as the family, so its reuse is still
		// recognised.
		rt.UsedAt, rt.ExpiresAt = now, sess.ExpiresAt
		if err := refreshTokensTable.Put(tx, rt.ID, rt); err != nil {
			return err
		}
		nextID := store.NewID("rft")
		return refreshTokensTable.Insert(tx, nextID, &RefreshToken{ID: nextID, SessionID: sess.ID,
			Digest: s.keys.digest("refresh", next), CreatedAt: now, ExpiresAt: sess.ExpiresAt})
	})
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	e := audit.Event{Action: "refresh", ResourceType: "session", Details: map[string]string{"client_id": clientID}}
	if sess != nil {
		e.ResourceID, e.ActorID, e.AuthMethod = sess.ID, sess.UserID, sess.Method
	}
	if reason != "" {
		e.Result, e.Reason = audit.ResultFailure, reason
		if reused {
			e.Action = "revoke"
		}
		s.record(ctx, nil, m, e)
		return nil, ErrInvalidGrant
	}
	access, jti, err := s.tokens.issue(user.ID, sess.ID, sess.Method, s.set.AccessTokenTTL)
	if err != nil {
		return nil, err
	}
	e.ActorName, e.CredentialID = user.Username, jti
	s.record(ctx, nil, m, e)
	return &Tokens{AccessToken: access, RefreshToken: next, ExpiresIn: s.set.AccessTokenTTL, SessionID: sess.ID}, nil
}

// VerifyAccessToken checks an access token and returns its principal. The
// token's session must be live and its user active, so logout, revocation
// and disabling an account end the token before it expires.
func (s *Service) VerifyAccessToken(raw string) (*Principal, error) {
	p, _, err := s.verifyAccessToken(raw)
	return p, err
}

// verifyAccessToken is VerifyAccessToken, also returning the token's
// claims.
func (s *Service) verifyAccessToken(raw string) (*Principal, *AccessClaims, error) {
	claims, keyID, err := s.tokens.verify(raw)
	if tokenExpired(err) {
		return nil, nil, ErrExpired
	}
	if err != nil {
		return nil, nil, ErrUnauthenticated
	}
	key := grantSession + claims.SessionID
	if g, ok := s.cachedGrant(key, s.now()); ok && g.p.UserID == claims.Subject {
		p := g.principal(claims.ID)
		p.TokenKeyID = keyID
		return p, claims, nil
	}
	epoch := s.grants.begin()
	var g *grant
	err = s.db.View(func(tx *store.Tx) error {
		sess, err := sessionsTable.Get(tx, claims.SessionID)
		if err != nil {
			if isNotFound(err) {
				return ErrUnauthenticated
			}
			return err
		}
		if sess.UserID != claims.Subject || sess.CookieDigest != "" {
			return ErrUnauthenticated
		}
		if !sess.RevokedAt.IsZero() {
			return ErrRevoked
		}
		if !sess.Active(s.now()) {
			return ErrExpired
		}
		p, err := principalFor(tx, sess.UserID, sess.Method, "", sess.ID, nil)
		if err != nil {
			return err
		}
		g = &grant{p: *p, expiresAt: sess.ExpiresAt}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	s.grants.put(key, epoch, g)
	p := g.principal(claims.ID)
	p.TokenKeyID = keyID
	return p, claims, nil
}

// VerifySessionCookie checks a browser session cookie.
func (s *Service) VerifySessionCookie(raw string) (*Principal, error) {
	if !wellFormedOpaque(raw, SessionPrefix) {
		return nil, ErrUnauthenticated
	}
	digest := s.keys.digest("session", raw)
	key := grantCookie + digest
	if g, ok := s.cachedGrant(key, s.now()); ok {
		return g.principal(g.p.CredentialID), nil
	}
	epoch := s.grants.begin()
	var g *grant
	err := s.db.View(func(tx *store.Tx) error {
		sess, _, err := sessionsTable.GetBy(tx, "cookie", digest)
		if err != nil {
			if isNotFound(err) {
				return ErrUnauthenticated
			}
			return err
		}
		if !sess.Active(s.now()) {
			return ErrUnauthenticated
		}
		p, err := principalFor(tx, sess.UserID, MethodSession, sess.ID, sess.ID, nil)
		if err != nil {
			return err
		}
		g = &grant{p: *p, expiresAt: sess.ExpiresAt}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.grants.put(key, epoch, g)
	return g.principal(g.p.CredentialID), nil
}

// Reverify reads again, from the store, what p's session or API key
// stands on and returns the principal it grants now. It fails with
// ErrUnauthenticated when the credential no longer works: the session
// revoked or expired, the key deleted or expired, the user disabled or
// gone. A stream that outlives its request (a watch, an exec session) uses
// it to learn that access was withdrawn after it opened. Client-certificate
// principals are checked with VerifyClientCertificate instead, since their
// groups come from the certificate.
func (s *Service) Reverify(p *Principal) (*Principal, error) {
	if p.TokenKeyID != "" && s.tokens.keys.Load().withdrawn[p.TokenKeyID] {
		return nil, ErrUnauthenticated
	}
	now := s.now()
	var out *Principal
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		switch {
		case p.SessionID != "":
			var sess *Session
			if sess, err = sessionsTable.Get(tx, p.SessionID); err != nil {
				break
			}
			if !sess.Active(now) || sess.UserID != p.UserID {
				return ErrUnauthenticated
			}
			if out, err = principalFor(tx, sess.UserID, p.AuthMethod, p.CredentialID, sess.ID, nil); err == nil {
				out.ExpiresAt, out.TokenKeyID = sess.ExpiresAt, p.TokenKeyID
			}
		case p.AuthMethod == MethodAPIKey:
			var k *APIKey
			if k, err = apiKeysTable.Get(tx, p.CredentialID); err != nil {
				break
			}
			if k.UserID != p.UserID || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
				return ErrUnauthenticated
			}
			if out, err = principalFor(tx, k.UserID, MethodAPIKey, k.ID, "", k.Scopes); err == nil {
				out.ExpiresAt = k.ExpiresAt
			}
		default:
			return ErrUnauthenticated
		}
		if isNotFound(err) {
			return ErrUnauthenticated
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Logout revokes the session behind the principal's credential at once.
// API keys have no session; they are revoked by deleting them.
func (s *Service) Logout(ctx context.Context, p *Principal, m Meta) error {
	if p.SessionID == "" {
		return invalid("API keys have no session to end; revoke the key with DELETE /api/v1/auth/api-keys/{id}")
	}
	if err := s.revokeSessions(func(sess *Session) bool { return sess.ID == p.SessionID }, p.UserID, "logout"); err != nil {
		return err
	}
	s.record(ctx, p, m, audit.Event{Action: "logout", ResourceType: "session", ResourceID: p.SessionID})
	return nil
}

// revokeSessions revokes the user's live sessions that match and returns
// how many. Revoked sessions stay stored until they expire.
func (s *Service) revokeSessions(match func(*Session) bool, userID, reason string) error {
	now := s.now().UTC()
	return s.db.Update(func(tx *store.Tx) error {
		ids, err := sessionsTable.IDsBy(tx, "user", userID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			sess, err := sessionsTable.Get(tx, id)
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return err
			}
			if !sess.RevokedAt.IsZero() || !match(sess) {
				continue
			}
			sess.RevokedAt, sess.RevokeReason = now, reason
			if err := sessionsTable.Put(tx, id, sess); err != nil {
				return err
			}
		}
		return nil
	})
}

// ChangePassword sets a new password for the principal's own account after
// checking the current one, and ends every other session of the user. A
// wrong current password counts towards the account's lockout, so a stolen
// session cannot be used to guess it.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string, m Meta) error {
	if err := s.checkNewPassword(next); err != nil {
		return err
	}
	if len(current) > MaxPasswordLength {
		return invalid("current_password is too long")
	}
	lockKey := s.lockKey(p.Username)
	wait, lock, err := s.beginAttempt(lockKey)
	if err != nil {
		return err
	} else if wait > 0 {
		return locked(wait)
	}
	var u *User
	if err := s.db.View(func(tx *store.Tx) error {
		var err error
		u, err = usersTable.Get(tx, p.UserID)
		return err
	}); err != nil {
		return ErrUnauthenticated
	}
	if VerifyPassword(u.PasswordHash, current) != nil {
		if lock > 0 {
			s.reportLockedOut(lockKey, u)
		}
		s.record(ctx, p, m, audit.Event{Action: "password_change", ResourceType: "user", ResourceID: p.UserID,
			Result: audit.ResultFailure, Reason: "bad_password"})
		return forbidden("current password is wrong")
	}
	s.resetFailures(lockKey)
	hash, err := HashPassword(next)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = s.db.Update(func(tx *store.Tx) error {
		u, err := usersTable.Get(tx, p.UserID)
		if err != nil {
			return err
		}
		u.PasswordHash, u.PasswordChangedAt, u.UpdatedAt = hash, now, now
		return usersTable.Put(tx, u.ID, u)
	})
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.revokeSessions(func(sess *Session) bool { return sess.ID != p.SessionID }, p.UserID, "password_change"); err != nil {
		return err
	}
	s.record(ctx, p, m, audit.Event{Action: "password_change", ResourceType: "user", ResourceID: p.UserID})
	return nil
}

func (s *Service) checkNewPassword(pw string) error {
	switch {
	case len(pw) < s.set.MinPasswordLength:
		return invalid("password must be at least %d characters", s.set.MinPasswordLength)
	case len(pw) > MaxPasswordLength:
		return invalid("password must be at most %d characters", MaxPasswordLength)
	}
	return nil
}

// CheckOAuthClient verifies an OAuth client's id and secret in constant time.
func (s *Service) CheckOAuthClient(id, secret string) bool {
	return checkOAuthClient(s.set.OAuthClients, id, secret)
}

// ExchangeAccessKey trades an access-key pair for an access token valid for
// AccessKeyTokenTTL. Each exchange is a session tied to the key, so
// deleting the key ends its tokens.
func (s *Service) ExchangeAccessKey(ctx context.Context, accessKey, secretKey string, m Meta) (string, time.Duration, error) {
	presented := s.keys.digest("access_secret", secretKey)
	now := s.now().UTC()
	var (
		ak   *AccessKey
		user *User
		sess *Session
	)
	err := s.db.Update(func(tx *store.Tx) error {
		ak, user, sess = nil, nil, nil
		var stored string
		if len(accessKey) == accessKeyLen && isHex(accessKey) {
			k, _, err := accessKeysTable.GetBy(tx, "access_key", accessKey)
			if err != nil && !isNotFound(err) {
				return err
			}
			if k != nil {
				ak, stored = k, k.SecretDigest
			}
		}
		// Compare even when the key is unknown, against a digest that
		// cannot match, so both paths do the same work.
		if stored == "" {
			stored = s.keys.digest("access_secret_absent", accessKey)
		}
		if !digestEqual(presented, stored) || ak == nil {
			ak = nil
			return nil
		}
		u, err := usersTable.Get(tx, ak.UserID)
		if err != nil || u.Status != StatusActive {
			return nil
		}
		user = u
		ak.LastUsedAt = now
		if err := accessKeysTable.Put(tx, ak.ID, ak); err != nil {
			return err
		}
		sess = &Session{ID: store.NewID("ses"), UserID: u.ID, Method: MethodAccessKey, CredentialID: ak.ID,
			ClientIP: m.ClientIP, UserAgent: clip(m.UserAgent, 256),
			CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.set.AccessKeyTokenTTL)}
		return sessionsTable.Insert(tx, sess.ID, sess)
	})
	if err != nil {
		return "", 0, fmt.Errorf("exchange access key: %w", err)
	}
	if user == nil {
		e := audit.Event{Action: "use", ResourceType: "access_key", Result: audit.ResultFailure, Reason: "invalid", AuthMethod: MethodAccessKey}
		if ak != nil {
			e.ResourceID, e.ActorID = ak.ID, ak.UserID
		}
		s.record(ctx, nil, m, e)
		return "", 0, ErrUnauthenticated
	}
	token, jti, err := s.tokens.issue(user.ID, sess.ID, MethodAccessKey, s.set.AccessKeyTokenTTL)
	if err != nil {
		return "", 0, err
	}
	s.record(ctx, nil, m, audit.Event{Action: "use", ResourceType: "access_key", ResourceID: ak.ID,
		ActorID: user.ID, ActorName: user.Username, AuthMethod: MethodAccessKey, CredentialID: jti})
	return token, s.set.AccessKeyTokenTTL, nil
}

// clip cuts s to n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// VerifyClientCertificate turns a verified TLS client certificate into a
// principal: its common name must be the username of an active Berth
// user, whose roles apply; the certificate's organizations are added to the
// user's groups, as Kubernetes reads them. The TLS layer has already
// verified the chain against the configured client CA; notAfter is the
// end of the chain's validity, checked here again on every use because a
// connection or a stream may outlive it.
func (s *Service) VerifyClientCertificate(commonName string, organizations []string, notAfter time.Time) (*Principal, error) {
	if !s.now().Before(notAfter) {
		return nil, ErrUnauthenticated
	}
	var p *Principal
	err := s.db.View(func(tx *store.Tx) error {
		u, _, err := usersTable.GetBy(tx, "username", strings.ToLower(commonName))
		if err != nil {
			if isNotFound(err) {
				return ErrUnauthenticated
			}
			return err
		}
		p, err = principalFor(tx, u.ID, MethodClientCert, "cert:"+u.Username, "", nil)
		if err != nil {
			return err
		}
		p.ExpiresAt = notAfter
		for _, o := range organizations {
			if !slices.Contains(p.Groups, o) {
				p.Groups = append(p.Groups, o)
			}
		}
		return nil
	})
	return p, err
}
