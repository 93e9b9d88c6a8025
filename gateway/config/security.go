package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Auth configures sign-in, tokens, browser sessions, CSRF/CORS and OAuth.
type Auth struct {
	Issuer            string   `yaml:"issuer"`
	Audience          string   `yaml:"audience"`
	AccessTokenTTL    Duration `yaml:"access_token_ttl"`
	RefreshTokenTTL   Duration `yaml:"refresh_token_ttl"`
	AccessKeyTokenTTL Duration `yaml:"access_key_token_ttl"`
	Leeway            Duration `yaml:"leeway"`
	// SigningKeyRotation is how long a key signs access tokens before a
	// new one replaces it; 0 rotates only on request.
	SigningKeyRotation Duration    `yaml:"signing_key_rotation"`
	MaxAccessKeys      int         `yaml:"max_access_keys"`
	MinPasswordLength  int         `yaml:"min_password_length"`
	Session            SessionConf `yaml:"session"`
	Lockout            Lockout     `yaml:"lockout"`
	CORS               CORS        `yaml:"cors"`
	OAuth              OAuth       `yaml:"oauth"`
	// SSO is single sign-on with OpenID Connect providers.
	SSO SSO `yaml:"sso"`

	// MaxAPIKeys is how many live API keys one user may hold.
	MaxAPIKeys int `yaml:"max_api_keys"`
}

// SessionConf configures browser cookie sessions.
type SessionConf struct {
	CookieName string   `yaml:"cookie_name"`
	TTL        Duration `yaml:"ttl"`
}

// Lockout configures the per-account backoff after failed sign-ins.
type Lockout struct {
	MaxFailures int      `yaml:"max_failures"`
	Duration    Duration `yaml:"duration"`
	MaxDuration Duration `yaml:"max_duration"`
}

// CORS lists the origins that may call the API from a browser.
type CORS struct {
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// OAuth lists the OAuth 2.0 clients of /oauth/token. Each entry is
// "<client_id>:sha256:<hex of SHA-256 of the secret>" or
// "<client_id>:env:<VARIABLE holding the secret>"; a plain secret is not
// accepted, so none sits in a config file.
type OAuth struct {
	Clients []string `yaml:"clients"`

	resolved []OAuthClient
}

// OAuthClient is one resolved OAuth client.
type OAuthClient struct {
	ID           string
	SecretSHA256 [32]byte
}

// ResolvedClients returns the clients after Load resolved their secrets.
func (o *OAuth) ResolvedClients() []OAuthClient { return o.resolved }

// RateLimits configures the token buckets.
type RateLimits struct {
	MaxKeys int       `yaml:"max_keys"`
	Auth    RateLimit `yaml:"auth"`
	Join    RateLimit `yaml:"join"`
	API     RateLimit `yaml:"api"`
	Proxy   RateLimit `yaml:"proxy"`
	// APIUser and ProxyUser bound all of one user's credentials together,
	// on top of API and Proxy, which give each API key its own bucket.
	APIUser   RateLimit `yaml:"api_user"`
	ProxyUser RateLimit `yaml:"proxy_user"`
	// Overrides give one key its own limit in a scope:
	// "<scope>:<key>=<requests>/<per>[/<burst>]".
	Overrides []string `yaml:"overrides"`
}

// RateLimit is one scope's bucket: Requests per Per, bursts up to Burst
// (Requests when 0). Requests 0 disables the limit.
type RateLimit struct {
	Requests int      `yaml:"requests"`
	Per      Duration `yaml:"per"`
	Burst    int      `yaml:"burst"`
}

// RateOverride is one parsed rate_limits.overrides entry.
type RateOverride struct {
	Scope, Key string
	Limit      RateLimit
}

// Audit configures the audit log.
type Audit struct {
	RetentionDays int      `yaml:"retention_days"`
	PurgeInterval Duration `yaml:"purge_interval"`
	// MaxEvents bounds the log's size: past it the oldest events are
	// purged, however young. 0: no bound.
	MaxEvents int `yaml:"max_events"`
}

// Retention returns the retention as a duration (0: keep forever).
func (a Audit) Retention() time.Duration { return time.Duration(a.RetentionDays) * 24 * time.Hour }

var (
	clientIDRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	rateKeyRE    = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)
)

// minClientSecret is the shortest OAuth client secret taken from the
// environment.
const minClientSecret = 16

