package gateway

import (
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/sso"
)

// initSecurity builds the audit log, the identity service, the rate
// limiter and the authenticator from the configuration.
func (g *Gateway) initSecurity() error {
	cfg := g.cfg
	g.audit = audit.New(g.db, audit.Options{Retention: cfg.Audit.Retention(), MaxEvents: cfg.Audit.MaxEvents, Now: g.clock, Logger: g.log})

	clients := make([]identity.OAuthClient, 0, len(cfg.Auth.OAuth.ResolvedClients()))
	for _, c := range cfg.Auth.OAuth.ResolvedClients() {
		clients = append(clients, identity.OAuthClient{ID: c.ID, SecretSHA256: c.SecretSHA256})
	}
	svc, err := identity.NewService(identity.Options{
		DB: g.db, Box: g.box, Audit: g.audit, Now: g.clock, Logger: g.log,
		Settings: identity.Settings{
			Issuer:            cfg.Auth.Issuer,
			Audience:          cfg.Auth.Audience,
			AccessTokenTTL:    cfg.Auth.AccessTokenTTL.D(),
			RefreshTokenTTL:   cfg.Auth.RefreshTokenTTL.D(),
			SessionTTL:        cfg.Auth.Session.TTL.D(),
			AccessKeyTokenTTL: cfg.Auth.AccessKeyTokenTTL.D(),
			Leeway:            cfg.Auth.Leeway.D(),
			MaxAccessKeys:     cfg.Auth.MaxAccessKeys,
			MaxAPIKeys:        cfg.Auth.MaxAPIKeys,
			MinPasswordLength: cfg.Auth.MinPasswordLength,
			Lockout: ratelimit.BackoffOptions{
				Threshold: cfg.Auth.Lockout.MaxFailures,
				Base:      cfg.Auth.Lockout.Duration.D(),
				Max:       cfg.Auth.Lockout.MaxDuration.D(),
				MaxKeys:   cfg.RateLimits.MaxKeys,
			},
			LoginHistoryRetention: cfg.Audit.Retention(),
			OAuthClients:          clients,
			SigningKeyRotation:    cfg.Auth.SigningKeyRotation.D(),
		},
	})
	if err != nil {
		return err
	}
	g.identity = svc

	limiter, err := newLimiter(cfg, g.clock)
	if err != nil {
		return err
	}
	g.limiter = limiter
	trusted, err := ratelimit.ParseTrusted(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	g.authn, err = authn.New(authn.Options{
		Service: svc, Limiter: limiter, Trusted: trusted,
		CookieName: cfg.Auth.Session.CookieName, AllowedOrigins: cfg.Auth.CORS.AllowedOrigins,
		Logger: g.log,
	})
	if err != nil {
		return err
	}
	g.identityAPI = identity.NewHandlers(svc, g.authn, g.audit)
	g.initSSO()
	return nil
}

// initSSO builds single sign-on from auth.sso.providers, with the clock
// identity uses, so an ID token's expiry is judged on the same time as
// Berth's own tokens.
func (g *Gateway) initSSO() {
	var providers []sso.Provider
	for _, p := range g.cfg.Auth.SSO.Providers {
		providers = append(providers, sso.Provider{
			Name: p.Name, DisplayName: p.DisplayName, Issuer: p.Issuer,
			ClientID: p.ClientID, ClientSecret: p.ClientSecret(), Scopes: p.Scopes, RedirectURL: p.RedirectURL,
			UsernameClaim: p.UsernameClaim, EmailClaim: p.EmailClaim, GroupsClaim: p.GroupsClaim,
			AllowedDomains: p.AllowedDomains,
			Policy:         identity.ExternalPolicy{CreateUsers: p.CreateUsers, DefaultRole: p.DefaultRole, LinkExisting: p.LinkExisting},
		})
	}
	g.sso = sso.New(sso.Options{Providers: providers, Identity: g.identity, DB: g.db, Box: g.box, Audit: g.audit,
		Now: g.clock, Logger: g.log})
	g.ssoAPI = sso.NewHandlers(g.sso, g.authn)
}

func newLimiter(cfg *config.Config, clock func() time.Time) (*ratelimit.Limiter, error) {
	limit := func(l config.RateLimit) ratelimit.Limit {
		return ratelimit.PerPeriod(l.Requests, l.Per.D(), l.Burst)
	}
	overrides, err := cfg.RateLimits.ParseOverrides()
	if err != nil {
		return nil, err
	}
	byScope := map[string]map[string]ratelimit.Limit{}
	for _, o := range overrides {
		if byScope[o.Scope] == nil {
			byScope[o.Scope] = map[string]ratelimit.Limit{}
		}
		byScope[o.Scope][o.Key] = limit(o.Limit)
	}
	return ratelimit.New(ratelimit.Options{
		MaxKeys: cfg.RateLimits.MaxKeys,
		Now:     clock,
		Scopes: map[string]ratelimit.Limit{
			ratelimit.ScopeAuth:      limit(cfg.RateLimits.Auth),
			ratelimit.ScopeJoin:      limit(cfg.RateLimits.Join),
			ratelimit.ScopeAPI:       limit(cfg.RateLimits.API),
			ratelimit.ScopeProxy:     limit(cfg.RateLimits.Proxy),
			ratelimit.ScopeAPIUser:   limit(cfg.RateLimits.APIUser),
			ratelimit.ScopeProxyUser: limit(cfg.RateLimits.ProxyUser),
		},
		Overrides: byScope,
	}), nil
}
