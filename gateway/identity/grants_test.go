package identity

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// grantEnv is a Service on an in-memory Badger with one user, "ann", who
// holds the custom role "reader", and her three kinds of credential.
type grantEnv struct {
	s                      *Service
	now                    *time.Time
	user                   *User
	token, cookie, apiKey  string
	apiKeyID, tokenSession string
}

var grantAdmin = &Principal{UserID: "usr_admin", Username: "admin", Permissions: []string{PermAll}}

func newGrantEnv(t *testing.T) *grantEnv {
	t.Helper()
	now := time.Now()
	e := &grantEnv{now: &now}
	e.s, _ = newTestService(t, e.now, Settings{AccessTokenTTL: time.Hour, RefreshTokenTTL: 2 * time.Hour,
		SessionTTL: 3 * time.Hour, AccessKeyTokenTTL: time.Hour})
	var err error
	ctx := context.Background()
	if _, err := e.s.PutRole(ctx, grantAdmin, Role{Name: "reader", Permissions: []string{PermClustersRead}}, true, Meta{}); err != nil {
		t.Fatal(err)
	}
	e.user, err = e.s.CreateUser(ctx, grantAdmin, NewUser{Username: "ann", Password: "a-long-password-1", Roles: []string{"reader"}}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := e.s.IssueTokens(ctx, e.user, MethodPassword, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e.token, e.tokenSession = toks.AccessToken, toks.SessionID
	if e.cookie, _, err = e.s.StartBrowserSession(ctx, e.user, Meta{}); err != nil {
		t.Fatal(err)
	}
	k, raw, err := e.s.CreateAPIKey(ctx, grantAdmin, NewAPIKey{UserID: e.user.ID, Name: "ci", ExpiresAt: now.Add(4 * time.Hour)}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e.apiKey, e.apiKeyID = raw, k.ID
	return e
}

// verify authenticates with each kind of credential: access token,
// browser cookie, API key.
func (e *grantEnv) verify(kind string) (*Principal, error) {
	switch kind {
	case "token":
		return e.s.VerifyAccessToken(e.token)
	case "cookie":
		return e.s.VerifySessionCookie(e.cookie)
	default:
		return e.s.VerifyAPIKey(context.Background(), e.apiKey, Meta{})
	}
}

// Every write that changes what a credential may do is seen by the very
// next request, although the first requests filled the cache; and
// Reverify, which streams opened before the write use, sees it too.
func TestGrantCacheSeesEveryWrite(t *testing.T) {
	ctx := context.Background()
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		change func(t *testing.T, e *grantEnv)
		// refused lists the credential kinds that must now fail; the others
		// must still work and carry wantPerms.
		refused   []string
		wantPerms []string
	}{
		{"nothing changes", func(*testing.T, *grantEnv) {}, nil, []string{PermClustersRead}},
		{"logout ends the token's session", func(t *testing.T, e *grantEnv) {
			p, _ := e.s.VerifyAccessToken(e.token)
			must(t, e.s.Logout(ctx, p, Meta{}))
		}, []string{"token"}, []string{PermClustersRead}},
		{"an admin revokes the cookie session", func(t *testing.T, e *grantEnv) {
			p, _ := e.s.VerifySessionCookie(e.cookie)
			must(t, e.s.RevokeSession(ctx, grantAdmin, p.SessionID, Meta{}))
		}, []string{"cookie"}, []string{PermClustersRead}},
		{"the API key is revoked", func(t *testing.T, e *grantEnv) {
			must(t, e.s.RevokeAPIKey(ctx, grantAdmin, e.apiKeyID, Meta{}))
		}, []string{"apikey"}, []string{PermClustersRead}},
		{"the user is disabled", func(t *testing.T, e *grantEnv) {
			_, err := e.s.UpdateUser(ctx, grantAdmin, e.user.ID, UserChanges{Status: str(StatusDisabled)}, Meta{})
			must(t, err)
		}, []string{"token", "cookie", "apikey"}, nil},
		{"the user is deleted", func(t *testing.T, e *grantEnv) {
			must(t, e.s.DeleteUser(ctx, grantAdmin, e.user.ID, Meta{}))
		}, []string{"token", "cookie", "apikey"}, nil},
		{"the user's roles change", func(t *testing.T, e *grantEnv) {
			roles := []string{RoleUser}
			_, err := e.s.UpdateUser(ctx, grantAdmin, e.user.ID, UserChanges{Roles: &roles}, Meta{})
			must(t, err)
		}, nil, builtinRoles[RoleUser]},
		{"the custom role gains a permission", func(t *testing.T, e *grantEnv) {
			_, err := e.s.PutRole(ctx, grantAdmin, Role{Name: "reader", Permissions: []string{PermClustersRead, PermClustersWrite}}, false, Meta{})
			must(t, err)
		}, nil, []string{PermClustersRead, PermClustersWrite}},
		{"the custom role loses a permission", func(t *testing.T, e *grantEnv) {
			_, err := e.s.PutRole(ctx, grantAdmin, Role{Name: "reader", Permissions: []string{PermClustersWrite}}, false, Meta{})
			must(t, err)
		}, nil, []string{PermClustersWrite}},
		{"the cookie session expires", func(t *testing.T, e *grantEnv) {
			*e.now = e.now.Add(3*time.Hour + time.Second)
		}, []string{"token", "cookie"}, []string{PermClustersRead}},
		{"the API key expires", func(t *testing.T, e *grantEnv) {
			*e.now = e.now.Add(4*time.Hour + time.Second)
		}, []string{"token", "cookie", "apikey"}, nil},
	}
	kinds := []string{"token", "cookie", "apikey"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGrantEnv(t)
			before := map[string]*Principal{}
			for range 2 { // the second round is served from the cache
				for _, k := range kinds {
					p, err := e.verify(k)
					if err != nil {
						t.Fatalf("%s before the change: %v", k, err)
					}
					before[k] = p
				}
			}
			if n := e.s.grants.entries.Len(); n != 3 {
				t.Fatalf("%d cached grants, want 3", n)
			}
			// What a connection keeps of the token (authn's fast path).
			_, kept, err := e.s.VerifyAccessTokenKept(e.token)
			if err != nil || kept == nil {
				t.Fatalf("kept: %v %v", kept, err)
			}
			if _, ok := e.s.StillVerified(kept); !ok {
				t.Fatal("a kept token refused before any change")
			}
			tt.change(t, e)
			if p, ok := e.s.StillVerified(kept); ok {
				// Only where nothing changed may the kept decision stand,
				// and then it must be the store's answer.
				perms := slices.Clone(tt.wantPerms)
				slices.Sort(perms)
				if slices.Contains(tt.refused, "token") || !slices.Equal(p.Permissions, perms) || tt.name != "nothing changes" {
					t.Errorf("kept token still accepted after %q, permissions %v", tt.name, p.Permissions)
				}
			} else if tt.name == "nothing changes" {
				t.Error("kept token refused though nothing changed")
			}
			for _, k := range kinds {
				for _, how := range []string{"verify", "reverify"} {
					var p *Principal
					var err error
					if how == "verify" {
						p, err = e.verify(k)
					} else {
						p, err = e.s.Reverify(before[k])
					}
					if slices.Contains(tt.refused, k) {
						if err == nil {
							t.Errorf("%s: %s still accepted", how, k)
						}
						continue
					}
					if err != nil {
						t.Errorf("%s: %s refused: %v", how, k, err)
						continue
					}
					perms := slices.Clone(tt.wantPerms)
					slices.Sort(perms)
					if !slices.Equal(p.Permissions, perms) {
						t.Errorf("%s: %s permissions %v, want %v", how, k, p.Permissions, perms)
					}
					if p.UserID != before[k].UserID || p.AuthMethod != before[k].AuthMethod || p.CredentialID != before[k].CredentialID || p.SessionID != before[k].SessionID {
						t.Errorf("%s: %s principal %+v, was %+v", how, k, p, before[k])
					}
				}
			}
		})
	}
}