func (c *Config) validateSecurity() error {
	for i, p := range c.TrustedProxies {
		if err := checkCIDR(p); err != nil {
			return &Error{fmt.Sprintf("trusted_proxies[%d]", i), err.Error()}
		}
	}
	a := &c.Auth
	if strings.TrimSpace(a.Issuer) == "" {
		return &Error{"auth.issuer", "must not be empty"}
	}
	if strings.TrimSpace(a.Audience) == "" {
		return &Error{"auth.audience", "must not be empty"}
	}
	for _, d := range []struct {
		key      string
		v        Duration
		min, max time.Duration
	}{
		{"auth.access_token_ttl", a.AccessTokenTTL, time.Minute, 24 * time.Hour},
		{"auth.refresh_token_ttl", a.RefreshTokenTTL, time.Minute, 365 * 24 * time.Hour},
		{"auth.access_key_token_ttl", a.AccessKeyTokenTTL, time.Minute, 7 * 24 * time.Hour},
		{"auth.session.ttl", a.Session.TTL, time.Minute, 30 * 24 * time.Hour},
		{"auth.leeway", a.Leeway, 0, 5 * time.Minute},
	} {
		if d.v.D() < d.min || d.v.D() > d.max {
			return &Error{d.key, fmt.Sprintf("must be from %s to %s", d.min, d.max)}
		}
	}
	if a.RefreshTokenTTL < a.AccessTokenTTL {
		return &Error{"auth.refresh_token_ttl", "must not be shorter than auth.access_token_ttl"}
	}
	if r := a.SigningKeyRotation.D(); r != 0 && (r < time.Hour || r > 365*24*time.Hour) {
		return &Error{"auth.signing_key_rotation", "must be 0 (rotate only on request) or from 1h to 8760h"}
	}
	if a.MaxAccessKeys < 1 || a.MaxAccessKeys > 100 {
		return &Error{"auth.max_access_keys", "must be from 1 to 100"}
	}
	if a.MaxAPIKeys < 1 || a.MaxAPIKeys > 1000 {
		return &Error{"auth.max_api_keys", "must be from 1 to 1000"}
	}
	if a.MinPasswordLength < 8 || a.MinPasswordLength > 128 {
		return &Error{"auth.min_password_length", "must be from 8 to 128"}
	}
	if !cookieNameRE.MatchString(a.Session.CookieName) {
		return &Error{"auth.session.cookie_name", "must be 1 to 64 letters, digits, _ or -"}
	}
	if a.Lockout.MaxFailures < 0 {
		return &Error{"auth.lockout.max_failures", "must not be negative (0 disables the lockout)"}
	}
	if a.Lockout.MaxFailures > 0 && a.Lockout.Duration <= 0 {
		return &Error{"auth.lockout.duration", "must be greater than 0"}
	}
	if a.Lockout.MaxDuration < a.Lockout.Duration {
		return &Error{"auth.lockout.max_duration", "must not be shorter than auth.lockout.duration"}
	}
	for i, o := range a.CORS.AllowedOrigins {
		if o != "*" && !validOrigin(o) {
			return &Error{fmt.Sprintf("auth.cors.allowed_origins[%d]", i), fmt.Sprintf("%q is not * or scheme://host[:port]", o)}
		}
	}
	seen := map[string]bool{}
	for i, cl := range a.OAuth.Clients {
		id, _, _, err := splitClient(cl)
		if err != nil {
			return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), err.Error()}
		}
		if seen[id] {
			return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), fmt.Sprintf("client %q is listed twice", id)}
		}
		seen[id] = true
	}
	if err := c.validateSSO(); err != nil {
		return err
	}
	r := &c.RateLimits
	if r.MaxKeys < 100 {
		return &Error{"rate_limits.max_keys", "must be at least 100"}
	}
	for _, l := range []struct {
		key string
		v   RateLimit
	}{{"rate_limits.auth", r.Auth}, {"rate_limits.join", r.Join}, {"rate_limits.api", r.API}, {"rate_limits.proxy", r.Proxy},
		{"rate_limits.api_user", r.APIUser}, {"rate_limits.proxy_user", r.ProxyUser}} {
		if err := l.v.check(); err != nil {
			return &Error{l.key, err.Error()}
		}
	}
	if _, err := r.ParseOverrides(); err != nil {
		return err
	}
	if c.Audit.RetentionDays < 0 {
		return &Error{"audit.retention_days", "must not be negative (0 keeps events forever)"}
	}
	if c.Audit.MaxEvents < 0 {
		return &Error{"audit.max_events", "must not be negative (0 sets no bound)"}
	}
	if c.Audit.PurgeInterval < Duration(time.Minute) {
		return &Error{"audit.purge_interval", "must be at least 1m"}
	}
	return nil
}

