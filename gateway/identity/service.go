package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/audit"
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
	opts.DB.OnCommit(grants.invalidate)
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
	return s, nil
}

// Settings returns the rules the service runs with.
func (s *Service) Settings() Settings { return s.set }

// Meta is where a request came from, for sessions, login history and audit.
type Meta struct {
	ClientIP  string
	UserAgent string
}

// Errors a handler maps to HTTP statuses.
var (
	// ErrInvalidCredentials: wrong username or password, unknown user,
	// or a disabled account — deliberately one answer for all.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrUnauthenticated: a token or key that is missing, malformed,
	// expired, revoked, or belongs to a disabled account.
	ErrUnauthenticated = errors.New("invalid or expired credentials")
	// ErrInvalidGrant: a refresh token that is unknown, expired, revoked,
	// issued to another client, or already used.
	ErrInvalidGrant = errors.New("invalid or expired refresh token")
)

// LockedError means the account is locked after repeated failed sign-ins.
type LockedError struct{ RetryAfter time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; try again in %s", e.RetryAfter.Round(time.Second))
}

// Kind classifies an *Error.
type Kind int

// Kinds of *Error.
const (
	KindInvalid   Kind = iota + 1 // the request is malformed: 400
	KindForbidden                 // the caller may not do this: 403
	KindNotFound                  // no such thing (or not the caller's): 404
	KindConflict                  // clashes with the current state: 409
)

// Error is a refusal with a message safe to show the caller.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &Error{KindInvalid, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &Error{KindForbidden, fmt.Sprintf(format, args...)}
}

func notFound(what string) error { return &Error{KindNotFound, what + " not found"} }

func conflict(format string, args ...any) error {
	return &Error{KindConflict, fmt.Sprintf(format, args...)}
}

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
	u, err := Users.Get(tx, userID)
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
