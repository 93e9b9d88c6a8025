// Package sso is single sign-on with OpenID Connect providers: the list of
// providers, the authorization code flow with PKCE (S256), state and nonce
// bound to the browser that started it, the ID token checked (signature,
// issuer, audience, expiry on Berth's clock, nonce), and the person it
// names admitted by identity (SignInExternal) into a browser session or,
// for the CLI's loopback sign-in, a one-time code exchanged for tokens.
//
// Nothing a browser sends is trusted: the state is a random name of a
// record kept in the store, which holds a digest of the binding cookie's
// value; the nonce and the PKCE verifier are derived from that value and
// Berth's key, so they are stored nowhere and only the browser holding the
// cookie can finish the flow it started.
package sso

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Provider is one configured OpenID provider.
type Provider struct {
	Name, DisplayName string
	Issuer            string
	ClientID          string
	ClientSecret      string
	// Scopes are requested besides openid.
	Scopes []string
	// RedirectURL is the callback registered at the provider; an https
	// one makes the binding cookie Secure.
	RedirectURL                            string
	UsernameClaim, EmailClaim, GroupsClaim string
	// AllowedDomains, when set, admit only verified emails in them.
	AllowedDomains []string
	Policy         identity.ExternalPolicy
}

// Lifetimes of what a sign-in leaves behind.
const (
	// FlowTTL is how long a started sign-in may take at the provider.
	FlowTTL = 10 * time.Minute
	// CodeTTL is how long the CLI's one-time code is good for.
	CodeTTL = 60 * time.Second
	// discoveryRetry is how long a failed discovery is not tried again,
	// so an unreachable provider costs each sign-in attempt nothing.
	discoveryRetry = 5 * time.Second
	// callTimeout bounds each call to a provider.
	callTimeout = 15 * time.Second
	// DefaultMaxFlows is Options.MaxFlows' default: 10 000 sign-ins
	// started per FlowTTL (about 17 a second, in bursts of as many), so
	// the flows in the store stay under 20 000 (2 KB at most each, with
	// the longest next or CLI request: 40 MB at worst).
	DefaultMaxFlows = 10000
)

// Options are what a Service is built from.
type Options struct {
	Providers []Provider
	Identity  *identity.Service
	DB        *store.DB
	Box       *secretbox.Box
	Audit     *audit.Log
	// HTTPClient calls the providers; nil means one with a timeout.
	HTTPClient *http.Client
	// Now is the clock (ID token expiry, flows, codes); nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// MaxFlows bounds the sign-ins started within FlowTTL, all clients
	// together; 0 means DefaultMaxFlows.
	MaxFlows int
}

// Service runs sign-ins through the configured providers.
type Service struct {
	providers []*provider
	ids       *identity.Service
	db        *store.DB
	audit     *audit.Log
	key       []byte
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	// starts bounds the sign-ins started, all clients together: each
	// start stores a flow before anyone is authenticated, and the per
	// address rate limit alone does not bound a crowd of addresses.
	starts *rate.Limiter
	// startsWarned is when the log last said starts were refused
	// (UnixNano).
	startsWarned atomic.Int64
}

// provider is a Provider with its discovered metadata, fetched on first
// use (a provider that is down must not stop Berth from starting).
type provider struct {
	Provider
	mu       sync.Mutex
	oidc     *oidc.Provider
	failedAt time.Time
}

// New builds the service; it calls no provider yet.
func New(opts Options) *Service {
	s := &Service{ids: opts.Identity, db: opts.DB, audit: opts.Audit, client: opts.HTTPClient, now: opts.Now, log: opts.Logger}
	if s.client == nil {
		s.client = &http.Client{Timeout: callTimeout}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	maxFlows := opts.MaxFlows
	if maxFlows <= 0 {
		maxFlows = DefaultMaxFlows
	}
	s.starts = rate.NewLimiter(rate.Limit(float64(maxFlows)/FlowTTL.Seconds()), maxFlows)
	s.key = opts.Box.Derive("berth sso flows")
	for _, p := range opts.Providers {
		s.providers = append(s.providers, &provider{Provider: p})
	}
	return s
}

// Listed is a provider as GET /api/v1/auth/providers shows it.
type Listed struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	LoginURL    string `json:"login_url"`
}

// List returns the providers in configuration order.
func (s *Service) List() []Listed {
	out := []Listed{}
	for _, p := range s.providers {
		out = append(out, Listed{Name: p.Name, DisplayName: p.DisplayName, LoginURL: "/api/v1/auth/sso/" + p.Name + "/login"})
	}
	return out
}

var errUnknownProvider = fault.New(fault.NotFound, "no such sign-in provider")

func (s *Service) provider(name string) (*provider, error) {
	for _, p := range s.providers {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, errUnknownProvider
}

// discover returns the provider's metadata, fetching it when it is not
// known yet. A discovery document that names another issuer than the
// configured one is refused (go-oidc checks it): tokens from that
// provider would be checked against the wrong issuer.
func (s *Service) discover(ctx context.Context, p *provider) (*oidc.Provider, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oidc != nil {
		return p.oidc, "", nil
	}
	unavailable := fault.New(fault.Unavailable, "the sign-in provider %q cannot be used right now; an administrator will find why in Berth's log", p.Name).Retry(discoveryRetry)
	if !p.failedAt.IsZero() && time.Since(p.failedAt) < discoveryRetry {
		return nil, "discovery_failed", unavailable
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), p.Issuer)
	if err != nil {
		p.failedAt = time.Now()
		reason := "discovery_failed"
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			reason = "issuer_mismatch"
		}
		s.log.Error("sso: provider discovery failed", "provider", p.Name, "issuer", p.Issuer, "reason", reason, "err", err)
		return nil, reason, fault.Wrap(fault.Unavailable, err, "%s", unavailable.Message).Retry(discoveryRetry)
	}
	p.oidc, p.failedAt = op, time.Time{}
	return op, "", nil
}

func (p *provider) oauth2Config(op *oidc.Provider) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range p.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Endpoint: op.Endpoint(),
		RedirectURL: p.RedirectURL, Scopes: scopes}
}

// mac is HMAC-SHA256 under the service's key of the parts, each labelled
// by its position, so no two inputs share a MAC.
func (s *Service) mac(label string, parts ...string) []byte {
	h := hmac.New(sha256.New, s.key)
	fmt.Fprintf(h, "%s\x00%d", label, len(parts))
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return h.Sum(nil)
}

// digest is the stored name of a random value (a state, a cookie, a code):
// the store never holds the value itself.
func (s *Service) digest(label, v string) string { return hex.EncodeToString(s.mac(label, v)) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// challengeOf is the PKCE S256 challenge of a verifier (RFC 7636 §4.2).
func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

// recordFailure audits a sign-in through provider that failed for reason.
func (s *Service) recordFailure(ctx context.Context, provider, reason string, m identity.Meta, details map[string]string) {
	if s.audit == nil {
		return
	}
	s.audit.Record(ctx, audit.Event{Action: "login", ResourceType: "sso", ResourceID: provider, Result: audit.ResultFailure,
		Reason: reason, AuthMethod: identity.MethodSSO, ClientIP: m.ClientIP, UserAgent: m.UserAgent, Time: s.now().UTC(), Details: details})
}
