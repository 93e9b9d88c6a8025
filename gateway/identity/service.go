package identity

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Settings are the identity rules an operator configures.
type Settings struct {
	// Issuer and Audience are the iss and aud of access tokens.
	Issuer, Audience string
	// AccessTokenTTL is the lifetime of an access token (15 min).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is how long a refresh-token family lives without
	// being used; each refresh extends it.
	RefreshTokenTTL time.Duration
	// SessionTTL is the lifetime of a browser cookie session.
	SessionTTL time.Duration
	// AccessKeyTokenTTL is the lifetime of a token from an access-key
	// exchange (1 h).
	AccessKeyTokenTTL time.Duration
	// Leeway is the clock skew tolerated when checking token times.
	Leeway time.Duration
	// MaxAccessKeys is how many access-key pairs one user may hold (5).
	MaxAccessKeys int
	// MaxAPIKeys is how many live API keys one user may hold; 0 means no
	// cap (tests of other features only).
	MaxAPIKeys int
	// MinPasswordLength is the shortest password accepted.
	MinPasswordLength int
	// Lockout is the per-account sign-in backoff.
	Lockout ratelimit.BackoffOptions
	// LoginHistoryRetention is how long login history is kept; zero keeps
	// it forever.
	LoginHistoryRetention time.Duration
	// OAuthClients may use the OAuth 2.0 token endpoint.
	OAuthClients []OAuthClient
	// SigningKeyRotation is how long a key signs access tokens before
	// RunSigningKeys replaces it; zero rotates only on request.
	SigningKeyRotation time.Duration
}