// A principal from the cache is the one the store would give, with the
// presenting token's own id as its credential.
func TestGrantCachePrincipal(t *testing.T) {
	e := newGrantEnv(t)
	for _, k := range []string{"token", "cookie", "apikey"} {
		first, err := e.verify(k)
		must(t, err)
		cached, err := e.verify(k)
		must(t, err)
		if first == cached {
			t.Errorf("%s: the same *Principal twice; each request needs its own", k)
		}
		if first.UserID != e.user.ID || first.Username != "ann" || cached.UserID != first.UserID ||
			cached.AuthMethod != first.AuthMethod || cached.CredentialID != first.CredentialID ||
			cached.SessionID != first.SessionID || !slices.Equal(cached.Permissions, first.Permissions) {
			t.Errorf("%s: cached %+v, first %+v", k, cached, first)
		}
	}
	// A second access token of the same session shares the cached grant but
	// keeps its own jti.
	tok2, jti2, err := e.s.tokens.issue(e.user.ID, e.tokenSession, MethodPassword, time.Hour)
	must(t, err)
	p, err := e.s.VerifyAccessToken(tok2)
	must(t, err)
	if p.CredentialID != jti2 || p.SessionID != e.tokenSession {
		t.Errorf("second token: credential %q session %q, want %q %q", p.CredentialID, p.SessionID, jti2, e.tokenSession)
	}
	// A token naming another user for the session is refused even though
	// the session's grant is cached.
	forged, _, err := e.s.tokens.issue("usr_other", e.tokenSession, MethodPassword, time.Hour)
	must(t, err)
	if _, err := e.s.VerifyAccessToken(forged); err == nil {
		t.Error("token for another user accepted on a cached session")
	}
}