func (l RateLimit) check() error {
	switch {
	case l.Requests < 0 || l.Burst < 0:
		return fmt.Errorf("requests and burst must not be negative")
	case l.Requests > 0 && l.Per <= 0:
		return fmt.Errorf("per must be greater than 0 when requests is set")
	}
	return nil
}

// ParseOverrides reads rate_limits.overrides.
func (r *RateLimits) ParseOverrides() ([]RateOverride, error) {
	var out []RateOverride
	for i, o := range r.Overrides {
		key := fmt.Sprintf("rate_limits.overrides[%d]", i)
		bad := &Error{key, fmt.Sprintf("%q: want <scope>:<key>=<requests>/<per>[/<burst>], e.g. api:key_01abc=100/1s/200", o)}
		scope, rest, ok := strings.Cut(o, ":")
		if !ok {
			return nil, bad
		}
		switch scope {
		case "auth", "join", "api", "proxy", "api_user", "proxy_user":
		default:
			return nil, &Error{key, fmt.Sprintf("unknown scope %q (want auth, join, api, proxy, api_user or proxy_user)", scope)}
		}
		k, spec, ok := strings.Cut(rest, "=")
		if !ok || !rateKeyRE.MatchString(k) {
			return nil, bad
		}
		parts := strings.Split(spec, "/")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, bad
		}
		var l RateLimit
		var err error
		if l.Requests, err = strconv.Atoi(parts[0]); err != nil {
			return nil, bad
		}
		d, err := time.ParseDuration(parts[1])
		if err != nil {
			return nil, bad
		}
		l.Per = Duration(d)
		if len(parts) == 3 {
			if l.Burst, err = strconv.Atoi(parts[2]); err != nil {
				return nil, bad
			}
		}
		if err := l.check(); err != nil {
			return nil, &Error{key, err.Error()}
		}
		out = append(out, RateOverride{Scope: scope, Key: k, Limit: l})
	}
	return out, nil
}

func splitClient(s string) (id, kind, val string, err error) {
	id, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", "", fmt.Errorf("want <client_id>:sha256:<hex> or <client_id>:env:<VARIABLE>")
	}
	if !clientIDRE.MatchString(id) {
		return "", "", "", fmt.Errorf("client id %q must be 1 to 64 letters, digits, . _ or -", id)
	}
	kind, val, ok = strings.Cut(rest, ":")
	if !ok {
		return "", "", "", fmt.Errorf("client %q: want sha256:<hex> or env:<VARIABLE> after the id (plain secrets are not accepted)", id)
	}
	switch kind {
	case "sha256":
		if b, err := hex.DecodeString(val); err != nil || len(b) != sha256.Size {
			return "", "", "", fmt.Errorf("client %q: sha256 wants 64 hex characters", id)
		}
	case "env":
		if !envNameRE.MatchString(val) {
			return "", "", "", fmt.Errorf("client %q: %q is not an environment variable name", id, val)
		}
	default:
		return "", "", "", fmt.Errorf("client %q: secret kind %q unknown (want sha256 or env; plain secrets are not accepted)", id, kind)
	}
	return id, kind, val, nil
}

// resolveClients reads the OAuth client secrets named by env: entries. An
// unset or empty variable is an error: a client with an empty secret
// would let anyone act as it.
func (o *OAuth) resolveClients(lookupEnv func(string) (string, bool)) error {
	o.resolved = nil
	for i, cl := range o.Clients {
		id, kind, val, err := splitClient(cl)
		if err != nil {
			return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), err.Error()}
		}
		c := OAuthClient{ID: id}
		switch kind {
		case "sha256":
			b, _ := hex.DecodeString(val)
			copy(c.SecretSHA256[:], b)
		case "env":
			secret, ok := "", false
			if lookupEnv != nil {
				secret, ok = lookupEnv(val)
			}
			if !ok || secret == "" {
				return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), fmt.Sprintf("client %q: environment variable %s is unset or empty", id, val)}
			}
			if len(secret) < minClientSecret {
				return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), fmt.Sprintf("client %q: secret in %s is shorter than %d characters", id, val, minClientSecret)}
			}
			c.SecretSHA256 = sha256.Sum256([]byte(secret))
		}
		if c.SecretSHA256 == sha256.Sum256(nil) {
			return &Error{fmt.Sprintf("auth.oauth.clients[%d]", i), fmt.Sprintf("client %q: the secret is empty", id)}
		}
		o.resolved = append(o.resolved, c)
	}
	return nil
}

func checkCIDR(s string) error {
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not a CIDR", s)
		}
		return nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q is not an address or CIDR", s)
	}
	return nil
}

func validOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}