// Options are what a Service is built from.
type Options struct {
	DB       *store.DB
	Box      *secretbox.Box
	Audit    *audit.Log
	Settings Settings
	// Now is the clock; nil means time.Now. Tests inject one.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is Berth's identity logic: sign-in, tokens, sessions, keys,
// users and roles. Handlers call it; it calls the store.
type Service struct {
	db     *store.DB
	audit  *audit.Log
	set    Settings
	box    *secretbox.Box
	keys   *keyring
	tokens *tokenIssuer
	// keyMu serialises changes to the signing keys, so the issuer's key
	// set is always the one last committed.
	keyMu sync.Mutex
	// keysWithdrawn run after keys are withdrawn (OnSigningKeysWithdrawn).
	keysWithdrawn []func()
	lockout       *ratelimit.Backoff
	grants        *grantCache
	hooks         changeHooks
	now           func() time.Time
	log           *slog.Logger
}

// NewService loads (or, on first start, creates) the identity keys and
// returns the service.
func NewService(opts Options) (*Service, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := opts.Settings
	if set.AccessTokenTTL <= 0 || set.RefreshTokenTTL <= 0 || set.SessionTTL <= 0 || set.AccessKeyTokenTTL <= 0 {
		return nil, errors.New("identity: token lifetimes must be positive")
	}
	if set.Issuer == "" || set.Audience == "" {
		return nil, errors.New("identity: issuer and audience must be set")
	}
	if set.MinPasswordLength < 1 {
		set.MinPasswordLength = MinPasswordLength
	}
	kr, ks, err := loadKeys(opts.DB, opts.Box, now(), verificationWindow(set))
	if err != nil {
		return nil, err
	}
	lock := set.Lockout
	lock.Now = now
	grants := newGrantCache()
	s := &Service{
		db:      opts.DB,
		audit:   opts.Audit,
		set:     set,
		box:     opts.Box,
		keys:    kr,
		tokens:  newTokenIssuer(ks, set.Issuer, set.Audience, set.Leeway, now),
		lockout: ratelimit.NewBackoff(lock),
		grants:  grants,
		now:     now,
		log:     log,
	}
	opts.DB.OnCommit(s.onCommit)
	opts.DB.OnForeignCommit(s.onForeignCommit)
	return s, nil
}

// Settings returns the rules the service runs with.
func (s *Service) Settings() Settings { return s.set }

// Meta is where a request came from, for sessions, login history and audit.
type Meta struct {
	ClientIP  string
	UserAgent string
}

// Refusals a caller tells apart with errors.Is. Each is a *fault.Error, so
// it also carries the kind and the message the API answers with.
var (
	// ErrInvalidCredentials: wrong username or password, unknown user,
	// or a disabled account — deliberately one answer for all.
	ErrInvalidCredentials = fault.New(fault.Unauthenticated, "invalid username or password")
	// ErrUnauthenticated: a token or key that is missing, malformed,
	// expired, revoked, or belongs to a disabled account.
	ErrUnauthenticated = fault.New(fault.Unauthenticated, "invalid credentials")
	// ErrInvalidGrant: a refresh token that is unknown, expired, revoked,
	// issued to another client, or already used.
	ErrInvalidGrant = fault.New(fault.Unauthenticated, "invalid, expired or already used refresh token")
)

// locked refuses a sign-in or password check while the account is locked
// after repeated failures: fault.TooMany, with the wait rounded up to whole
// seconds (at least one) in both the message and Retry-After.
func locked(wait time.Duration) error {
	secs := max(1, int((wait+time.Second-1)/time.Second))
	return fault.New(fault.TooMany, "too many failed sign-ins for this account; try again in %d seconds", secs).
		Retry(time.Duration(secs) * time.Second)
}

func invalid(format string, args ...any) error { return fault.New(fault.Invalid, format, args...) }

func forbidden(format string, args ...any) error { return fault.New(fault.Forbidden, format, args...) }

func notFound(what string) error { return fault.New(fault.NotFound, "%s not found", what) }

func conflict(format string, args ...any) error { return fault.New(fault.Conflict, format, args...) }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// record writes an audit event on behalf of actor (nil for anonymous).
func (s *Service) record(ctx context.Context, actor *Principal, m Meta, e audit.Event) {
	if s.audit == nil {
		return
	}
	s.prepare(actor, m, &e)
	s.audit.Record(ctx, e)
}

// prepare fills an event's actor, origin and time.
func (s *Service) prepare(actor *Principal, m Meta, e *audit.Event) {
	if actor != nil {
		if e.ActorID == "" {
			e.ActorID, e.ActorName = actor.UserID, actor.Username
		}
		if e.AuthMethod == "" {
			e.AuthMethod = actor.AuthMethod
		}
		if e.CredentialID == "" {
			e.CredentialID = actor.CredentialID
		}
	}
	e.ClientIP, e.UserAgent = m.ClientIP, m.UserAgent
	e.Time = s.now().UTC()
}

// principalFor builds the principal for user u in tx, refusing accounts that
// are not active.
func principalFor(tx *store.Tx, userID, method, credentialID, sessionID string, scopes []string) (*Principal, error) {
	u, err := usersTable.Get(tx, userID)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrUnauthenticated
		}
		return nil, err
	}
	if u.Status != StatusActive {
		return nil, ErrUnauthenticated
	}
	perms, err := resolvePermissions(tx, u.Roles)
	if err != nil {
		return nil, err
	}
	return &Principal{
		UserID: u.ID, Username: u.Username,
		Roles: u.Roles, Groups: u.Groups, Permissions: perms,
		AuthMethod: method, CredentialID: credentialID, SessionID: sessionID,
		Scopes: scopes,
	}, nil
}

// UserPrincipal is what the user may do as a password sign-in would make
// them, for decisions taken on their behalf outside a request (revoking
// what they no longer hold). A deleted or disabled user is
// ErrUnauthenticated.
func (s *Service) UserPrincipal(userID string) (*Principal, error) {
	var p *Principal
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		p, err = principalFor(tx, userID, MethodPassword, "", "", nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ownerCheck lets a user act on their own things and a users:admin on
// anyone's. Anything else reads as not found, so ids of other people's
// keys and sessions cannot be probed.
func ownerCheck(actor *Principal, ownerID, what string) error {
	if actor != nil && (actor.UserID == ownerID || actor.Can(PermUsersAdmin)) {
		return nil
	}
	return notFound(what)
}