// A grant read before a write committed is not cached after the write's
// invalidation ran: it might be stale and nothing would drop it later.
func TestGrantCacheDropsRacingFill(t *testing.T) {
	c := newGrantCache()
	now := time.Now()
	epoch := c.begin()
	c.invalidate([]store.Change{{Table: usersTable.Name(), ID: "usr_x"}})
	c.put("s/ses_1", epoch, &grant{p: Principal{UserID: "usr_a"}})
	if _, ok := c.get("s/ses_1", now); ok {
		t.Fatal("a grant read before an invalidation was cached")
	}
	// Writes to other tables leave the epoch alone.
	epoch = c.begin()
	c.invalidate([]store.Change{{Table: "clusters", ID: "prod"}})
	c.put("s/ses_1", epoch, &grant{p: Principal{UserID: "usr_a"}})
	if _, ok := c.get("s/ses_1", now); !ok {
		t.Fatal("an unrelated write kept a fresh grant out")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Reverify trusts nothing in the principal it is given beyond the ids it
// looks up: a session or key must belong to the principal's user.
func TestReverifyRefusesMismatch(t *testing.T) {
	e := newGrantEnv(t)
	tok, err := e.s.VerifyAccessToken(e.token)
	must(t, err)
	key, err := e.s.VerifyAPIKey(context.Background(), e.apiKey, Meta{})
	must(t, err)
	other := func(p *Principal) *Principal { q := *p; q.UserID = "usr_someone_else"; return &q }
	tests := []struct {
		name string
		p    *Principal
	}{
		{"another user's session", other(tok)},
		{"another user's key", other(key)},
		{"an unknown session", &Principal{UserID: e.user.ID, AuthMethod: MethodPassword, SessionID: "ses_unknown"}},
		{"an unknown key", &Principal{UserID: e.user.ID, AuthMethod: MethodAPIKey, CredentialID: "key_unknown"}},
		{"a client certificate", &Principal{UserID: e.user.ID, AuthMethod: MethodClientCert, CredentialID: "cert:ann"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := e.s.Reverify(tt.p); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Reverify = %+v, %v; want ErrUnauthenticated", p, err)
			}
		})
	}
}

// Every principal says when the credential behind it ends, so a stream
// can end then: the session (not the short access token), the API key,
// the client certificate. A certificate past its end is refused, however
// long the connection that presented it has lived.
func TestPrincipalExpiresWithItsCredential(t *testing.T) {
	e := newGrantEnv(t)
	ctx := context.Background()
	sessionEnd := e.now.Add(2 * time.Hour) // RefreshTokenTTL
	keyEnd := e.now.Add(4 * time.Hour)
	cookieEnd := e.now.Add(3 * time.Hour) // SessionTTL
	for range 2 {                         // a fresh grant, then a cached one
		tok, err := e.s.VerifyAccessToken(e.token)
		must(t, err)
		cookie, err := e.s.VerifySessionCookie(e.cookie)
		must(t, err)
		key, err := e.s.VerifyAPIKey(ctx, e.apiKey, Meta{})
		must(t, err)
		for name, c := range map[string]struct{ got, want time.Time }{
			"token": {tok.ExpiresAt, sessionEnd}, "cookie": {cookie.ExpiresAt, cookieEnd}, "key": {key.ExpiresAt, keyEnd},
		} {
			if !c.got.Equal(c.want) {
				t.Errorf("%s principal expires at %v, want %v", name, c.got, c.want)
			}
		}
		again, err := e.s.Reverify(tok)
		must(t, err)
		if !again.ExpiresAt.Equal(sessionEnd) {
			t.Errorf("Reverify: expires at %v, want %v", again.ExpiresAt, sessionEnd)
		}
	}

	certEnd := e.now.Add(time.Minute)
	p, err := e.s.VerifyClientCertificate("ann", []string{"devs"}, certEnd)
	must(t, err)
	if !p.ExpiresAt.Equal(certEnd) || !slices.Contains(p.Groups, "devs") {
		t.Errorf("certificate principal: %+v", p)
	}
	*e.now = certEnd
	if _, err := e.s.VerifyClientCertificate("ann", nil, certEnd); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired certificate: %v", err)
	}
}

// UserPrincipal is a user as a sign-in would see them, for decisions made
// without a request; a disabled or unknown user has none.
func TestUserPrincipal(t *testing.T) {
	e := newGrantEnv(t)
	p, err := e.s.UserPrincipal(e.user.ID)
	must(t, err)
	if p.Username != "ann" || !slices.Contains(p.Roles, "reader") || !slices.Contains(p.Permissions, PermClustersRead) {
		t.Errorf("principal %+v", p)
	}
	if _, err := e.s.UserPrincipal("usr_nobody"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown user: %v", err)
	}
	disabled := StatusDisabled
	_, err = e.s.UpdateUser(context.Background(), grantAdmin, e.user.ID, UserChanges{Status: &disabled}, Meta{})
	must(t, err)
	if _, err := e.s.UserPrincipal(e.user.ID); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("disabled user: %v", err)
	}
}

// A kept decision ends with what ends the token: its expiry (before the
// session's), and its signing key retired. A rotation that keeps the old
// key also drops it, to be verified again.
func TestStillVerifiedEnds(t *testing.T) {
	ctx := context.Background()
	e := newGrantEnv(t)
	_, kept, err := e.s.VerifyAccessTokenKept(e.token)
	must(t, err)
	if _, ok := e.s.StillVerified(kept); !ok {
		t.Fatal("refused at once")
	}
	*e.now = e.now.Add(time.Hour + time.Second) // the token's TTL; the session has 3 h
	if _, ok := e.s.StillVerified(kept); ok {
		t.Error("kept past the token's expiry")
	}
	*e.now = e.now.Add(-time.Hour - time.Second)
	if _, err := e.s.RotateSigningKey(ctx, grantAdmin, Meta{}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.s.StillVerified(kept); ok {
		t.Error("kept across a key rotation")
	}
	p, kept, err := e.s.VerifyAccessTokenKept(e.token) // the old key still verifies
	must(t, err)
	if _, ok := e.s.StillVerified(kept); !ok || p.UserID != e.user.ID {
		t.Fatal("not kept after verifying again")
	}
	if _, err := e.s.RotateSigningKey(ctx, grantAdmin, Meta{}, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.s.StillVerified(kept); ok {
		t.Error("kept after its key was retired")
	}
	if _, err := e.s.VerifyAccessToken(e.token); err == nil {
		t.Error("token of a retired key accepted")
	}
	if _, ok := e.s.StillVerified(nil); ok {
		t.Error("nil kept")
	}
}
